/**
 * What the hot wallet's sends in flight can still take from its balance: intake signs a new send
 * only if it fits what they leave, and the bump stage signs a replacement only if the raise fits
 * too. Every unmined nonce must stay payable at its worst case: a signed transaction at nonce N
 * the wallet cannot pay holds every later nonce (the refilling sweep among them) for good.
 */
import type { Hex } from "viem";
import { estimateL1DataFee, l1FeeYardstick, operatorFees, type ReadAt } from "../gas.js";
import type { BroadcasterContext } from "./context.js";

/**
 * The attempts a nonce at or above the wallet's count may still be paid with, as the node that
 * gave the count (and the balance) sees the chain: every nonce there is unused, so whatever our
 * rows say mined at it (the tracker may have seen it on a node further ahead) is not in that
 * balance either, and is counted with the live ones. Counting only `signed` and `broadcast` let a
 * balance from a node behind the head miss the sends mined since (in neither the balance nor the
 * sends in flight): a send the wallet could not pay took the next nonce. A nonce the node has used
 * is below its count, whatever our rows say. `rejected` bytes can never be included.
 */
export const UNMINED_THERE = "('signed', 'broadcast', 'mined', 'replaced')";

export type InFlight = {
  /** The sum over unmined nonces of each one's dearest attempt (UNMINED_THERE). */
  total: bigint;
  /** Per unmined nonce, its dearest attempt's cost. */
  ofNonce: Map<bigint, bigint>;
  /** Per attempt (by id), its own cost. */
  ofAttempt: Map<string, bigint>;
};

/**
 * On an OP-stack chain, the L1 price now (gas.ts `l1FeeYardstick`) at `head`, the block the caller's
 * count and balance are of (a node at or past it answers: chains' state reads at a block), returned
 * as `l1At` (each of the round's L1 fees is read there); null yardstick where the chain charges no
 * L1 fee.
 * An oracle that does not answer throws: the caller signs nothing on a guess.
 */
export type L1Price = { l1At: ReadAt | undefined; l1Yardstick: bigint | null };

export async function readL1Yardstick(ctx: BroadcasterContext, head: bigint): Promise<L1Price> {
  if ((ctx.chain.l1DataFee ?? "none") === "none") return { l1At: undefined, l1Yardstick: null };
  const l1At = { blockNumber: head };
  return { l1At, l1Yardstick: await l1FeeYardstick(ctx.client, ctx.chain, ctx.from, l1At) };
}

/**
 * The most the wallet's unmined nonces (from `latestCount`) can still take from its balance: per
 * nonce, the dearest of its live attempts (value, 0 for a cancel, + gas limit x max fee + the
 * request's L1 data fee). An OP-stack chain takes the L1 fee on inclusion as it takes gas: left
 * out, the fees of many sends in flight leave less than the budget believes, and the next send
 * is refused for insufficient funds with its nonce taken. A cancel's L1 fee is counted as its
 * request's (a 0-value self-transfer without data is never larger).
 *
 * The L1 fee is charged at the L1 price at inclusion, not at signing: each is counted as the larger
 * of the fee stored at signing and that fee scaled to the price now, `l1Yardstick` (read this
 * round) over `l1_fee_yardstick` (read at the block its fee was estimated at), rounded up. A price
 * fallen since counts the stored fee (the node may still include it at that price). A fee with no
 * price to scale it by (the oracle said 0 at signing, or it was signed before the yardstick was
 * stored) is asked of the oracle again at `l1At` while the price now is not 0: a price of 0 is no
 * evidence of the price at inclusion, and its stored fee (0) would count nothing.
 *
 * Since Isthmus an OP-stack chain also takes an operator fee on inclusion, charged on the gas
 * limit (gas.ts `operatorFees`): each attempt counts the fee the oracle asks at `l1At` for its gas
 * limit, read every round (the chain operator may change its parameters at any time, and a send
 * signed before the fork is included after it). An oracle that cannot tell throws, as above.
 */
export async function inFlightCost(
  ctx: BroadcasterContext,
  latestCount: bigint,
  { l1At, l1Yardstick }: L1Price,
): Promise<InFlight> {
  const unscaled: { id: string; fee: bigint }[] = [];
  if (l1Yardstick !== null && l1Yardstick > 0n) {
    const { rows } = await ctx.pool.query<{
      id: string;
      to_address: Hex;
      value: bigint;
      data: Hex;
    }>(
      `SELECT DISTINCT r.id, r.to_address, r.value, r.data
         FROM custody.tx_attempts a JOIN custody.tx_requests r ON r.id = a.request_id
        WHERE a.chain_id = $1 AND a.from_address = $2 AND a.status IN ${UNMINED_THERE}
          AND a.nonce >= $3 AND COALESCE(r.l1_fee_yardstick, 0) = 0`,
      [ctx.chain.chainId, ctx.from, latestCount.toString()],
    );
    for (const r of rows) {
      const tx = { from: ctx.from, to: r.to_address, value: r.value, data: r.data };
      unscaled.push({ id: r.id, fee: await estimateL1DataFee(ctx.client, ctx.chain, tx, l1At) });
    }
  }
  const { rows } = await ctx.pool.query<{
    id: string;
    nonce: string;
    gas_limit: string;
    cost: string;
  }>(
    `SELECT a.id, a.nonce, a.gas_limit,
            CASE WHEN a.purpose = 'cancel' THEN 0 ELSE r.value END
            + a.gas_limit * COALESCE(a.max_fee_per_gas, a.gas_price)
            + CASE WHEN f.fee IS NOT NULL THEN GREATEST(COALESCE(r.l1_fee, 0), f.fee)
                   WHEN $4::numeric IS NULL OR COALESCE(r.l1_fee_yardstick, 0) = 0
                   THEN COALESCE(r.l1_fee, 0)
                   ELSE GREATEST(r.l1_fee, div(r.l1_fee * $4::numeric + r.l1_fee_yardstick - 1,
                                               r.l1_fee_yardstick))
              END AS cost
       FROM custody.tx_attempts a JOIN custody.tx_requests r ON r.id = a.request_id
       LEFT JOIN unnest($5::text[], $6::numeric[]) AS f(id, fee) ON f.id = r.id
      WHERE a.chain_id = $1 AND a.from_address = $2 AND a.status IN ${UNMINED_THERE}
        AND a.nonce >= $3`,
    [
      ctx.chain.chainId,
      ctx.from,
      latestCount.toString(),
      l1Yardstick?.toString() ?? null,
      unscaled.map((u) => u.id),
      unscaled.map((u) => u.fee.toString()),
    ],
  );
  const operatorFee = await operatorFees(
    ctx.client,
    ctx.chain,
    rows.map((r) => BigInt(r.gas_limit)),
    l1At,
  );
  const spent: InFlight = { total: 0n, ofNonce: new Map(), ofAttempt: new Map() };
  for (const row of rows) {
    const nonce = BigInt(row.nonce);
    const cost = BigInt(row.cost) + operatorFee.get(BigInt(row.gas_limit))!;
    spent.ofAttempt.set(String(row.id), cost);
    if (cost > (spent.ofNonce.get(nonce) ?? -1n)) spent.ofNonce.set(nonce, cost);
  }
  for (const cost of spent.ofNonce.values()) spent.total += cost;
  return spent;
}
