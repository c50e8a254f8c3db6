/**
 * A chain's listed tokens against their contracts: each token address must hold code, and where
 * the contract answers `decimals()`, the configured `decimals` must be what it says. The config's
 * decimals turn every base-unit amount the console and the reports show into token units (and the
 * treasury form's token units into base units): a USDC listed with 18 shows its approvers a
 * 1,000,000 USDC withdrawal as 0.000001 USDC. A token address without code is a typo: the
 * indexer never sees a deposit of the real token, and a `transfer` call to it would succeed and
 * move nothing.
 *
 * Read at the best head of all endpoints (each asked its head: the first alone may lag, and a
 * token deployed since was "no contract"), from an endpoint at or past it (a syncing node lacks a
 * recent token's code). An endpoint that does not answer throws (RpcUnavailableError,
 * NoHealthyEndpointError): that is no evidence either way, and the caller asks again. A contract
 * without `decimals()` (optional in ERC-20) is reported as `unchecked`, not as a problem.
 */
import { type Hex, numberToHex } from "viem";
import { RpcResponseError } from "./errors.js";
import { headOfAll, type RpcClient } from "./rpc.js";

/** `decimals()` */
const DECIMALS_SELECTOR = "0x313ce567";

export type TokenCheck = {
  /** What the chain contradicts in the config: `field` is relative to the chain entry. */
  problems: { field: string; message: string }[];
  /** Tokens whose decimals the contract does not say (no `decimals()`): only the code was checked. */
  unchecked: string[];
};

export async function checkTokens(
  rpc: Pick<RpcClient, "request" | "askEveryHead">,
  tokens: readonly { address: string; decimals: number }[],
): Promise<TokenCheck> {
  const out: TokenCheck = { problems: [], unchecked: [] };
  if (tokens.length === 0) return out;
  const at = await headOfAll(rpc);
  const read = { atLeast: at, refusalMovesOn: true };
  for (const [i, t] of tokens.entries()) {
    const code = await rpc.request<Hex>("eth_getCode", [t.address, numberToHex(at)], read);
    if (typeof code !== "string" || code === "0x" || /^0x0*$/.test(code)) {
      out.problems.push({
        field: `tokens[${i}].address`,
        message: `there is no contract at ${t.address} on this chain (block ${at}): deposits of the token would never be seen`,
      });
      continue;
    }
    let answer: Hex;
    try {
      answer = await rpc.request<Hex>(
        "eth_call",
        [{ to: t.address, data: DECIMALS_SELECTOR }, numberToHex(at)],
        read,
      );
    } catch (error) {
      // A revert: the contract has no decimals() (optional in ERC-20). Only a transport failure
      // (no answer) is thrown on: that says nothing about the token.
      if (!(error instanceof RpcResponseError)) throw error;
      out.unchecked.push(t.address);
      continue;
    }
    if (typeof answer !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(answer)) {
      out.unchecked.push(t.address);
      continue;
    }
    const onChain = BigInt(answer);
    if (onChain !== BigInt(t.decimals))
      out.problems.push({
        field: `tokens[${i}].decimals`,
        message: `is ${t.decimals}, but decimals() of ${t.address} is ${onChain}: every amount of it would show ${t.decimals > onChain ? "smaller" : "larger"} by 10^${Math.abs(t.decimals - Number(onChain > 255n ? 255n : onChain))}`,
      });
  }
  return out;
}
