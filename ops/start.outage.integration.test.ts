/**
 * Liveness and shutdown through dependency outages, with the documented service command
 * (`node ops/bin/custody-node.js start`): /healthz answers while Redis or Postgres is out, /readyz
 * says which one, and SIGTERM exits 0 (not the stop-timeout exit 1) during either outage. The
 * Redis here is a private redis-server the test stops and starts; the "Postgres" of the outage case
 * is a port that accepts connections and never answers (worse than a refused one). The service
 * runs with a `{…}` hash-tag REDIS_PREFIX, the form clustered ElastiCache needs, and the example
 * config's first chain pointed at an anvil mining a block a second: with the example's chains (no
 * node on their ports) the indexers failed /readyz 3 block times after they started, so "ready"
 * could be seen only in that window, and a loaded machine missed it.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfigPath } from "../foundation/config.js";
import { type Anvil, startAnvil } from "./devstack/anvil.js";
import { startRedisServer } from "./e2e/redisServer.js";
import { createTestDatabase, type TestDatabase } from "./testing/database.js";
import { type CliProcess, spawnCli } from "./testing/process.js";
import { waitFor, within } from "./testing/wait.js";

/**
 * The production default. During a Redis outage the BullMQ workers cannot close, so the stop waits
 * for the abandon deadline (this minus the 5 s close reserve, ops/start.ts) and then closes Redis
 * and Postgres within the reserve; that reserve is 5 s at any timeout, so a longer one (it was 20)
 * only made each SIGTERM here wait longer before the same abandon. Without the deadline the stop
 * hangs until the service's own timer exits 1, which these cases still catch.
 */
const SHUTDOWN_TIMEOUT_S = 8;

type Probe = {
  status: number;
  type: string | null;
  body: { status?: string | number; code?: string; checks?: Record<string, { ok: boolean }> };
};

async function probe(url: string): Promise<Probe | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    return {
      status: res.status,
      type: res.headers.get("content-type"),
      body: (await res.json()) as Probe["body"],
    };
  } catch {
    return undefined;
  }
}

/** The first answer from `url` (a loaded service may take longer than one probe's 5 s). */
function answer(url: string): Promise<Probe> {
  return waitFor(`${url} to answer`, () => probe(url));
}

/**
 * Polls /readyz until `until` holds, as waitFor does; on the deadline the error carries the last
 * answer (which check failed, and why).
 */
async function readyzUntil(url: string, what: string, until: (p: Probe) => boolean) {
  let last: Probe | undefined;
  try {
    return await waitFor(what, async () => {
      last = await probe(`${url}/readyz`);
      return last && until(last) ? last : undefined;
    });
  } catch (error) {
    throw new Error(`${String(error)}; last /readyz: ${JSON.stringify(last)}`);
  }
}

/** The URL the service logs once its port is bound (before any dependency is reached). */
async function listeningUrl(cli: CliProcess): Promise<string> {
  let exit: { code: number | null } | undefined;
  void cli.exited.then((e) => {
    exit = e;
  });
  try {
    return await waitFor(
      "the service to log that it listens",
      () => {
        if (exit) throw new Error(`the service exited (code ${exit.code})`);
        const line = cli
          .output()
          .split("\n")
          .find((l) => l.includes('"listening (liveness up; starting roles)"'));
        return line ? (JSON.parse(line) as { url: string }).url : undefined;
      },
      { timeoutMs: 90_000 },
    );
  } catch (error) {
    cli.child.kill("SIGKILL");
    throw new Error(`${String(error)}\n${cli.output().slice(-3000)}`);
  }
}

/** SIGTERM, then the exit: 0 within the shutdown timeout (the service's own timer exits 1). */
async function terminate(cli: CliProcess) {
  cli.child.kill("SIGTERM");
  const exit = await within(
    "the service to exit after SIGTERM",
    cli.exited,
    (SHUTDOWN_TIMEOUT_S + 30) * 1000,
  );
  return { exit, output: cli.output() };
}

/** A TCP port that accepts connections and never says a word: Postgres hung, not refused. */
async function silentPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("custody-node start through Redis and Postgres outages", () => {
  let db: TestDatabase;
  let anvil: Anvil;
  let dir: string;
  let configPath: string;
  const tag = `{t${randomBytes(4).toString("hex")}}`;
  beforeAll(async () => {
    db = await createTestDatabase();
    anvil = await startAnvil({ chainId: 31337, blockTime: 1 });
    // The example config with its first chain on this anvil. Its blockTimeMs stays above anvil's
    // 1 s: the head check fails after 3 block times without a new head, and on a loaded machine
    // an indexer pass can take longer than 3 s.
    const example = JSON.parse(readFileSync(defaultConfigPath, "utf8"));
    dir = mkdtempSync(path.join(tmpdir(), "custody-outage-"));
    configPath = path.join(dir, "config.json");
    writeFileSync(
      configPath,
      JSON.stringify({
        ...example,
        chains: [{ ...example.chains[0], rpcUrls: [anvil.rpcUrl], blockTimeMs: 5000 }],
      }),
    );
  });
  afterAll(async () => {
    await anvil?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  });

  const env = (redisUrl: string, databaseUrl = db.url) => ({
    CUSTODY_CONFIG: configPath,
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: tag,
    PORT: "0",
    LOG_LEVEL: "info",
    SHUTDOWN_TIMEOUT_S: String(SHUTDOWN_TIMEOUT_S),
  });

  it("started while Redis is down: live at once, not ready; ready for Redis once it is back; SIGTERM during a later Redis outage exits 0", async () => {
    const redisServer = await startRedisServer();
    await redisServer.stop();
    const cli = spawnCli(["start"], env(redisServer.url));
    try {
      const url = await listeningUrl(cli);
      const live = await waitFor("/healthz to answer", () => probe(`${url}/healthz`), {
        timeoutMs: 30_000,
      });
      expect(live).toMatchObject({ status: 200, body: { status: "ok" } });
      const notReady = await waitFor("/readyz to report Redis", async () => {
        const p = await probe(`${url}/readyz`);
        return p?.body.checks?.redis ? p : undefined;
      });
      // Still starting (the roles wait for Redis): a problem like every other 503 of the API.
      expect(notReady.status).toBe(503);
      expect(notReady.type).toContain("application/problem+json");
      expect(notReady.body).toMatchObject({ status: 503, code: "SERVICE_STARTING" });
      expect(notReady.body.checks?.redis?.ok).toBe(false);
      const early = await answer(`${url}/v1/withdrawals`);
      expect(early.status).toBe(503);
      expect(early.type).toContain("application/problem+json");
      expect(early.body).toMatchObject({ status: 503, code: "SERVICE_STARTING" });

      await redisServer.start();
      await waitFor(
        "the roles to start once Redis is back",
        () => cli.output().includes('"custody-node started"'),
        { timeoutMs: 90_000 },
      );
      const back = await readyzUntil(
        url,
        "/readyz to answer ready with Redis again",
        (p) => p.status === 200 && p.body.checks?.redis?.ok === true,
      );
      expect(back.body.checks?.postgres?.ok).toBe(true);
      // Ready is not a problem: 200's body stays `{ status: "ready", checks }`.
      expect({ status: back.status, ready: back.body.status }).toEqual({
        status: 200,
        ready: "ready",
      });
      expect(back.type).toContain("application/json");

      // BullMQ's keys all carry the hash tag (one cluster slot), and there are some.
      const client = new Redis(redisServer.url);
      try {
        const keys = await waitFor("BullMQ keys under the prefix", async () => {
          const all = await client.keys("*");
          return all.length > 0 ? all : undefined;
        });
        expect(keys.filter((k) => !k.startsWith(`${tag}:`))).toEqual([]);
      } finally {
        client.disconnect();
      }

      await redisServer.stop();
      const outage = await readyzUntil(
        url,
        "/readyz to report the Redis outage",
        (p) => p.status === 503 && p.body.checks?.redis?.ok === false,
      );
      expect(outage.type).toContain("application/problem+json");
      expect(outage.body).toMatchObject({ status: 503, code: "SERVICE_NOT_READY" });
      expect((await answer(`${url}/healthz`)).status).toBe(200);
      const { exit, output } = await terminate(cli);
      expect({ code: exit.code, signal: exit.signal }, output.slice(-12000)).toEqual({
        code: 0,
        signal: null,
      });
      expect(output).not.toContain("shutdown timed out");
    } finally {
      cli.child.kill("SIGKILL");
      await redisServer.stop();
    }
  }, 300_000);

  it("SIGTERM while the roles are still waiting for Redis exits 0", async () => {
    const redisServer = await startRedisServer();
    await redisServer.stop();
    const cli = spawnCli(["start"], env(redisServer.url));
    try {
      const url = await listeningUrl(cli);
      expect((await waitFor("/healthz", () => probe(`${url}/healthz`)))?.status).toBe(200);
      const { exit, output } = await terminate(cli);
      expect(output).not.toContain('"custody-node started"');
      expect({ code: exit.code, signal: exit.signal }, output.slice(-12000)).toEqual({
        code: 0,
        signal: null,
      });
    } finally {
      cli.child.kill("SIGKILL");
    }
  }, 300_000);

  it("with Postgres hung (connections accepted, never answered): live, not ready, SIGTERM exits 0", async () => {
    const redisServer = await startRedisServer();
    const hung = await silentPort();
    const cli = spawnCli(
      ["start"],
      env(redisServer.url, `postgres://postgres@127.0.0.1:${hung.port}/custody`),
    );
    try {
      const url = await listeningUrl(cli);
      expect((await waitFor("/healthz", () => probe(`${url}/healthz`)))?.status).toBe(200);
      const notReady = await waitFor("/readyz to report Postgres", async () => {
        const p = await probe(`${url}/readyz`);
        return p?.body.checks?.postgres ? p : undefined;
      });
      expect(notReady.status).toBe(503);
      expect(notReady.body.checks?.postgres?.ok).toBe(false);
      const { exit, output } = await terminate(cli);
      expect({ code: exit.code, signal: exit.signal }, output.slice(-12000)).toEqual({
        code: 0,
        signal: null,
      });
    } finally {
      cli.child.kill("SIGKILL");
      await hung.close();
      await redisServer.stop();
    }
  }, 300_000);
});
