/**
 * Intake stage: pending requests get their gas limit, the next nonces and a KMS signature, and the
 * signed bytes are stored with the nonces in one transaction BEFORE anything is sent. A crash
 * before that commit leaves nothing (the signatures are thrown away unsent); after it, the stored
 * bytes are sent by whoever holds the lease next.
 */
import type { Hex } from "viem";
import { mapLimit } from "../../foundation/mapLimit.js";
import { estimateFees, type Fees } from "../fees.js";
import {
  affordable,
  IntrinsicGasTooLowError,
  maxCost,
  OpStackFeeUnknownError,
  type ReadAt,
} from "../gas.js";
import type { Lease } from "../lease.js";
import { classifyNodeError, errorText } from "../nodeErrors.js";
import { ATTEMPT_COLUMNS, type AttemptRow, attemptFromRow } from "./attempts.js";
import { inFlightCost, readL1Yardstick } from "./budget.js";
import type { WalletNow } from "./chainView.js";
import type { BroadcasterContext } from "./context.js";
import { requestGas } from "./gasPlan.js";
import { resendLive, sendInOrder, signTx } from "./send.js";
import { tokenShortfall, tokensFit, tokenTransfer } from "./tokenBudget.js";

type Ready = { id: string; to: Hex; value: bigint; data: Hex; gasLimit: bigint };

/** Refused before a nonce was taken: failing it leaves no gap (rings the outcome doorbell). */
async function failBeforeNonce(lease: Lease, id: string, code: string, message: string) {
  await lease.query(
    `UPDATE custody.tx_requests
        SET status = 'failed', error_code = $2, error_message = $3, outcome_seq = outcome_seq + 1,
            updated_at = now()
      WHERE id = $1 AND status = 'pending'`,
    [id, code, message.slice(0, 500)],
  );
}

/**
 * Take pending requests: gas, nonces, sign, store, then send. Returns how many were stored. A
 * pending request with a nonce already is an operator's nonce fill: the fill stage signs it at
 * that nonce (fills.ts).
 */
export async function intake(ctx: BroadcasterContext, lease: Lease): Promise<number> {
  const { chain, from, settings, state } = ctx;
  if (state.nextNonce === undefined) throw new Error("resync must run before intake");
  // A halted chain: pending requests wait unsigned, no nonce taken, until the resume (halt.ts).
  if (state.halt) return 0;
  // Requests the wallet could not pay wait out of the read for a while: a batch made only of them
  // would otherwise hide the ones behind them for good (a sweep refilling the wallet among them).
  const now = Date.now();
  for (const [id, until] of state.unpaidUntil) if (until <= now) state.unpaidUntil.delete(id);
  const unpaid = (id: string) => state.unpaidUntil.set(id, now + settings.unpaidRetryMs);
  const { rows } = await ctx.pool.query<{
    id: string;
    to_address: Hex;
    value: bigint;
    data: Hex;
    gas_limit: bigint | null;
  }>(
    `SELECT id, to_address, value, data, gas_limit
     FROM custody.tx_requests
     WHERE chain_id = $1 AND from_address = $2 AND status = 'pending' AND nonce IS NULL
       AND id <> ALL($4::text[])
     ORDER BY created_at, id LIMIT $3`,
    [chain.chainId, from, settings.batchSize, [...state.unpaidUntil.keys()]],
  );
  if (rows.length === 0) return 0;
  // The wallet's mined count and balance, one node's, in one batch (chainView walletNow: a node at
  // the best head seen first). What is in flight is counted from that count (budget.ts
  // `UNMINED_THERE`): from a node behind, the sends mined since its block are in flight there, not
  // in its balance. Not known: these requests wait, unsigned.
  let wallet: WalletNow;
  try {
    wallet = await ctx.chainView.walletNow();
  } catch (error) {
    ctx.log.warn({ msg: "wallet balance not known, requests stay pending", err: error });
    return 0;
  }
  // Fees are needed only to sign new bytes: a node that cannot tell them leaves these requests
  // pending (no nonce taken) and must not end the tick before the sent ones are tracked.
  // They are read at that node's head (fees.ts: a syncing node's `latest` base fee is from long
  // ago). On an OP-stack chain the L1 price is part of the fees: every L1 fee of this round (each
  // request's and the yardstick that scales the sends in flight to the price now) is read at that
  // block too. An oracle that does not answer leaves them pending too: never a budget on a guess.
  let fees: Fees;
  let l1At: ReadAt | undefined;
  let l1Yardstick: bigint | null = null;
  try {
    fees = await estimateFees(ctx.client, chain, wallet.head, ctx.chainView.gasPriceAt);
    ({ l1At, l1Yardstick } = await readL1Yardstick(ctx, wallet.head));
  } catch (error) {
    ctx.log.warn({
      msg: "fees not known, requests stay pending",
      pending: rows.length,
      err: error,
    });
    return 0;
  }
  // Estimates at that node's head, not at `latest`: a node behind estimates on its old state
  // (gas.ts estimateTxGas: a token without code there, a limit that runs out of gas on chain).
  const at = { blockNumber: wallet.head };
  const ready: (Ready & { l1Fee: bigint; operatorFee: bigint })[] = [];
  await mapLimit(rows, 16, async (r) => {
    const req = { to: r.to_address, value: r.value, data: r.data };
    try {
      const gasLimit = r.gas_limit;
      const gas = await requestGas(ctx, { id: r.id, ...req, gasLimit }, at);
      ready.push({
        id: r.id,
        ...req,
        gasLimit: gas.gasLimit,
        l1Fee: gas.l1Fee,
        operatorFee: gas.operatorFee,
      });
    } catch (error) {
      if (error instanceof OpStackFeeUnknownError) {
        // No evidence of a fee, nor of anything about the request: it waits, unsigned.
        ctx.log.warn({
          msg: "L1 or operator fee not known, request stays pending",
          request_id: r.id,
          err: error,
        });
        return;
      }
      const cls = classifyNodeError(error);
      if (error instanceof IntrinsicGasTooLowError) {
        // Every node would refuse it: refused here, before a nonce, never signed or broadcast.
        await failBeforeNonce(lease, r.id, error.code, error.shortMessage);
      } else if (cls === "execution_reverted") {
        // The balance at the block the estimate reverted at: another node's `latest` may show
        // tokens the wallet no longer holds, and the request would fail for the wallet's shortfall.
        const short = await tokenShortfall(ctx, req, wallet.head);
        if (!short) {
          await failBeforeNonce(lease, r.id, "ESTIMATE_REVERTED", errorText(error));
          return;
        }
        ctx.alert("insufficient_funds", {
          request_id: r.id,
          token: short.token,
          amount: short.amount.toString(),
          balance: short.balance?.toString() ?? null,
        });
        unpaid(r.id);
      } else {
        if (cls === "insufficient_funds") {
          ctx.alert("insufficient_funds", { request_id: r.id });
          unpaid(r.id);
        }
        ctx.log.warn({
          msg: "gas estimate failed, request stays pending",
          request_id: r.id,
          class: cls,
        });
      }
    }
  });
  // Keep arrival order among the ready ones (estimates finish in any order).
  const order = new Map(rows.map((r, i) => [r.id, i]));
  ready.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  // Budget: value + gas x max fee + L1 data fee + operator fee of each, in nonce order, must fit
  // the balance left after the sends in flight (their nonces come first). One that does not fit waits
  // unsigned (gas.ts `affordable`): signed, the node refuses it or drops it once those mine, and
  // its nonce holds every later one, the sweeps that would refill this wallet among them.
  let payable = ready;
  if (ready.length > 0) {
    const { latestCount, balance, head } = wallet;
    // Tokens first: a transfer waiting for its token reserves none of the native balance. Their
    // balances at `head`, the count's block or a later one (asked of a node at it): a transfer
    // mined since the count is counted twice, never in neither.
    const withTokens = await tokensFit(ctx, ready, latestCount, head);
    const tokenWaiting = ready.filter((_, i) => !withTokens[i]);
    if (tokenWaiting.length > 0) {
      ctx.alert("insufficient_funds", {
        request_id: tokenWaiting[0]!.id,
        waiting: tokenWaiting.length,
        token: tokenTransfer(ctx, tokenWaiting[0]!)?.token,
      });
      for (const r of tokenWaiting) unpaid(r.id);
    }
    const candidates = ready.filter((_, i) => withTokens[i]);
    // A bump the balance could not cover (bump.ts) is owed first: its nonce comes before these.
    let owed = 0n;
    for (const raise of state.bumpsOwed.values()) owed += raise;
    const committed = (await inFlightCost(ctx, latestCount, { l1At, l1Yardstick })).total + owed;
    const fits = affordable(
      candidates.map((r) => maxCost({ ...r, fees })),
      balance - committed,
    );
    const waiting = candidates.filter((_, i) => !fits[i]);
    payable = candidates.filter((_, i) => fits[i]);
    if (waiting.length > 0) {
      ctx.alert("insufficient_funds", {
        request_id: waiting[0]!.id,
        waiting: waiting.length,
        balance: balance.toString(),
        in_flight: committed.toString(),
      });
      for (const r of waiting) unpaid(r.id);
    }
  }
  const base = state.nextNonce;
  const planned = payable.map((r, i) => ({ ...r, nonce: base + BigInt(i) }));
  ctx.crash("before_sign");
  const signed = await mapLimit(planned, settings.signConcurrency, async (p) => {
    try {
      return await signTx(ctx, p, fees);
    } catch (error) {
      ctx.log.warn({ msg: "KMS signing failed", request_id: p.id, err: error });
      return undefined;
    }
  });
  // Only a gap-free prefix is stored: a nonce after a failed signature would leave a hole.
  const prefix: ((typeof planned)[number] & { raw: Hex; hash: Hex })[] = [];
  for (let i = 0; i < planned.length; i++) {
    const s = signed[i];
    if (!s) break;
    prefix.push({ ...planned[i]!, ...s });
  }
  if (prefix.length === 0) return 0;
  ctx.crash("after_sign");
  // One statement each for the whole batch: the nonces and the signed bytes commit together.
  const stored = await lease.transaction(async () => {
    // A caller may have taken a request back while it was signed (requests.ts withdrawTxRequest):
    // its row is no longer pending. Only the requests before the first one taken back are stored
    // (their nonces stay gap-free); its signature and the ones after it are thrown away unsent,
    // and those requests are read again next round. Locked here, so none is taken back meanwhile.
    const { rows: still } = await lease.query<{ id: string }>(
      `SELECT id FROM custody.tx_requests
        WHERE id = ANY($1::text[]) AND status = 'pending' ORDER BY id FOR UPDATE`,
      [prefix.map((p) => p.id)],
    );
    const pending = new Set(still.map((r) => r.id));
    const taken = prefix.findIndex((p) => !pending.has(p.id));
    if (taken !== -1) prefix.splice(taken);
    if (prefix.length === 0) return [];
    const upd = await lease.query(
      `UPDATE custody.tx_requests r
         SET status = 'signed', nonce = v.nonce, tx_hash = v.hash,
             gas_limit = COALESCE(r.gas_limit, v.gas), gas_estimated = r.gas_limit IS NULL,
             l1_fee = v.l1_fee,
             l1_fee_yardstick = $6, updated_at = now()
       FROM unnest($1::text[], $2::bigint[], $3::text[], $4::numeric[], $5::numeric[])
         AS v(id, nonce, hash, gas, l1_fee)
       WHERE r.id = v.id AND r.status = 'pending'`,
      [
        prefix.map((p) => p.id),
        prefix.map((p) => p.nonce.toString()),
        prefix.map((p) => p.hash),
        prefix.map((p) => p.gasLimit.toString()),
        // What its budget counted on L1: what inFlightCost counts while it is in flight.
        prefix.map((p) => p.l1Fee.toString()),
        // The L1 price they were estimated at (same block): scales them to the price later.
        l1Yardstick?.toString() ?? null,
      ],
    );
    if (upd.rowCount !== prefix.length) throw new Error("a request is no longer pending");
    const ins = await lease.query<AttemptRow>(
      `INSERT INTO custody.tx_attempts (request_id, chain_id, from_address, nonce, purpose, tx_hash, raw_tx,
         gas_limit, max_fee_per_gas, max_priority_fee_per_gas, gas_price)
       SELECT v.id, $1, $2, v.nonce, 'send', v.hash, v.raw, v.gas, $3, $4, $5
       FROM unnest($6::text[], $7::bigint[], $8::text[], $9::text[], $10::numeric[]) AS v(id, nonce, hash, raw, gas)
       RETURNING ${ATTEMPT_COLUMNS}`,
      [
        chain.chainId,
        from,
        fees.type === "eip1559" ? fees.maxFeePerGas.toString() : null,
        fees.type === "eip1559" ? fees.maxPriorityFeePerGas.toString() : null,
        fees.type === "legacy" ? fees.gasPrice.toString() : null,
        prefix.map((p) => p.id),
        prefix.map((p) => p.nonce.toString()),
        prefix.map((p) => p.hash),
        prefix.map((p) => p.raw),
        prefix.map((p) => p.gasLimit.toString()),
      ],
    );
    return ins.rows.map(attemptFromRow).sort((x, y) => (x.nonce < y.nonce ? -1 : 1));
  });
  if (prefix.length === 0) return 0;
  state.nextNonce = base + BigInt(prefix.length);
  ctx.metrics.attempts.inc({ ...ctx.labels, kind: "first" }, prefix.length);
  ctx.crash("after_commit");
  // The halt is read again before these go out (halt.ts): one opened while they were signed
  // leaves them stored and `signed`, sent after the resume.
  const results = await sendInOrder(ctx, lease, stored, {
    afterSend: () => ctx.crash("after_send"),
  });
  if (results.some(({ r }) => r.cls === "nonce_gap"))
    await resendLive(ctx, lease, { onlyUnsent: false, latestCount: 0n });
  return prefix.length;
}
