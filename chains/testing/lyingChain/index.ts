/**
 * The lying chain: a seeded, deterministic fault layer in front of anvil for tests and the
 * simulator (ops/sim). `startLyingProxy` lies at the transport and about the chain (lagging,
 * syncing, withheld receipts, disagreeing load-balanced backends); `injectReorg` rewrites anvil's
 * newest blocks (re-mined, dropped or replaced transactions). Test-only.
 */
export {
  type Backend,
  type Fault,
  type FaultRates,
  type LyingProxy,
  type MethodLie,
  startLyingProxy,
} from "./proxy.js";
export {
  type InjectReorgOptions,
  injectReorg,
  type MinedTx,
  type ReorgOutcome,
  type TxFate,
  type TxRequestJson,
} from "./reorg.js";
export { answerThroughView, type ViewState } from "./view.js";
