/**
 * The one place the broadcaster decides gas: the gas limit of a request's first attempt (intake),
 * of a cancel (0-value self-transfer) and what a mined receipt cost. Replacements keep the gas
 * limit of the attempt they replace. Gas estimation policy (margin, floor, L2 fee components,
 * intrinsic-gas refusal) belongs to signer/gas.ts and is wired in here.
 */
import type { Hex } from "viem";
import type { BroadcasterContext } from "./context.js";

export type GasCache = Map<string, Promise<Hex | undefined>>;

/** Gas limit for a request without a caller-given one (estimate errors propagate to intake). */
export async function requestGasLimit(
  ctx: BroadcasterContext,
  r: { to: Hex; value: bigint; data: Hex },
  codeCache: GasCache,
): Promise<bigint> {
  if (r.data === "0x") {
    // A plain transfer to an account without code costs exactly 21000 on L1.
    let code = codeCache.get(r.to);
    if (!code) {
      code = ctx.client.getCode({ address: r.to });
      codeCache.set(r.to, code);
    }
    const bytecode = await code;
    if (!bytecode || bytecode === "0x") return 21_000n;
  }
  const estimate = await ctx.client.estimateGas({
    account: ctx.from,
    to: r.to,
    value: r.value,
    data: r.data,
  });
  // Headroom for state changing between estimate and inclusion.
  return (estimate * 12n) / 10n;
}

/** Gas limit for a cancel of a nonce: a 0-value transfer to the hot wallet itself. */
export async function cancelGasLimit(_ctx: BroadcasterContext): Promise<bigint> {
  return 21_000n;
}

/** Gas the hot wallet paid for a mined transaction (wei). */
export function feePaid(receipt: { gasUsed: bigint; effectiveGasPrice: bigint }): bigint {
  return receipt.gasUsed * receipt.effectiveGasPrice;
}
