/**
 * signer/ owns the custody schema: transaction requests and every signed attempt, the KMS-backed
 * accounts (keys never leave KMS), the local KMS emulator (dev/test only), nonce and fee
 * management, broadcasting, bumping and tracking to the chain's confirmation rule. It executes
 * what callers request; it decides no policy.
 */

export {
  InvalidTxRequestError,
  KmsKeyUnsuitableError,
  KmsSignatureError,
  KmsThrottledError,
  LeaseLostError,
  TxRequestConflictError,
} from "./errors.js";
export {
  getTxRequest,
  normaliseTxRequest,
  requestTransaction,
  TX_OUTCOMES_QUEUE,
  TX_REQUESTS_CHANNEL,
  type TxOutcomeJob,
  type TxRequestInput,
  type TxRequestRow,
  type TxRequestStatus,
} from "./requests.js";
