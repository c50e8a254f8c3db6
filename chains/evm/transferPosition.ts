/**
 * The position of an ERC-20 fact inside its transaction: `transfer:<n>`, n the 0-based ordinal of
 * the log among the transaction's Transfer logs of listed tokens (ERC-20 shape: 3 topics), in
 * logIndex order. Unlike the block-wide logIndex it survives the transaction being re-included at
 * another place in a block (after a reorg), so (chain id, tx hash, position) names the same fact in
 * every block that carries the transaction. The indexer (extractFacts) and everyone who books a
 * ledger transfer against a token Transfer (withdrawal posts, sweeps, cold moves) use this one rule
 * so reconciliation pairs them.
 */
import type { Hex } from "viem";
import { TRANSFER_TOPIC } from "./createEvmAdapter.js";

/** A log as raw JSON-RPC (hex logIndex) or viem (number logIndex) returns it. */
export type PositionedLog = {
  address: string;
  topics: readonly (string | null)[];
  logIndex: Hex | number | null;
};

function indexOf(log: PositionedLog): number | null {
  if (log.logIndex === null) return null;
  return typeof log.logIndex === "number" ? log.logIndex : Number(BigInt(log.logIndex));
}

/** A Transfer(address indexed, address indexed, uint256) of a listed token (ERC-721 has 4 topics). */
export function isListedErc20Transfer(log: PositionedLog, listed: ReadonlySet<string>): boolean {
  return (
    log.topics.length === 3 &&
    log.topics[0]?.toLowerCase() === TRANSFER_TOPIC &&
    listed.has(log.address.toLowerCase())
  );
}

/**
 * `transfer:<n>` per logIndex for one transaction's logs (a receipt's `logs`). Logs of other
 * tokens do not count, so listing or delisting an unrelated token changes no position of the
 * tokens that were listed before, except inside transactions that moved both.
 */
export function transferPositions(
  txLogs: readonly PositionedLog[],
  tokens: readonly string[],
): Map<number, string> {
  const listed = new Set(tokens.map((t) => t.toLowerCase()));
  const indexes = new Set<number>();
  for (const log of txLogs) {
    const i = indexOf(log);
    if (i !== null && isListedErc20Transfer(log, listed)) indexes.add(i);
  }
  const sorted = [...indexes].sort((a, b) => a - b);
  return new Map(sorted.map((logIndex, n) => [logIndex, `transfer:${n}`]));
}

/** The position of the log at `logIndex` in its transaction, or undefined if it is not counted. */
export function transferPosition(
  txLogs: readonly PositionedLog[],
  logIndex: number,
  tokens: readonly string[],
): string | undefined {
  return transferPositions(txLogs, tokens).get(logIndex);
}
