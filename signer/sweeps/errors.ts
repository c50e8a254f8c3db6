import { BaseError } from "../../foundation/errors.js";
import type { TransferResult } from "../../ledger/index.js";

/**
 * The ledger refused a sweep's or cold move's transfers; nothing was booked and the settlement is
 * retried on the next tick (an alert-worthy state: the ledger and the chain disagree).
 */
export class BookingFailedError extends BaseError {
  override name = "BookingFailedError";
  constructor(what: string, failed: readonly TransferResult[]) {
    super(`The ledger refused the transfers of ${what}`, {
      code: "SWEEP_BOOKING_FAILED",
      retryable: true,
      details: failed
        .map((f) => (f.status === "failed" ? `${f.id}: ${f.code} ${f.detail ?? ""}` : f.id))
        .join("; "),
      meta: { what },
    });
  }
}

/** The sweep's receipt does not show what the factory must have emitted. */
export class SweepReceiptError extends BaseError {
  override name = "SweepReceiptError";
  constructor(sweepId: string, details: string) {
    super(`Sweep ${sweepId} receipt is inconsistent`, {
      code: "SWEEP_RECEIPT_INCONSISTENT",
      retryable: true,
      details,
      meta: { sweep_id: sweepId },
    });
  }
}
