/**
 * The local stack for dev, demo and tests: one anvil per configured loopback chain, Postgres and
 * Redis (started if installed and stopped), the database created and migrated. Modules that need
 * more local services (the KMS emulator) add them here.
 */
import path from "node:path";
import type { Config } from "../../foundation/config.js";
import {
  DEFAULT_EMULATOR_FILE,
  type KmsEmulator,
  startKmsEmulator,
} from "../../signer/kms-emulator/server.js";
import { migrate } from "../migrate.js";
import { type Anvil, startAnvil } from "./anvil.js";
import { ensureDatabase, ensurePostgres, ensureRedis } from "./services.js";

export type DevStack = { anvils: Anvil[]; kms?: KmsEmulator; stop: () => Promise<void> };

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === "127.0.0.1" || host === "localhost" || host === "[::1]";
}

export type DevStackOptions = {
  /** Keep each anvil's chain state in `<stateDir>/anvil-<chain id>.json` (loaded at start, dumped on stop and every 5 s). */
  stateDir?: string;
  /** Where the KMS emulator keeps its keys (default .dev/kms-keys.json). */
  kmsFile?: string;
};

/** True when an anvil (or any node) of this chain id already answers at the URL: it is reused. */
async function answers(rpcUrl: string, chainId: number): Promise<boolean> {
  try {
    const res = await fetch(rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(1000),
    });
    const body = (await res.json()) as { result?: string };
    return Number(body.result) === chainId;
  } catch {
    return false;
  }
}

export async function startDevStack(
  config: Config,
  log: (msg: string) => void,
  options: DevStackOptions = {},
): Promise<DevStack> {
  await ensurePostgres(config.env.DATABASE_URL, log);
  await ensureRedis(config.env.REDIS_URL, log);
  await ensureDatabase(config.env.DATABASE_URL);
  await migrate(config.env.DATABASE_URL, { log });
  log(
    `postgres ok (${redactUrl(config.env.DATABASE_URL)}), redis ok (${redactUrl(config.env.REDIS_URL)}), migrations applied`,
  );

  const anvils: Anvil[] = [];
  let kms: KmsEmulator | undefined;
  const stop = async () => {
    await Promise.all(anvils.map((a) => a.stop()));
    await kms?.stop();
  };
  try {
    for (const chain of config.chains) {
      const rpc = chain.rpcUrls[0]!;
      if (!isLoopback(rpc)) continue;
      const port = Number(new URL(rpc).port);
      if (await answers(rpc, chain.chainId)) {
        log(`anvil ${chain.key} (chain id ${chain.chainId}) already running on ${rpc}: reused`);
        continue;
      }
      const stateFile = options.stateDir
        ? path.join(options.stateDir, `anvil-${chain.chainId}.json`)
        : undefined;
      const anvil = await startAnvil({
        chainId: chain.chainId,
        port,
        blockTime: Math.max(1, Math.round(chain.blockTimeMs / 1000)),
        ...(stateFile ? { args: ["--state", stateFile, "--state-interval", "5"] } : {}),
      });
      anvils.push(anvil);
      log(
        `anvil ${chain.key} (chain id ${chain.chainId}, ${chain.blockTimeMs} ms blocks) on ${anvil.rpcUrl}`,
      );
    }
    // AWS_ENDPOINT_URL_KMS on loopback (e.g. http://127.0.0.1:4599) means "use the local KMS
    // emulator": start it there, keys persisted in .dev/kms-keys.json.
    const kmsUrl = config.env.AWS_ENDPOINT_URL_KMS;
    if (kmsUrl && isLoopback(kmsUrl)) {
      const u = new URL(kmsUrl);
      kms = await startKmsEmulator({
        host: u.hostname,
        port: Number(u.port || 80),
        file: options.kmsFile ?? DEFAULT_EMULATOR_FILE,
      });
      log(
        `KMS emulator on ${kms.url} (dev only; keys in ${options.kmsFile ?? DEFAULT_EMULATOR_FILE})`,
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { anvils, ...(kms ? { kms } : {}), stop };
}

export function redactUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = "***";
  return u.toString();
}
