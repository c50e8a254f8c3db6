/**
 * The local stack for dev, demo and tests: one anvil per configured loopback chain, Postgres and
 * Redis (started if installed and stopped), the database created and migrated. Modules that need
 * more local services (the KMS emulator) add them here.
 */
import {
  DEFAULT_EMULATOR_FILE,
  type KmsEmulator,
  startKmsEmulator,
} from "../../signer/kms-emulator/server.js";
import type { Config } from "../config.js";
import { migrate } from "../migrate.js";
import { type Anvil, startAnvil } from "./anvil.js";
import { ensureDatabase, ensurePostgres, ensureRedis } from "./services.js";

export type DevStack = { anvils: Anvil[]; kms?: KmsEmulator; stop: () => Promise<void> };

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === "127.0.0.1" || host === "localhost" || host === "[::1]";
}

export async function startDevStack(config: Config, log: (msg: string) => void): Promise<DevStack> {
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
      const anvil = await startAnvil({
        chainId: chain.chainId,
        port,
        blockTime: Math.max(1, Math.round(chain.blockTimeMs / 1000)),
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
        file: DEFAULT_EMULATOR_FILE,
      });
      log(`KMS emulator on ${kms.url} (dev only; keys in ${DEFAULT_EMULATOR_FILE})`);
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
