/**
 * The simulator's ingestor as a child process, so a scenario can kill -9 it at any instant. It
 * runs the real `createIngestor` and does one `syncOnce` per "sync" line on stdin, answering "ok"
 * or "error <message>" on stdout: the parent decides when it syncs, so a seed's schedule replays.
 * Environment: DATABASE_URL, SIM_CHAIN (the chain's config entry as JSON), SIM_BATCH_BLOCKS,
 * SIM_RPC_TIMEOUT_MS, LOG_LEVEL.
 */
import { createInterface } from "node:readline";
import { chainSchema, createEvmAdapter } from "../../chains/index.js";
import { createCommon } from "../../foundation/common.js";
import { oneChainConfig } from "../../foundation/config.js";
import { createPool } from "../../foundation/db.js";
import { createIngestor } from "../../indexers/index.js";

const config = oneChainConfig(chainSchema, process.env, process.env.SIM_CHAIN, "(sim ingestor)");
const env = config.env;
const chain = config.chains[0]!;
const common = createCommon(config);
const pool = createPool(env.DATABASE_URL, { max: 4, applicationName: "sim-ingestor" });
const ingestor = await createIngestor({
  common,
  pool,
  adapter: createEvmAdapter(
    chain,
    { common },
    { timeoutMs: Number(process.env.SIM_RPC_TIMEOUT_MS ?? 1000) },
  ),
  options: { batchBlocks: Number(process.env.SIM_BATCH_BLOCKS ?? 5), concurrency: 2 },
});
process.stdout.write("ready\n");
// One command at a time, in order.
let queue = Promise.resolve();
createInterface({ input: process.stdin }).on("line", (line) => {
  queue = queue.then(async () => {
    if (line.trim() === "sync") {
      try {
        await ingestor.syncOnce();
        process.stdout.write("ok\n");
      } catch (error) {
        process.stdout.write(`error ${String((error as Error).message).replace(/\s+/g, " ")}\n`);
      }
    } else if (line.trim() === "stop") {
      await ingestor.stop();
      await pool.end();
      process.exit(0);
    }
  });
});
