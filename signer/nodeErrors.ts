/**
 * What a node's answer to eth_sendRawTransaction means, across clients. Each class has exactly
 * one response in the broadcaster (see RESPONSES); an unrecognised message is `unknown`, which is
 * logged, counted and retried like a transient failure (never treated as "sent" or "dead").
 */
export type NodeErrorClass =
  | "nonce_too_low"
  | "nonce_gap"
  | "already_known"
  | "replacement_underpriced"
  | "underpriced"
  | "insufficient_funds"
  | "intrinsic_gas_too_low"
  | "gas_limit_too_high"
  | "fee_cap_exceeded"
  | "node_fee_cap"
  | "execution_reverted"
  | "transient"
  | "unknown";

export const RESPONSES: Record<NodeErrorClass, string> = {
  nonce_too_low:
    "the nonce is used on chain: stop sending, the tracker finds which attempt mined (all attempts, every endpoint), else receipt_unknown / needs_review, never failed",
  nonce_gap:
    "the node misses a lower nonce: rebroadcast every stored attempt of the lower nonces in order",
  already_known: "the node has these exact bytes: count it as sent",
  replacement_underpriced:
    "a better-paying attempt at this nonce is pooled: keep tracking; the next bump pays more",
  underpriced: "fees below the node's minimum or the base fee: bump now (same nonce, re-signed)",
  insufficient_funds:
    "the hot wallet cannot pay: keep the nonce and bytes, alert (low balance), retry every tick",
  intrinsic_gas_too_low:
    "these bytes can never be included: reject them; if no other attempt lives, the nonce stage cancels the nonce (bounded retries) and the request fails once the cancel is final. On a chain whose gas carries the L1 cost (l1CostInGas: Arbitrum) it may mean 'not at this L1 price': a payment whose limit we estimated is re-estimated and re-signed at the same nonce by the bump stage, at most MAX_REGAS times, before that (broadcaster/regas.ts)",
  gas_limit_too_high:
    "these bytes can never be included (gas limit above the block's): reject them; if no other attempt lives, the nonce stage cancels the nonce (bounded retries) and the request fails once the cancel is final",
  fee_cap_exceeded:
    "these bytes can never be included: reject them; if no other attempt lives, the nonce stage cancels the nonce (bounded retries) and the request fails once the cancel is final",
  node_fee_cap:
    "one node's own limit on a send's fee (geth/reth --rpc.txfeecap, Besu --rpc-tx-feecap), not the chain's: the bytes stay valid; keep the nonce and bytes, alert (node_fee_cap), resend every tick, never cancel or fail for it",
  execution_reverted:
    "the node refused on simulation: reject the bytes; if no other attempt lives, the nonce stage cancels the nonce (bounded retries) and the request fails once the cancel is final",
  transient: "network or node trouble: keep the bytes and resend next tick",
  unknown: "unrecognised: log and count it, keep the bytes and resend next tick",
};

// Order matters: "replacement transaction underpriced" must match before plain "underpriced".
const RULES: [NodeErrorClass, RegExp][] = [
  [
    "already_known",
    /already known|known transaction|already imported|alreadyknown|already in (the )?(tx)?pool|already exists|existing txn? with same hash/i,
  ],
  [
    "nonce_too_low",
    /nonce too low|oldnonce|nonce has already been used|invalid nonce.*(lower|too low)|nonce_too_low|nonce is too low/i,
  ],
  [
    "nonce_gap",
    /nonce too high|noncegap|nonce gap|too distant from current sender nonce|future nonce/i,
  ],
  [
    "replacement_underpriced",
    /replacement (transaction )?underpriced|replace underpriced|replacementnotallowed|feetoolowtocompete|transaction replacement underpriced|could not replace existing tx/i,
  ],
  [
    "insufficient_funds",
    /insufficient funds|insufficientfunds|exceeds account balance|insufficient balance|not enough (funds|balance)/i,
  ],
  [
    "gas_limit_too_high",
    /intrinsic gas too high|exceeds block gas limit|gas_limit > env\.block\.gas_limit|gaslimitexceeded|gas limit exceeds|gas limit reached|gas limit is too high/i,
  ],
  [
    "intrinsic_gas_too_low",
    /intrinsic gas too low|intrinsic gas exceeds gas limit|intrinsicgastoolow|gas limit is too low|gaslimitbelowintrinsic|out of gas: gas required exceeds/i,
  ],
  // A node's own setting (gas limit x fee above it), before the fee field checks that are final.
  ["node_fee_cap", /exceeds the configured cap|fee cap exceeded|feecap exceeded/i],
  [
    "fee_cap_exceeded",
    /tip higher than fee cap|max priority fee per gas higher than max fee per gas|maxpriorityfeepergas.*higher than|fee cap (is )?higher than 2\^256/i,
  ],
  [
    "underpriced",
    /underpriced|max fee per gas less than block base fee|feetoolow|fee too low|gas price (is )?(below|too low)|gas price below configured minimum|maxfeepergas too low|priority fee (is )?(too low|below)/i,
  ],
  ["execution_reverted", /execution reverted|revert|vm exception/i],
  [
    "transient",
    /timeout|timed out|too many requests|429|rate limit|header not found|econnrefused|econnreset|socket hang up|fetch failed|502|503|504|txpool is full|pool overflow|temporarily unavailable|internal error/i,
  ],
];

/** Classify one node error message (or an error whose message/details carry it). */
export function classifyNodeError(error: unknown): NodeErrorClass {
  const text = errorText(error);
  for (const [cls, re] of RULES) if (re.test(text)) return cls;
  return "unknown";
}

/** viem wraps node errors; the node's own words are in details/cause chains. */
export function errorText(error: unknown): string {
  const parts: string[] = [];
  let e: unknown = error;
  for (let depth = 0; e && depth < 6; depth++) {
    if (typeof e === "string") {
      parts.push(e);
      break;
    }
    const o = e as { message?: string; details?: string; shortMessage?: string; cause?: unknown };
    for (const p of [o.details, o.shortMessage, o.message]) if (p) parts.push(p);
    e = o.cause;
  }
  return parts.join(" | ");
}
