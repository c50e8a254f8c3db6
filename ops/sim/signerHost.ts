/**
 * The signer as a scenario runs it when it must survive kill -9: the real broadcaster in a child
 * process (signer/testing/walletSignerProcess.ts) for the config's one hot wallet, which `kill`
 * SIGKILLs at any instant and starts afresh, and `stop` ends with SIGTERM. Its config file is
 * written here and removed by `stop`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { repoRoot } from "../../foundation/config.js";
import { tsNodeArgs } from "../testing/process.js";
import type { SimWorld } from "./harness.js";

export type SignerHost = { stop: () => Promise<void>; kill?: () => Promise<void> };

function spawnSigner(env: Record<string, string>): { child: ChildProcess; started: Promise<void> } {
  const child = spawn(process.execPath, tsNodeArgs("signer/testing/walletSignerProcess.ts"), {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr?.on("data", (c: Buffer) => {
    err = (err + c.toString()).slice(-4000);
  });
  const started = new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (c: Buffer) => {
      if (c.toString().includes("started")) resolve();
    });
    child.once("exit", (code, signal) =>
      reject(new Error(`signer process exited early (${code ?? signal}): ${err}`)),
    );
  });
  started.catch(() => {});
  return { child, started };
}

/** Start the signer child for `keyId` on the chain `chainEntry` (config-file input, key "sim"). */
export async function childSigner({
  world,
  seed,
  chainEntry,
  keyId,
  kmsUrl,
  logLevel,
}: {
  world: SimWorld;
  seed: number;
  chainEntry: Record<string, unknown>;
  keyId: string;
  kmsUrl: string;
  logLevel: string;
}): Promise<Required<SignerHost>> {
  const configFile = path.join(tmpdir(), `custody-sim-${process.pid}-${seed}.json`);
  writeFileSync(
    configFile,
    JSON.stringify({ chains: [chainEntry], hotWallets: [{ chain: "sim", kmsKeyId: keyId }] }),
  );
  const env = {
    CUSTODY_CONFIG: configFile,
    DATABASE_URL: world.db.url,
    REDIS_URL: world.redis.url,
    REDIS_PREFIX: world.redis.prefix,
    AWS_ENDPOINT_URL_KMS: kmsUrl,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "sim",
    AWS_SECRET_ACCESS_KEY: "sim",
    LOG_LEVEL: logLevel,
  };
  let current = spawnSigner(env);
  try {
    await current.started;
  } catch (error) {
    rmSync(configFile, { force: true });
    throw error;
  }
  return {
    async kill() {
      current.child.kill("SIGKILL");
      await new Promise<void>((r) =>
        current.child.exitCode !== null || current.child.signalCode !== null
          ? r()
          : current.child.once("exit", () => r()),
      );
      current = spawnSigner(env);
      await current.started;
    },
    async stop() {
      try {
        if (current.child.exitCode !== null || current.child.signalCode !== null) return;
        const exited = new Promise<void>((r) => current.child.once("exit", () => r()));
        current.child.kill("SIGTERM");
        await exited;
      } finally {
        rmSync(configFile, { force: true });
      }
    },
  };
}
