/**
 * indexers: one ingestor per chain (run by the `indexer` role) that stores block headers and
 * custody-relevant chain facts (native, ERC-20, internal and fee) into the `chain` schema, tracks
 * confirmations (`seen` → `confirmed` | `orphaned`), handles reorgs at any depth (recorded in
 * chain.reorgs), and rings the `chain-facts` doorbell. It never credits balances: the ledger does.
 */
export {
  createIngestor,
  type FactsDoorbell,
  type Ingestor,
  type IngestorOptions,
  type IngestorStatus,
} from "./createIngestor.js";
export {
  CHAIN_FACTS_JOB,
  CHAIN_FACTS_QUEUE,
  type ChainFactsJob,
  createFactsDoorbell,
} from "./doorbell.js";
export { type Fact, type FactKind, NATIVE_ASSET } from "./extractFacts.js";
export { type FinalizedBlock, finalityRule, readFinalized } from "./finality.js";
export { type ChainHalt, readHalts } from "./halts.js";
export { indexerHealthCheck, unhealthyReasons } from "./health.js";
export { notifyWatchedAddress, WATCHED_CHANNEL } from "./watched.js";
