/**
 * `npm run demo`: the whole system on this machine. Starts the local stack (anvil chains,
 * Postgres, Redis) into a fresh demo database, starts the service with every role, shows it
 * healthy, then stops everything and exits 0. Later issues extend the script between "healthy"
 * and "stop" with deposits, withdrawals and reconciliation.
 */
import pg from "pg";
import { loadConfig } from "./config.js";
import { ensureDatabase, ensurePostgres } from "./devstack/services.js";
import { startDevStack } from "./devstack/stack.js";
import { ConfigError } from "./errors.js";
import { ROLE_NAMES } from "./roles.js";
import { startService } from "./start.js";

const say = (msg: string) => console.log(`[demo] ${msg}`);

async function recreateDatabase(url: string): Promise<void> {
  const u = new URL(url);
  const name = u.pathname.slice(1);
  u.pathname = "/postgres";
  const client = new pg.Client({ connectionString: u.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
  await ensureDatabase(url);
}

async function main() {
  const env = {
    DATABASE_URL: "postgres://postgres@127.0.0.1:5432/custody_demo",
    REDIS_PREFIX: "custody-demo",
    LOG_LEVEL: "warn",
    PORT: "0",
    ...process.env,
  };
  const config = loadConfig(env);
  await ensurePostgres(config.env.DATABASE_URL, say);
  say(`using a fresh database ${new URL(config.env.DATABASE_URL).pathname.slice(1)}`);
  await recreateDatabase(config.env.DATABASE_URL);
  const stack = await startDevStack(config, say);
  let service: Awaited<ReturnType<typeof startService>> | undefined;
  const stopAll = async () => {
    await service?.stop();
    await stack.stop();
  };
  process.once("SIGINT", () => void stopAll().then(() => process.exit(130)));
  process.once("SIGTERM", () => void stopAll().then(() => process.exit(143)));
  try {
    service = await startService(config, { roles: [...ROLE_NAMES] });
    const ready = await fetch(`${service.url}/readyz`);
    const body = (await ready.json()) as {
      status: string;
      checks: Record<string, { ok: boolean }>;
    };
    say(`service at ${service.url}: ${body.status}`);
    for (const [name, check] of Object.entries(body.checks))
      say(`  ${name}: ${check.ok ? "ok" : "FAILING"}`);
    if (!ready.ok) throw new Error("service is not ready");
    say("all good. To keep the stack and service up: `npx custody-node dev` in one terminal and");
    say("`npx custody-node start --migrate` in another (see README).");
  } finally {
    await stopAll();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exit(1);
  },
);
