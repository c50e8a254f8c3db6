import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfigPath } from "./config.js";
import { createTestDatabase, type TestDatabase } from "./testing/database.js";
import { freePort, spawnCli, waitForHttp } from "./testing/process.js";
import { createTestRedis, type TestRedis } from "./testing/redis.js";

describe("custody-node CLI", () => {
  let db: TestDatabase;
  let redis: TestRedis;
  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    redis = await createTestRedis();
  });
  afterAll(async () => {
    await redis.cleanup();
    await db.drop();
  });

  it("start with an invalid config prints every bad field and exits non-zero", async () => {
    const file = path.join(tmpdir(), `bad-config-${process.pid}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        chains: [{ key: "x", chainId: "one", rpcUrls: ["ftp//nope"] }],
        hotWallets: [{}],
      }),
    );
    const cli = spawnCli(["start"], {
      CUSTODY_CONFIG: file,
      PORT: "not-a-port",
      DATABASE_URL: db.url,
    });
    const { code } = await cli.exited;
    expect(code).not.toBe(0);
    const out = cli.output();
    for (const field of [
      "env.PORT",
      "chains.0.chainId",
      "chains.0.rpcUrls.0",
      "chains.0.name",
      "chains.0.confirmations",
      "chains.0.feeModel",
      "hotWallets.0.chain",
      "hotWallets.0.kmsKeyId",
    ]) {
      expect(out).toContain(field);
    }
  });

  it("migrate run twice, and twice at once, succeeds", async () => {
    const env = { DATABASE_URL: db.url, CUSTODY_CONFIG: defaultConfigPath };
    const runs = [spawnCli(["migrate"], env), spawnCli(["migrate"], env)];
    const codes = await Promise.all(runs.map((r) => r.exited));
    expect(codes.map((c) => c.code)).toEqual([0, 0]);
    const again = spawnCli(["migrate"], env);
    expect((await again.exited).code).toBe(0);
    expect(again.output()).toContain("schema up to date");
  });

  it("start with the example config serves /healthz and /metrics and exits 0 within 10 s of SIGTERM", async () => {
    const port = await freePort();
    const cli = spawnCli(["start", "--migrate"], {
      CUSTODY_CONFIG: defaultConfigPath,
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      REDIS_PREFIX: redis.prefix,
      PORT: String(port),
    });
    try {
      const health = await waitForHttp(`http://127.0.0.1:${port}/healthz`, 30_000);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: "ok" });
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain("process_cpu_user_seconds_total");
    } finally {
      const sentAt = Date.now();
      cli.child.kill("SIGTERM");
      const { code } = await cli.exited;
      expect(code).toBe(0);
      expect(Date.now() - sentAt).toBeLessThan(10_000);
    }
  });
});
