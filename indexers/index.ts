/**
 * indexers: one ingestor per chain (run by the `indexer` role) that stores block headers and
 * custody-relevant chain facts (native, ERC-20, internal and fee) into the `chain` schema, tracks
 * confirmations (`seen` → `confirmed` | `orphaned`), handles reorgs above the finalized block
 * (recorded in chain.reorgs), halts a chain whose reorg would reach a final block (chain.halts,
 * `custody-node chains halted|resume`), publishes the finalized block (`readFinalized`), and rings
 * the `chain-facts` doorbell. It believes an RPC endpoint only for blocks it has reached. It never
 * credits balances: the ledger does. It also keeps the deposit addresses and the custody's deployed
 * contracts (depositAddresses/: a deposit address is a watched address with an owner).
 */
export {
  createIngestor,
  type FactsDoorbell,
  type Ingestor,
  type IngestorOptions,
  type IngestorStatus,
} from "./createIngestor.js";
export {
  type CustomerDepositAddress,
  countCustody,
  depositAddressesOf,
  hotWalletOf,
  isWatchedAddress,
  listCustody,
  loadCustody,
  loadCustodyOf,
  loadCustodyWallets,
  type WatchedKind,
} from "./custodyAddresses.js";
export {
  adoptForRecordedFactory,
  allocateDepositAddress,
  assertCustomerId,
  contractHotWallet,
  contractHotWallets,
  type DeployedContract,
  type DepositAddress,
  FactoryNotDeployedError,
  FORWARDER_FACTORY,
  findDepositAddress,
  getContract,
  getDepositAddress,
  InvalidCustomerIdError,
  recordContract,
  UnknownChainError,
} from "./depositAddresses/index.js";
export {
  CHAIN_FACTS_JOB,
  CHAIN_FACTS_QUEUE,
  type ChainFactsJob,
  createFactsDoorbell,
} from "./doorbell.js";
export { type Fact, type FactKind, NATIVE_ASSET } from "./extractFacts.js";
export { type FinalizedBlock, finalityRule, readFinalized } from "./finality.js";
export { type ChainHalt, openHalt, readHalts } from "./halts.js";
export { indexerHealthCheck, unhealthyReasons } from "./health.js";
export { indexedHeights } from "./indexedHeights.js";
export { type ResumeResult, resumeChain } from "./resume.js";
export { indexerRole } from "./role.js";
export { holdFactWrites } from "./store.js";
export {
  addWatchedAddresses,
  notifyWatchedAddress,
  WATCHED_CHANNEL,
  type WatchedAddress,
} from "./watched.js";
