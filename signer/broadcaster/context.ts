/**
 * What every stage of one (chain, hot wallet) broadcaster shares: built once by `createBroadcaster`
 * and passed down (ponder's `Common` pattern), so each stage file is a plain function of it.
 */
import type { Hex, PublicClient } from "viem";
import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { Pool } from "../../foundation/db.js";
import type { Logger } from "../../foundation/logger.js";
import type { QueueFactory } from "../../foundation/queues.js";
import type { ChainHalt } from "../../indexers/index.js";
import type { KmsAccount } from "../kmsAccount.js";
import type { SignerMetrics } from "../metrics.js";
import type { ChainView } from "./chainView.js";
import type { CrashPoint } from "./crashPoints.js";

/** `keyId`: the KMS key as configured, pinned to its address on first load (hotWalletKeys.ts). */
export type SignerAccount = Pick<KmsAccount, "address" | "signTransaction"> &
  Partial<Pick<KmsAccount, "keyId">>;

export type BroadcasterSettings = {
  /** Requests taken per intake round. */
  batchSize: number;
  /** Concurrent KMS Sign calls. */
  signConcurrency: number;
  /** Cancels of one nonce refused by nodes before it needs a human (needs_review). */
  maxCancelAttempts: number;
  /** Backoff between failed cancel tries (KMS/RPC error or refusal): first, then doubling to max. */
  cancelBackoffMs: number;
  maxCancelBackoffMs: number;
  /** A used nonce without a receipt of ours for this long is reported `receipt_unknown`. */
  receiptGraceMs: number;
  /** How often a request without a receipt is searched on every endpoint. */
  fullSearchIntervalMs: number;
  /**
   * The lowest open nonce unmined for this long after its send, while the node's pending count
   * says it holds nothing executable at that nonce: its stored bytes are resent, and if it is
   * still not pending this long after that (or the node answered "already known"), it is bumped
   * at once instead of at the bump interval (stall.ts). Well under the bump interval.
   */
  stallResendMs: number;
  /** A pending request the wallet could not pay is read again by intake after this long. */
  unpaidRetryMs: number;
};

export type BroadcasterContext = {
  common: Common;
  pool: Pool;
  queues: QueueFactory;
  chain: ChainConfig;
  account: SignerAccount;
  /** The hot wallet, lowercase. */
  from: Hex;
  /** viem client on chains/' fallback transport (fees, gas estimates, sends). */
  client: PublicClient;
  /** Reads of chain state the tracker trusts (heads, nonces, receipts on every endpoint). */
  chainView: ChainView;
  log: Logger;
  metrics: SignerMetrics;
  labels: { chain_id: string; wallet: string };
  settings: BroadcasterSettings;
  /** Count an alert metric and log it at error level. */
  alert: (name: string, fields: Record<string, unknown>) => void;
  crash: (point: CrashPoint) => void;
  /** Mutable across ticks: the next nonce to allocate (set by resync). */
  state: {
    nextNonce: bigint | undefined;
    /**
     * Pending requests the wallet could not pay at their last intake, left out of intake reads
     * until this time (ms), so a batch of them never hides the requests behind them (intake.ts).
     */
    unpaidUntil: Map<string, number>;
    /**
     * Per unmined nonce, the raise of a bump the balance could not cover with the rest in flight
     * (bump.ts): intake keeps it free, so new sends wait rather than take what that bump needs.
     */
    bumpsOwed: Map<bigint, bigint>;
    /** The chain's open halt as this tick read it (halt.ts): nothing new is signed or sent. */
    halt: ChainHalt | null;
  };
};

export function createAlert(
  log: Logger,
  metrics: SignerMetrics,
  labels: BroadcasterContext["labels"],
): BroadcasterContext["alert"] {
  return (name, fields) => {
    metrics.alerts.inc({ ...labels, alert: name });
    log.error({ msg: "signer alert", alert: name, ...fields });
  };
}
