/**
 * Reconciliation (schema `recon`): proves, per chain and final block, that the chain facts the
 * indexer stored match the ledger transfer by transfer (exclusively, so a double credit is always
 * seen), that hot wallets and deposit addresses hold what their custody accounts say, and that
 * custody assets cover user liabilities, and that no deposit address holds value nothing explains
 * (`unattributed_inflow`, credited by `custody-node recon credit-inflow`). Reorg holds are shown,
 * not broken. Runs are stored with their inputs and breaks and reported as JSON, CSV and HTML.
 * Breaks have a stable identity across runs and are worked to closure (open → acknowledged →
 * resolved, `custody-node recon breaks`); each run records the audit log's head hash.
 * Run by `custody-node reconcile` and the scheduled `reconciler` role.
 */
export {
  type BalanceCheck,
  checkBalances,
  type LedgerBalances,
  type OnchainBalance,
} from "./balances.js";
export {
  acknowledgeBreak,
  acknowledgeBreakIn,
  BREAK_STATES,
  type BreakState,
  type BreakStateName,
  breakIdentity,
  breakStatesOf,
  listBreakStates,
  resolveBreak,
  resolveBreakIn,
} from "./breakStates.js";
export { type CreditInflowResult, creditInflow, parseBreakId } from "./creditInflow.js";
export {
  BlockNotFinalError,
  BreakNotFoundError,
  BreakStateError,
  InflowNotCreditableError,
  NoFinalBlockError,
  RunNotFoundError,
} from "./errors.js";
export {
  findUnattributedInflows,
  loadExpectedBalances,
  selectInflowAddresses,
} from "./inflows.js";
export { type MatchInput, type MatchResult, matchFactsToEntries } from "./match.js";
export {
  createReconciler,
  type Reconciler,
  type RunOptions,
  type RunSummary,
} from "./reconcile.js";
export {
  type AssetSummary,
  buildReport,
  getRunReport,
  type RenderedReport,
  type RunReport,
  reportCsv,
  reportHtml,
} from "./report.js";
export { reconcilerRole } from "./role.js";
export { withChainRunLock } from "./runLock.js";
export type { SweepReader, SweptItem } from "./sources.js";
export { listAuditAnchors, listRuns, readRun, type StoredRun } from "./store.js";
export {
  BREAK_TYPES,
  type Break,
  type BreakType,
  type ChainFact,
  type LedgerEntry,
  type ReorgHold,
} from "./types.js";
