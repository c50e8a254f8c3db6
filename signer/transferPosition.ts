/**
 * Where a request's value transfer sits in its mined transaction, in the indexer's fact identity
 * (shared contract 2): `tx` for a native transfer, `transfer:<n>` for an ERC-20 `transfer(to, amount)`
 * where n is the 0-based ordinal of its Transfer log among the listed-token Transfer logs of the
 * transaction (logIndex order). Other calls (sweeps, contract calls, cancels) have no single
 * transfer: null.
 */
import { decodeFunctionData, erc20Abi, type Hex, pad, toHex } from "viem";
import { transferPositions } from "../chains/evm/transferPosition.js";

export type TransferPosition = { position: string; logIndex: number | null };

export type ReceiptLogLike = {
  address: string;
  topics: readonly (string | null)[];
  data: string;
  logIndex: number | null;
};

export function transferPosition(
  tx: { from: string; to: string; value: bigint; data: string },
  logs: readonly ReceiptLogLike[],
  listedTokens: readonly string[],
): TransferPosition | null {
  if (tx.data === "0x") {
    // A 0-value self-transfer is a cancel, not a transfer.
    return tx.value > 0n ? { position: "tx", logIndex: null } : null;
  }
  if (!tx.data.toLowerCase().startsWith("0xa9059cbb")) return null;
  let recipient: string;
  let amount: bigint;
  try {
    const call = decodeFunctionData({ abi: erc20Abi, data: tx.data as Hex });
    if (call.functionName !== "transfer") return null;
    [recipient, amount] = call.args as [string, bigint];
  } catch {
    return null;
  }
  const token = tx.to.toLowerCase();
  const from = pad(tx.from.toLowerCase() as Hex).toLowerCase();
  const to = pad(recipient.toLowerCase() as Hex).toLowerCase();
  const value = pad(toHex(amount)).toLowerCase();
  // The indexer's one ordinal rule (chains/evm/transferPosition.ts), with the called token listed.
  const positions = transferPositions(logs, [...listedTokens, token]);
  const ours = logs
    .filter((l) => l.logIndex !== null && positions.has(l.logIndex))
    .sort((a, b) => a.logIndex! - b.logIndex!)
    .find(
      (l) =>
        l.address.toLowerCase() === token &&
        l.topics[1]?.toLowerCase() === from &&
        l.topics[2]?.toLowerCase() === to &&
        l.data.toLowerCase() === value,
    );
  if (!ours) return null;
  return { position: positions.get(ours.logIndex!)!, logIndex: ours.logIndex };
}
