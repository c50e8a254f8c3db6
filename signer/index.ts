/**
 * signer/ owns the custody schema: transaction requests and every signed attempt, the KMS-backed
 * accounts (keys never leave KMS), the local KMS emulator (dev/test only), nonce and fee
 * management, broadcasting, bumping and tracking every sent transaction to the chain's finality
 * rule. Callers read what happened through `getTxOutcomes` (never the custody tables). It executes
 * what callers request; it decides no policy.
 */

export { type CrashAt, createBroadcaster, parseCrashAt } from "./broadcaster/index.js";
export {
  ChainEvidenceUnavailableError,
  InvalidTxRequestError,
  KmsKeyUnsuitableError,
  KmsSignatureError,
  KmsThrottledError,
  LeaseLostError,
  TxRequestConflictError,
  TxRequestMinedOnChainError,
  TxRequestNonceNotFinalError,
  TxRequestNotFoundError,
  TxRequestNotReviewableError,
} from "./errors.js";
export { bumpFees, estimateFees, type Fees } from "./fees.js";
export {
  DEFAULT_EMULATOR_FILE,
  type KmsEmulator,
  startKmsEmulator,
} from "./kms-emulator/server.js";
export { createKmsAccount, createKmsClient, type KmsAccount } from "./kmsAccount.js";
export { classifyNodeError, type NodeErrorClass, RESPONSES } from "./nodeErrors.js";
export {
  type NonceEvidence,
  type NonceEvidenceReader,
  nonceEvidenceFromChains,
} from "./nonceEvidence.js";
export {
  failTxRequestByOperator,
  failTxRequestByOperatorIn,
  listTxRequestsForReview,
  type OperatorDecision,
  type OperatorDecisionResult,
  type ReviewItem,
  retryTxRequestByOperator,
} from "./operator.js";
export {
  failureIsEvidenced,
  type GetTxOutcomesParameters,
  type GetTxOutcomesReturnType,
  getTxOutcomes,
  type PaidTransfer,
  paidTransfer,
  type TxOutcome,
  type TxOutcomeStatus,
} from "./outcomes.js";
export {
  getTxRequest,
  normaliseTxRequest,
  requestsOfTransaction,
  requestTransaction,
  signerTransactions,
  TX_OUTCOMES_QUEUE,
  TX_REQUESTS_CHANNEL,
  type TxOutcomeJob,
  type TxRequestInput,
  type TxRequestRow,
  type TxRequestStatus,
  withdrawTxRequest,
} from "./requests.js";
export { signerRole } from "./role.js";
export type { FeeOnTransfer } from "./transferPosition.js";
export { startWalletSigner, type WalletSigner } from "./walletSigner.js";
