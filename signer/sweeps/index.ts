/**
 * Sweeps: moving credited deposit-address balances (capped by what each address holds on chain) to
 * the hot wallet in batched ForwarderFactory calls through the signer, booking the sweep and gas
 * transfers once the signer reports the sweep confirmed (exactly once, from the Swept events;
 * followed until final, a reorg-removed booking reversed until it mines again), and moving
 * hot-wallet value above its per-asset ceiling to the chain's cold address (followed until final
 * the same way). Runs in the `worker` role (./role.ts); owns custody.sweeps, custody.sweep_items
 * and custody.cold_moves.
 */
export { coldAccount, gasTransfer, hotAccount, sweepTransfer } from "./bookings.js";
export { readSweepCandidates } from "./candidates.js";
export { excessOverCeiling, hotCeilings, settleColdMoves, startColdMoves } from "./coldMoves.js";
export { createSweeper, type Sweeper, type SweepTickResult } from "./createSweeper.js";
export { BookingFailedError, SweepReceiptError } from "./errors.js";
export { type FollowedColdMove, followColdMoves } from "./followColdMoves.js";
export { type FollowedSweep, followAction, followSweeps } from "./followSweeps.js";
export {
  type PlannedSweep,
  planSweeps,
  type SweepCandidate,
  sweepThresholds,
} from "./planSweeps.js";
export { sweepsRole } from "./role.js";
export { type SettledSweep, settlementOf, settleSweeps } from "./settleSweeps.js";
export { type StartedSweep, startSweeps } from "./startSweeps.js";
export {
  type BookedSweepItem,
  bookedSweepItems,
  sweepReader,
  sweptAddressesSince,
} from "./sweepReads.js";
export { type SweepWorker, startSweepWorker } from "./worker.js";
