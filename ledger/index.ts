/**
 * ledger: the double-entry ledger where customers' money lives (schema `ledger`). It owns assets,
 * accounts (chart in docs/contracts.md), immutable two-phase transfers with caller-chosen ids
 * (TigerBeetle's model: exists / mismatch / sticky failures, pending → post/void/expire, linked
 * chains, balance limits), batched application under ordered row locks, balance and history
 * queries, the ledger check, deposit crediting from the indexer's confirmed facts with reorg holds
 * (DESIGN "Money flows"), the reorg receivables (repaid by crediting, written off by an operator),
 * and the customers whose withdrawals are blocked.
 * Reconciliation (`ledger/recon/`) reads them through the views published in ledger/migrations.
 */
export { bookDeployGas } from "./bookDeployGas.js";
export { availableBalance, classifyAccount } from "./chartOfAccounts.js";
export { type CheckProblem, type CheckReport, checkLedger } from "./check.js";
export { createLedger, type Ledger, type TransferOptions } from "./createLedger.js";
export { type CreditingWorker, startCreditingWorker } from "./creditingWorker.js";
export {
  type CreditScope,
  createDepositCrediting,
  type DepositCrediting,
  reorgHoldName,
  type SweepResult,
} from "./depositCrediting.js";
export {
  type DepositFactRow,
  type DepositFilter,
  type DepositRow,
  depositCreditExists,
  listDeposits,
  listReorgHolds,
  type ReorgHoldRow,
} from "./deposits.js";
export {
  AccountNotFoundError,
  InvalidAccountError,
  TransferFailedError,
  TransferIdRaceError,
  TreasuryMoveError,
} from "./errors.js";
export {
  type FailureEvidence,
  type FollowedOutcome,
  failureIsEvidenced,
  followAction,
} from "./failureEvidence.js";
export {
  gasBooking,
  gasReversal,
  gasTransfer,
  gasTransferName,
  gasUnbooking,
  generationSuffix,
  holdSettlement,
} from "./gasBookings.js";
export { bookInflowCredit, type InflowCredit } from "./inflowCredits.js";
export { accountTransferSeqExists } from "./queries.js";
export {
  listReorgReceivables,
  outstandingReorgReceivables,
  type ReorgReceivable,
  type ReorgWriteOff,
  type ReorgWriteOffArgs,
  reorgWriteOffName,
  writeOffReorgReceivable,
} from "./reorgReceivables.js";
export {
  coverReorgHold,
  lockReorgReceivable,
  REORG_LOSS_ACCOUNT,
  REORG_SHORTFALL_BLOCK,
  recordReorgShortfall,
  recordWriteOffReversal,
  reorgShortfallCounter,
  writeOffReversal,
} from "./reorgShortfall.js";
export { creditingRole } from "./role.js";
export {
  assetIdOf,
  assetTokenOf,
  depositTransferName,
  isUuid,
  transferId,
} from "./transferId.js";
export {
  bookTreasuryMove,
  DEPLOYS_ARE_NOT_REQUESTS,
  type SignerTransactions,
  TREASURY_MOVES,
  type TreasuryBooking,
  type TreasuryDeps,
  type TreasuryMove,
  type TreasuryMoveArgs,
  type TreasuryUnbooking,
  treasuryTransferId,
  treasuryUnbookTransferId,
  unbookTreasuryMove,
  unfinalFundings,
} from "./treasury.js";
export * from "./types.js";
export { type Unfreeze, type UnfreezeArgs, unfreezeCustomer } from "./unfreeze.js";
export {
  blockWithdrawals,
  clearWithdrawalBlocks,
  clearWithdrawalShortfallBlock,
  isWithdrawalBlocked,
  listWithdrawalBlocks,
  type WithdrawalBlock,
} from "./withdrawalBlocks.js";
