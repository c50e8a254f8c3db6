/**
 * Re-estimating a send's gas on a chain whose gas carries the L1 cost (`l1CostInGas`: Arbitrum).
 * There a transaction's gas pays for its L1 data at the L1 price of the moment, so the gas a send
 * needs rises with that price, and a node refuses bytes whose limit no longer covers it "intrinsic
 * gas too low": not at this price, rather than never. Elsewhere that refusal means the bytes can
 * never be included (nodeErrors.ts), their nonce is cancelled and the request fails.
 *
 * On such a chain a refused payment whose limit came from our estimate (the caller gave none) is
 * kept live, flagged with the refusal, instead of rejected (send.ts); the bump stage replaces it at
 * the same nonce, signed with a fresh estimate at the wallet's head (bump.ts), held to the wallet's
 * budget like any bump. At most `MAX_REGAS` times per nonce: a further refusal is the class's usual
 * response (the nonce stage cancels the nonce, and the cancel is estimated afresh too). Every
 * attempt is stored and only one can mine per nonce: nothing is paid twice.
 */
import type { Lease } from "../lease.js";
import { classifyNodeError, errorText, type NodeErrorClass } from "../nodeErrors.js";
import type { Attempt, WatchedRequest } from "./attempts.js";
import type { BroadcasterContext } from "./context.js";
import { requestGas } from "./gasPlan.js";

/** Re-estimates of one request's nonce, at most; a further refusal rejects the bytes for good. */
export const MAX_REGAS = 3;

/**
 * Whether a node's refusal as `cls` means "not at this L1 price" rather than "never": "intrinsic
 * gas too low" on a chain whose gas carries the L1 cost. A payment's (refusalRegassed) and a stored
 * CLI deploy's (storedDeploy.ts replaceStoredDeploy's `regas`) are then signed again with a fresh
 * estimate; elsewhere the refusal is answered as the class always is.
 */
export function regasRefusal(
  chain: Pick<BroadcasterContext["chain"], "l1CostInGas">,
  cls: NodeErrorClass | undefined,
): boolean {
  return cls === "intrinsic_gas_too_low" && chain.l1CostInGas;
}

/**
 * Whether a refusal of `attempt` as `cls` is answered by a re-estimate (the attempt stays live)
 * rather than by rejecting its bytes: on a chain whose gas carries the L1 cost, for a payment whose
 * limit came from our estimate, while its nonce has had fewer than MAX_REGAS other attempts refused
 * so. In the refusal's transaction.
 */
export async function refusalRegassed(
  ctx: BroadcasterContext,
  lease: Lease,
  attempt: Attempt,
  cls: NodeErrorClass | undefined,
): Promise<boolean> {
  if (!regasRefusal(ctx.chain, cls) || attempt.purpose !== "send") return false;
  const { rows } = await lease.query<{ estimated: boolean; refused: number }>(
    `SELECT r.gas_estimated AS estimated,
            (SELECT count(*)::int FROM custody.tx_attempts a
              WHERE a.request_id = r.id AND a.nonce = $2 AND a.purpose = 'send' AND a.id <> $3
                AND a.last_error_class = 'intrinsic_gas_too_low') AS refused
       FROM custody.tx_requests r WHERE r.id = $1`,
    [attempt.requestId, attempt.nonce.toString(), attempt.id],
  );
  return rows[0]?.estimated === true && rows[0].refused < MAX_REGAS;
}

/** The bump stage's due attempts that a re-estimate replaces (refusalRegassed kept them live). */
export function regasDue(a: Pick<Attempt, "purpose" | "lastErrorClass">): boolean {
  return a.purpose === "send" && a.lastErrorClass === "intrinsic_gas_too_low";
}

/**
 * The gas limit a regasDue attempt is re-signed with: a fresh estimate at the wallet's head (the
 * chain's margin and headroom, gas.ts), never below the refused limit. An estimate that reverts
 * rejects the bytes for good (the payment would revert: the nonce stage cancels the nonce, as the
 * refusal would have elsewhere); any other failure (a node's trouble, the wallet short of funds)
 * leaves them live for the next pass. undefined: nothing to sign on this pass.
 */
export async function reestimate(
  ctx: BroadcasterContext,
  lease: Lease,
  a: Attempt,
  req: Pick<WatchedRequest, "id" | "to" | "value" | "data">,
  head: bigint,
): Promise<bigint | undefined> {
  const fields = { request_id: a.requestId, nonce: String(a.nonce), gas_limit: String(a.gasLimit) };
  try {
    const fresh = await requestGas(
      ctx,
      { id: req.id, to: req.to, value: req.value, data: req.data, gasLimit: null },
      { blockNumber: head },
    );
    // Never less than the refused limit, which was already too little.
    if (fresh.gasLimit < a.gasLimit) return a.gasLimit;
    return fresh.gasLimit;
  } catch (error) {
    const cls = classifyNodeError(error);
    if (cls !== "execution_reverted") {
      ctx.log.warn({
        msg: "re-estimate failed; retried next pass",
        ...fields,
        class: cls,
        err: error,
      });
      return undefined;
    }
    await rejectAttempt(lease, a.id, { cls, message: errorText(error).slice(0, 500) });
    ctx.log.warn({
      msg: "re-estimate reverted: attempt rejected for good; its nonce goes to the nonce stage",
      ...fields,
    });
    return undefined;
  }
}

/** Reject a live attempt's bytes for good (never resent; still found if they mine). */
export async function rejectAttempt(
  lease: Lease,
  id: string,
  error?: { cls: NodeErrorClass; message: string },
): Promise<void> {
  await lease.query(
    `UPDATE custody.tx_attempts
        SET status = 'rejected', last_error_class = COALESCE($2, last_error_class),
            last_error = COALESCE($3, last_error)
      WHERE id = $1 AND status IN ('signed', 'broadcast')`,
    [id, error?.cls ?? null, error?.message ?? null],
  );
}
