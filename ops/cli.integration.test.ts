import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfigPath } from "../foundation/config.js";
import { createTestDatabase, type TestDatabase } from "./testing/database.js";
import { spawnCli } from "./testing/process.js";
import { createTestRedis, type TestRedis } from "./testing/redis.js";
import { waitFor, within } from "./testing/wait.js";

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
    const { code } = await within("start to refuse the config", cli.exited, 60_000);
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

  it("start with --chains naming no chain refuses, naming the option, instead of running every chain", async () => {
    const cli = spawnCli(["start", "--chains", " , "], {
      CUSTODY_CONFIG: defaultConfigPath,
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
    });
    const { code } = await within("start to refuse --chains", cli.exited, 60_000);
    expect(code).not.toBe(0);
    expect(cli.output()).toContain("--chains: no chain named");
  });

  it("migrate run twice, and twice at once, succeeds", async () => {
    const env = { DATABASE_URL: db.url, CUSTODY_CONFIG: defaultConfigPath };
    const runs = [spawnCli(["migrate"], env), spawnCli(["migrate"], env)];
    const codes = await within("both migrate runs", Promise.all(runs.map((r) => r.exited)), 90_000);
    expect(codes.map((c) => c.code)).toEqual([0, 0]);
    const again = spawnCli(["migrate"], env);
    expect((await within("the third migrate run", again.exited, 60_000)).code).toBe(0);
    expect(again.output()).toContain("schema up to date");
  });

  it("start with the example config serves /healthz and /metrics and stops cleanly on SIGTERM", async () => {
    const shutdownTimeoutS = 8; // the default, stated: past it the process exits 1 on its own
    const cli = spawnCli(["start", "--migrate"], {
      CUSTODY_CONFIG: defaultConfigPath,
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      REDIS_PREFIX: redis.prefix,
      // Port 0: the server binds a free port and logs its URL (no probe-then-bind race).
      PORT: "0",
      LOG_LEVEL: "info",
      SHUTDOWN_TIMEOUT_S: String(shutdownTimeoutS),
    });
    try {
      const url = await waitFor(
        "the service to log its URL",
        () => {
          const line = cli
            .output()
            .split("\n")
            .find((l) => l.includes('"custody-node started"'));
          return line ? (JSON.parse(line) as { url: string }).url : undefined;
        },
        { timeoutMs: 90_000 },
      );
      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: "ok" });
      const metrics = await fetch(`${url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain("process_cpu_user_seconds_total");
    } finally {
      cli.child.kill("SIGTERM");
      // Exit 0 means a clean stop, before the forced exit (code 1) at the shutdown timeout; the
      // test waits well past that timeout so a slow machine cannot turn a clean stop into a fail.
      const { code, signal } = await within(
        "the service to exit after SIGTERM",
        cli.exited,
        (shutdownTimeoutS + 30) * 1000,
      );
      expect({ code, signal }, cli.output().slice(-2000)).toEqual({ code: 0, signal: null });
    }
  }, 180_000);
});
