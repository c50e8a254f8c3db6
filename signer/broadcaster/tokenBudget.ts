/**
 * The token side of intake's budget: a listed token's `transfer` is signed only when the wallet
 * holds the tokens it sends, beyond what its sends in flight transfer of that token. One that does
 * not fit waits unsigned, as a native shortfall does: signed, it would revert on chain (gas spent,
 * the withdrawal failed) while a sweep bringing the tokens may be on its way.
 */
import { decodeFunctionData, erc20Abi, type Hex } from "viem";
import { affordable } from "../gas.js";
import { UNMINED_THERE } from "./budget.js";
import type { BroadcasterContext } from "./context.js";

/** A listed token's `transfer` from the wallet: the token and the amount (else undefined). */
export function tokenTransfer(
  ctx: BroadcasterContext,
  req: { to: Hex; value: bigint; data: Hex },
): { token: Hex; amount: bigint } | undefined {
  const token = req.to.toLowerCase() as Hex;
  if (req.value !== 0n || !ctx.chain.tokens.some((t) => t.address.toLowerCase() === token))
    return undefined;
  try {
    const call = decodeFunctionData({ abi: erc20Abi, data: req.data });
    return call.functionName === "transfer" ? { token, amount: call.args[1] } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The wallet's balance of `token` at block `at` (asked of a node at or past it); null: not known.
 */
async function tokenBalance(
  ctx: BroadcasterContext,
  token: Hex,
  at: bigint,
): Promise<bigint | null> {
  try {
    return await ctx.client.readContract({
      address: token,
      abi: erc20Abi,
      functionName: "balanceOf",
      args: [ctx.from],
      blockNumber: at,
    });
  } catch (error) {
    ctx.log.warn({ msg: "token balance not known", token, err: error });
    return null;
  }
}

/**
 * A listed token's transfer the wallet holds too little of at block `at`, where its estimate
 * reverted: the shortfall is the wallet's (a sweep may be bringing the tokens), not the request's,
 * so it waits as a native shortfall does. The token's balance not known: also waits (never fails on
 * missing data). Anything else that reverts: undefined (the request fails before a nonce).
 */
export async function tokenShortfall(
  ctx: BroadcasterContext,
  req: { to: Hex; value: bigint; data: Hex },
  at: bigint,
): Promise<{ token: Hex; amount: bigint; balance: bigint | null } | undefined> {
  const transfer = tokenTransfer(ctx, req);
  if (!transfer) return undefined;
  const balance = await tokenBalance(ctx, transfer.token, at);
  return balance === null || balance < transfer.amount ? { ...transfer, balance } : undefined;
}

/**
 * Per listed token, what the wallet's unmined nonces (from `latestCount`) may still send of it:
 * the transfers of requests with a send at one of them (budget.ts `UNMINED_THERE`; a cancel sends
 * none).
 */
async function inFlightTokens(
  ctx: BroadcasterContext,
  latestCount: bigint,
): Promise<Map<Hex, bigint>> {
  const { rows } = await ctx.pool.query<{ to_address: Hex; value: bigint; data: Hex }>(
    // From the unmined nonces' attempts (tx_attempts_nonce), as inFlightCost reads them: the
    // wallet's whole request history is never scanned.
    `SELECT DISTINCT r.id, r.to_address, r.value, r.data
       FROM custody.tx_attempts a JOIN custody.tx_requests r ON r.id = a.request_id
      WHERE a.chain_id = $1 AND a.from_address = $2 AND a.nonce >= $3 AND a.purpose = 'send'
        AND a.status IN ${UNMINED_THERE} AND r.to_address = ANY($4::text[])`,
    [
      ctx.chain.chainId,
      ctx.from,
      latestCount.toString(),
      ctx.chain.tokens.map((t) => t.address.toLowerCase()),
    ],
  );
  const sent = new Map<Hex, bigint>();
  for (const r of rows) {
    const t = tokenTransfer(ctx, { to: r.to_address, value: r.value, data: r.data });
    if (t) sent.set(t.token, (sent.get(t.token) ?? 0n) + t.amount);
  }
  return sent;
}

/**
 * Which of `ready` (in nonce order) the wallet holds the tokens for: per listed token, its
 * transfers must fit the balance less what the sends in flight may still take of it. A signed
 * transfer that does not fit reverts on chain (gas spent, the request failed); it waits instead.
 */
export async function tokensFit(
  ctx: BroadcasterContext,
  ready: readonly { to: Hex; value: bigint; data: Hex }[],
  latestCount: bigint,
  head: bigint,
): Promise<boolean[]> {
  const transfers = ready.map((r) => tokenTransfer(ctx, r));
  const fits = ready.map(() => true);
  const tokens = [...new Set(transfers.flatMap((t) => (t ? [t.token] : [])))];
  if (tokens.length === 0) return fits;
  const committed = await inFlightTokens(ctx, latestCount);
  for (const token of tokens) {
    // At `head`, the block the count is of or a later one: a transfer mined after the count is
    // in the balance and maybe counted in flight (twice), never in neither.
    const balance = await tokenBalance(ctx, token, head);
    const mine = transfers.flatMap((t, i) => (t?.token === token ? [{ i, amount: t.amount }] : []));
    const ok =
      balance === null
        ? mine.map(() => false)
        : affordable(
            mine.map((m) => m.amount),
            balance - (committed.get(token) ?? 0n),
          );
    mine.forEach((m, j) => {
      fits[m.i] = ok[j]!;
    });
  }
  return fits;
}
