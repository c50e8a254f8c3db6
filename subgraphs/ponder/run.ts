/**
 * One command to run the Ponder app beside a running custody-node, against its chain:
 *
 *   npm --prefix subgraphs run serve -- --chain local-a [--port 42069] [--schema ponder_local_a]
 *
 * Reads the service's config (CUSTODY_CONFIG, DATABASE_URL: the same environment as
 * `custody-node start`) and its deployed contracts, writes the deployment file under
 * subgraphs/ponder/.ponder/, and runs `ponder start` in the foreground with its tables in their own
 * Postgres schema of the service's database (the custody's schemas are never written). Ctrl-C or
 * SIGTERM stops it. Not part of the custody path: the service never needs it.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { chainSchema } from "../../chains/config.js";
import { loadConfig } from "../../foundation/config.js";
import { createPool } from "../../foundation/db.js";
import { deploymentFromDatabase } from "./fromDatabase.js";

const here = path.dirname(new URL(import.meta.url).pathname);
const { values } = parseArgs({
  options: {
    chain: { type: "string" },
    port: { type: "string", default: "42069" },
    schema: { type: "string" },
  },
});

const config = loadConfig(chainSchema);
const chain =
  config.chains.find((c) => c.key === values.chain || String(c.chainId) === values.chain) ??
  (values.chain === undefined && config.chains.length === 1 ? config.chains[0] : undefined);
if (!chain) {
  console.error(
    `--chain: expected one of ${config.chains.map((c) => c.key).join(", ")} (got ${values.chain ?? "nothing"})`,
  );
  process.exit(2);
}
const ponderBin = path.join(here, "..", "node_modules", ".bin", "ponder");
if (!existsSync(ponderBin)) {
  console.error("subgraphs/ is not installed: run `npm ci --prefix subgraphs`");
  process.exit(2);
}
const pool = createPool(config.env.DATABASE_URL, { max: 1, applicationName: "ponder-deployment" });
let deployment: Awaited<ReturnType<typeof deploymentFromDatabase>>;
try {
  deployment = await deploymentFromDatabase(pool, chain);
} finally {
  await pool.end();
}
const file = path.join(here, ".ponder", `deployment-${chain.key}.json`);
mkdirSync(path.dirname(file), { recursive: true });
writeFileSync(file, `${JSON.stringify(deployment, null, 2)}\n`);
console.log(`[ponder] ${chain.key}: deployment written to ${file}`);

const schema = values.schema ?? `ponder_${chain.key.replaceAll("-", "_")}`;
const child = spawn(ponderBin, ["start", "--schema", schema, "--port", values.port], {
  cwd: here,
  env: {
    ...process.env,
    DATABASE_URL: config.env.DATABASE_URL,
    CUSTODY_PONDER_DEPLOYMENT: file,
  },
  stdio: "inherit",
});
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => {
    child.kill(signal);
  });
child.on("exit", (code, signal) => {
  process.exit(code ?? (signal ? 1 : 0));
});
