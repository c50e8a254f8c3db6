/**
 * Runs one chain's ingestor as its own process, without Redis or HTTP: the kill -9 test spawns it
 * and SIGKILLs it at random points. Environment: DATABASE_URL, INDEXER_CHAIN (the chain's config
 * entry as JSON, validated like the config file), INDEXER_BATCH_BLOCKS, INDEXER_CONCURRENCY,
 * INDEXER_POLL_MS, LOG_LEVEL. SIGTERM stops it cleanly. With INDEXER_START_ON_STDIN=1 it loads,
 * then waits for a line on stdin before it touches the database: the test starts the next process
 * while the current one runs (loading is most of a start) and lets it go once that one is killed.
 */
import { chainSchema, createEvmAdapter } from "../chains/index.js";
import { createCommon } from "../foundation/common.js";
import { oneChainConfig } from "../foundation/config.js";
import { createPool } from "../foundation/db.js";
import { createIngestor } from "./createIngestor.js";

const config = oneChainConfig(chainSchema, process.env, process.env.INDEXER_CHAIN, "(runIngestor)");
const env = config.env;
const chain = config.chains[0]!;
const common = createCommon(config);
if (process.env.INDEXER_START_ON_STDIN === "1")
  await new Promise<void>((resolve) => process.stdin.once("data", () => resolve()));
const pool = createPool(env.DATABASE_URL, { max: 4, applicationName: "run-ingestor" });
const ingestor = await createIngestor({
  common,
  pool,
  adapter: createEvmAdapter(chain, { common }),
  options: {
    batchBlocks: Number(process.env.INDEXER_BATCH_BLOCKS ?? 100),
    concurrency: Number(process.env.INDEXER_CONCURRENCY ?? 3),
    pollIntervalMs: Number(process.env.INDEXER_POLL_MS ?? 200),
  },
});
ingestor.start();
console.log("ingestor started");
process.once("SIGTERM", () => {
  ingestor
    .stop()
    .then(() => pool.end())
    .then(() => process.exit(0));
});
