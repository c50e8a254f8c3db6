/**
 * The service as the README documents it: `node ops/bin/custody-node.js start --migrate` on a
 * database that does not exist yet creates and migrates it, and SIGTERM sent to the pid that was
 * started stops the whole service (exit 0, no process left, the port closed).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfigPath } from "../foundation/config.js";
import { TEST_PG_ADMIN_URL } from "./testing/database.js";
import { spawnCli } from "./testing/process.js";
import { createTestRedis, type TestRedis } from "./testing/redis.js";
import { waitFor, within } from "./testing/wait.js";

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_PG_ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function childPids(pid: number): number[] {
  try {
    return execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" })
      .split("\n")
      .map((s) => Number.parseInt(s.trim(), 10))
      .filter((n) => Number.isInteger(n));
  } catch {
    return []; // ps exits 1 when nothing matches
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

describe("custody-node start (the documented service command)", () => {
  const dbName = `custody_test_fresh_${process.pid}_${randomBytes(4).toString("hex")}`;
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await createTestRedis();
  });
  afterAll(async () => {
    await redis.cleanup();
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));
  });

  it("start --migrate creates a missing database; SIGTERM to that pid exits 0 and leaves nothing running", async () => {
    const exists = async () =>
      (await admin((c) => c.query("SELECT 1 FROM pg_database WHERE datname = $1", [dbName])))
        .rowCount === 1;
    expect(await exists()).toBe(false);
    const dbUrl = new URL(TEST_PG_ADMIN_URL);
    dbUrl.pathname = `/${dbName}`;

    const shutdownTimeoutS = 8;
    // spawnCli runs exactly `node ops/bin/custody-node.js <args>`, the README's production command.
    const cli = spawnCli(["start", "--migrate"], {
      CUSTODY_CONFIG: defaultConfigPath,
      DATABASE_URL: dbUrl.toString(),
      REDIS_URL: redis.url,
      REDIS_PREFIX: redis.prefix,
      PORT: "0",
      LOG_LEVEL: "info",
      SHUTDOWN_TIMEOUT_S: String(shutdownTimeoutS),
    });
    const pid = cli.child.pid;
    if (pid === undefined) throw new Error("the CLI did not start");
    let exit: { code: number | null } | undefined;
    void cli.exited.then((e) => {
      exit = e;
    });
    let url: string;
    try {
      url = await waitFor(
        "the service to log its URL",
        () => {
          if (exit) throw new Error(`the service exited (code ${exit.code}) before it started`);
          const line = cli
            .output()
            .split("\n")
            .find((l) => l.includes('"custody-node started"'));
          return line ? (JSON.parse(line) as { url: string }).url : undefined;
        },
        { timeoutMs: 120_000 },
      );
    } catch (error) {
      cli.child.kill("SIGKILL");
      throw new Error(`${String(error)}\n${cli.output().slice(-3000)}`);
    }

    // The database was created and migrated.
    expect(await exists()).toBe(true);
    const check = new pg.Client({ connectionString: dbUrl.toString() });
    await check.connect();
    try {
      for (const schema of ["chain", "ledger", "custody", "api"]) {
        const { rows } = await check.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${schema}.schema_migrations`,
        );
        expect(Number(rows[0]?.n), schema).toBeGreaterThan(0);
      }
    } finally {
      await check.end();
    }
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    // The pid we started is the node process serving: no npm/npx wrapper in between.
    const children = childPids(pid);
    process.kill(pid, "SIGTERM");
    const { code, signal } = await within(
      "the service to exit after SIGTERM",
      cli.exited,
      (shutdownTimeoutS + 30) * 1000,
    );
    expect({ code, signal }, cli.output().slice(-2000)).toEqual({ code: 0, signal: null });
    expect(cli.output()).toContain('"signal received, stopping"');
    expect(alive(pid)).toBe(false);
    for (const child of children) {
      await waitFor("a child process of the service to be gone", () => !alive(child) || undefined, {
        timeoutMs: 10_000,
      });
    }
    // Nobody keeps serving on the port.
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  }, 240_000);
});
