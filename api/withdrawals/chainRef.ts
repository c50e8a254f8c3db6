/**
 * The chain fact a withdrawal's post books, as reconciliation pairs them (docs/contracts.md, recon):
 * `tx` for native value, `transfer:<n>` for the token's Transfer(hot wallet → destination, amount)
 * in the receipt (its ordinal among the tx's listed-token Transfer logs, as the indexer numbers
 * facts: chains/evm/transferPosition.ts). Pure over the receipt's logs.
 */
import { type Log, pad, toHex } from "viem";
import { transferPosition } from "../../chains/evm/transferPosition.js";

export const TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

export function withdrawalPosition(
  w: { asset: string; fromAddress: string; to: string; amount: bigint },
  logs: readonly Pick<Log, "address" | "topics" | "data" | "logIndex">[],
  /** The chain's listed tokens; a plain token transfer moves only its own token, the default. */
  tokens: readonly string[] = [w.asset],
): string | undefined {
  if (/^0x0{40}$/.test(w.asset)) return "tx";
  const from = pad(w.fromAddress.toLowerCase() as `0x${string}`).toLowerCase();
  const to = pad(w.to.toLowerCase() as `0x${string}`).toLowerCase();
  const value = pad(toHex(w.amount)).toLowerCase();
  const log = logs.find(
    (l) =>
      l.address.toLowerCase() === w.asset.toLowerCase() &&
      l.topics[0]?.toLowerCase() === TRANSFER_TOPIC &&
      l.topics[1]?.toLowerCase() === from &&
      l.topics[2]?.toLowerCase() === to &&
      l.data.toLowerCase() === value,
  );
  if (log?.logIndex === null || log?.logIndex === undefined) return undefined;
  return transferPosition(logs, log.logIndex, tokens);
}
