/**
 * Postgres and Redis for the local stack: detected, started when installed but not running, and a
 * clear message naming what to install when missing.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import net from "node:net";

function canConnect(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

async function waitFor(host: string, port: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await canConnect(host, port)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

export type ServiceStatus = { name: string; url: string; started: boolean };

export async function ensurePostgres(
  databaseUrl: string,
  log: (m: string) => void,
): Promise<ServiceStatus> {
  const u = new URL(databaseUrl);
  const host = u.hostname || "127.0.0.1";
  const port = Number(u.port || 5432);
  if (await canConnect(host, port)) return { name: "postgres", url: databaseUrl, started: false };
  const local = host === "127.0.0.1" || host === "localhost";
  if (local && hasCommand("pg_ctlcluster") && existsSync("/etc/postgresql")) {
    const version = readdirSync("/etc/postgresql")[0];
    if (version) {
      log(`postgres not answering on ${host}:${port}; starting cluster ${version}/main`);
      execFileSync("pg_ctlcluster", ["--skip-systemctl-redirect", version, "main", "start"], {
        stdio: "inherit",
      });
      if (await waitFor(host, port, 15_000))
        return { name: "postgres", url: databaseUrl, started: true };
    }
  }
  throw new Error(
    `PostgreSQL is not answering at ${host}:${port}. Install it (Debian: apt-get install postgresql) ` +
      "and start it, or set DATABASE_URL to a running server.",
  );
}

export async function ensureRedis(
  redisUrl: string,
  log: (m: string) => void,
): Promise<ServiceStatus> {
  const u = new URL(redisUrl);
  const host = u.hostname || "127.0.0.1";
  const port = Number(u.port || 6379);
  if (await canConnect(host, port)) return { name: "redis", url: redisUrl, started: false };
  const local = host === "127.0.0.1" || host === "localhost";
  if (local && hasCommand("redis-server")) {
    log(`redis not answering on ${host}:${port}; starting redis-server`);
    execFileSync(
      "redis-server",
      [
        "--daemonize",
        "yes",
        "--bind",
        "127.0.0.1",
        "--port",
        String(port),
        "--save",
        "",
        "--appendonly",
        "no",
      ],
      { stdio: "inherit" },
    );
    if (await waitFor(host, port, 10_000)) return { name: "redis", url: redisUrl, started: true };
  }
  throw new Error(
    `Redis is not answering at ${host}:${port}. Install it (Debian: apt-get install redis-server) ` +
      "and start it, or set REDIS_URL to a running server.",
  );
}

/** Create the database named in the URL if it does not exist (local stack convenience). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const { default: pg } = await import("pg");
  const u = new URL(databaseUrl);
  const name = decodeURIComponent(u.pathname.slice(1));
  if (!name) return;
  u.pathname = "/postgres";
  const client = new pg.Client({ connectionString: u.toString() });
  await client.connect();
  try {
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (!rowCount) {
      await client
        .query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`)
        .catch((error: { code?: string }) => {
          if (error.code !== "42P04") throw error; // created concurrently
        });
    }
  } finally {
    await client.end();
  }
}
