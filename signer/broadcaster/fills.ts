/**
 * Fill stage: an operator's nonce fill (`tx-requests fill-nonce`, operator.ts) is a request stored
 * `pending` with the nonce it fills (every other pending request has none: intake gives it the
 * next). Here it is signed at that nonce as a cancel is (cancel.ts: a 0-value transfer to the
 * wallet itself), stored with its bytes before it is sent, and from then on followed like any
 * request: resent, bumped, confirmed, finalized. Nothing is signed on a halted chain (halt.ts) or
 * on a count from a node behind the best head seen. A fill whose nonce the chain used meanwhile
 * (the outside transaction mined after all: a count at the best head past it, not an absence) fails
 * unsigned (`NONCE_FILL_USED`, its nonce released): it paid nothing and nothing waits for it. One
 * the outside transaction beat after it was signed fails so too, by the tracker, once the chain
 * shows that transaction at a final block (track.ts fillUsedElsewhere): never a review.
 */
import { estimateFees, type Fees } from "../fees.js";
import type { Lease } from "../lease.js";
import { recordEvent, storeAttempt } from "./attempts.js";
import type { ChainSnapshot } from "./chainView.js";
import type { BroadcasterContext } from "./context.js";
import { requestGas } from "./gasPlan.js";
import { sendInOrder, signTx } from "./send.js";

export async function fillNonces(
  ctx: BroadcasterContext,
  lease: Lease,
  snap: ChainSnapshot,
): Promise<void> {
  if (ctx.state.halt || !snap.atBestHead || ctx.state.nextNonce === undefined) return;
  const { rows } = await ctx.pool.query<{ id: string; nonce: string }>(
    `SELECT id, nonce::text FROM custody.tx_requests
      WHERE chain_id = $1 AND from_address = $2 AND status = 'pending' AND nonce IS NOT NULL
      ORDER BY nonce`,
    [ctx.chain.chainId, ctx.from],
  );
  for (const r of rows) {
    const nonce = BigInt(r.nonce); // int8 text, not NUMERIC
    if (nonce < snap.latestCount) {
      await lease.transaction(async () => {
        const upd = await lease.query(
          `UPDATE custody.tx_requests
              SET status = 'failed', nonce = NULL, error_code = 'NONCE_FILL_USED',
                  error_message = $2, outcome_seq = outcome_seq + 1, updated_at = now()
            WHERE id = $1 AND status = 'pending'`,
          [r.id, `nonce ${nonce} used on chain before the fill was signed`],
        );
        if (upd.rowCount === 0) return;
        await recordEvent(lease, {
          requestId: r.id,
          from: "pending",
          to: "failed",
          event: "nonce_fill_used",
          details: {
            nonce: nonce.toString(),
            mined_count: snap.latestCount.toString(),
            head: snap.head.toString(),
          },
        });
      });
      ctx.log.warn({
        msg: "nonce fill not needed: the chain used the nonce before it was signed",
        request_id: r.id,
        nonce: String(nonce),
      });
      continue;
    }
    let fees: Fees;
    let gas: Awaited<ReturnType<typeof requestGas>>;
    try {
      fees = await estimateFees(ctx.client, ctx.chain, snap.head, ctx.chainView.gasPriceAt);
      gas = await requestGas(
        ctx,
        { id: r.id, to: ctx.from, value: 0n, data: "0x", gasLimit: null },
        { blockNumber: snap.head },
      );
    } catch (error) {
      ctx.log.warn({ msg: "nonce fill not signed yet", request_id: r.id, err: error });
      continue;
    }
    const tx = { nonce, to: ctx.from, value: 0n, data: "0x" as const, gasLimit: gas.gasLimit };
    let signed: { raw: `0x${string}`; hash: `0x${string}` };
    try {
      signed = await signTx(ctx, tx, fees);
    } catch (error) {
      ctx.log.warn({ msg: "KMS signing failed", request_id: r.id, err: error });
      continue;
    }
    const stored = await lease.transaction(async () => {
      const upd = await lease.query(
        `UPDATE custody.tx_requests
            SET status = 'signed', tx_hash = $2, gas_limit = $3, gas_estimated = true, l1_fee = $4,
                updated_at = now()
          WHERE id = $1 AND status = 'pending' AND nonce = $5`,
        [r.id, signed.hash, gas.gasLimit.toString(), gas.l1Fee.toString(), nonce.toString()],
      );
      if (upd.rowCount === 0) return undefined;
      const a = await storeAttempt(ctx, lease, {
        requestId: r.id,
        nonce,
        purpose: "send",
        hash: signed.hash,
        raw: signed.raw,
        gasLimit: gas.gasLimit,
        fees,
      });
      await recordEvent(lease, {
        requestId: r.id,
        from: "pending",
        to: "signed",
        event: "nonce_fill_signed",
        details: { nonce: nonce.toString(), tx_hash: signed.hash },
      });
      return a;
    });
    if (!stored) continue;
    ctx.metrics.attempts.inc({ ...ctx.labels, kind: "first" });
    ctx.log.warn({
      msg: "operator's nonce fill signed at its nonce",
      request_id: r.id,
      nonce: String(nonce),
      tx_hash: signed.hash,
    });
    // Held: a halt opened while KMS signed it (halt.ts). Stored, it goes out after the resume.
    await sendInOrder(ctx, lease, [stored]);
  }
}
