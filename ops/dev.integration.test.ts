/**
 * `custody-node dev` as a new operator runs it (a child process through ops/bin/custody-node.js):
 * it comes up ready, the admin key it prints works against the API, `custody-node reconcile`
 * against it finds 0 breaks (funding and factory gas booked), SIGTERM exits 0; run again on the
 * same directory it reuses the key, the funding, the factory and the config, and prints no new key.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { TEST_PG_ADMIN_URL } from "./testing/database.js";
import { type CliProcess, freePort, spawnCli } from "./testing/process.js";
import { createTestRedis, type TestRedis } from "./testing/redis.js";
import { waitFor, within } from "./testing/wait.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "custody-dev-"));
const dbName = `custody_dev_${randomBytes(4).toString("hex")}`;
let redis: TestRedis | undefined;
const running: CliProcess[] = [];

afterAll(async () => {
  for (const p of running) if (p.child.exitCode === null) p.child.kill("SIGKILL");
  await redis?.cleanup();
  const client = new pg.Client({ connectionString: TEST_PG_ADMIN_URL });
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => {});
  await client.end();
  rmSync(dir, { recursive: true, force: true });
});

async function up(env: Record<string, string>) {
  const dev = spawnCli(["dev", "--dir", dir], env);
  running.push(dev);
  const url = await waitFor(
    "dev: service at …",
    () => {
      if (dev.child.exitCode !== null) throw new Error(`dev exited early:\n${dev.output()}`);
      return /service at (http:\/\/[^\s]+) /.exec(dev.output())?.[1];
    },
    { timeoutMs: 150_000, everyMs: 250 },
  );
  await waitFor(
    "/readyz ready",
    async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200,
    { timeoutMs: 60_000, everyMs: 250 },
  );
  return { dev, url };
}

async function down(dev: CliProcess) {
  dev.child.kill("SIGTERM");
  const exit = await within("dev to exit after SIGTERM", dev.exited, 30_000);
  expect(exit, dev.output()).toEqual({ code: 0, signal: null });
  expect(dev.output()).toContain("[dev] stopped");
}

describe("custody-node dev", () => {
  it("comes up, its admin key works, reconcile finds 0 breaks, SIGTERM exits 0; a rerun reuses it all", async () => {
    redis = await createTestRedis();
    const [rpcPort, kmsPort] = [await freePort(), await freePort()];
    const baseConfig = path.join(dir, "base.json");
    writeFileSync(
      baseConfig,
      JSON.stringify({
        chains: [
          {
            key: "local",
            chainId: 31337,
            name: "dev test chain",
            rpcUrls: [`http://127.0.0.1:${rpcPort}`],
            confirmations: { kind: "blocks", blocks: 2 },
            reorgWindow: 8,
            blockTimeMs: 1000,
            feeModel: "eip1559",
            traces: true,
          },
        ],
        policies: {
          withdrawals: {
            limits: {
              "31337:0x0000000000000000000000000000000000000000": {
                perTransaction: "10000000000000000000",
                rolling24h: "20000000000000000000",
                approvalThreshold: "1000000000000000000",
              },
            },
          },
        },
      }),
    );
    const env = {
      DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${dbName}`,
      REDIS_URL: redis.url,
      REDIS_PREFIX: redis.prefix,
      PORT: "0",
      LOG_LEVEL: "warn",
      AWS_ENDPOINT_URL_KMS: `http://127.0.0.1:${kmsPort}`,
      CUSTODY_CONFIG: baseConfig,
    };

    const first = await up(env);
    const out = first.dev.output();
    const key = /admin API key \(shown once, keep it\): (cn_\S+)/.exec(out)?.[1];
    expect(key, out).toBeDefined();
    expect(out).toMatch(/local: forwarder factory 0x[0-9a-fA-F]{40} deployed \(its gas booked\)/);
    expect(out).toContain("local: funding booked");
    const auth = { authorization: `Bearer ${key}` };
    const assets = await fetch(`${first.url}/v1/assets`, { headers: auth });
    expect(assets.status).toBe(200);
    expect(await fetch(`${first.url}/v1/assets`)).toHaveProperty("status", 401);

    // Reconcile once the indexer has passed the set-up's last block by the confirmations.
    const head = await fetch(`http://127.0.0.1:${rpcPort}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_blockNumber", params: [] }),
    }).then(async (r) => Number(((await r.json()) as { result: string }).result));
    await waitFor(
      "indexer past the set-up",
      async () => {
        const res = await fetch(`${first.url}/v1/chains`, { headers: auth });
        const chains = ((await res.json()) as { chains: { indexed: string | null }[] }).chains;
        return Number(chains[0]?.indexed ?? -1) >= head + 3;
      },
      { timeoutMs: 60_000, everyMs: 500 },
    );
    const runEnv = { ...env, CUSTODY_CONFIG: path.join(dir, "config.json") };
    const recon = spawnCli(["reconcile", "--chain", "local"], runEnv);
    const reconExit = await within("reconcile to finish", recon.exited, 60_000);
    expect([reconExit.code, recon.output()]).toEqual([0, expect.stringMatching(/No breaks/)]);

    await down(first.dev);

    const written = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8"));
    expect(written.hotWallets).toHaveLength(1);

    const second = await up(env);
    const again = second.dev.output();
    expect(again).toContain(`config ${path.join(dir, "config.json")}`);
    expect(again).toContain(`(KMS key ${written.hotWallets[0].kmsKeyId}) reused`);
    expect(again).toMatch(/local: forwarder factory 0x[0-9a-fA-F]{40} reused/);
    expect(again).not.toContain("shown once");
    expect(again).not.toContain("hot wallet funded");
    expect((await fetch(`${second.url}/v1/assets`, { headers: auth })).status).toBe(200);
    await down(second.dev);
  }, 420_000);
});
