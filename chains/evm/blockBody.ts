/**
 * Whether a block answer carries the block's whole body, as far as its own header can tell. A node
 * missing a block's body (one still downloading bodies, as geth in fast sync answered; a proxy or
 * cache serving the header alone) answers `eth_getBlockByNumber` with the header and no
 * transactions. Read as an empty block and stored, its native and internal deposits would never be
 * read again (only reconciliation's balance check at final blocks could find them). go-ethereum's
 * own client refuses such an answer ("server returned empty transaction list but block header
 * indicates transactions"); so do we: it is a block that node does not have yet.
 */
import type { Hex } from "viem";
import type { RawBlock } from "./types.js";

/** The root of the empty transactions trie: the `transactionsRoot` of a block with none. */
export const EMPTY_TRANSACTIONS_ROOT: Hex =
  "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421";

/**
 * True when the answer has no transactions while its header says the block holds some. An answer
 * without `transactionsRoot` cannot tell, and is taken as it is.
 */
export function transactionsLeftOut(
  block: Pick<RawBlock<unknown>, "transactions" | "transactionsRoot">,
): boolean {
  const root = block.transactionsRoot;
  if (typeof root !== "string") return false;
  return block.transactions.length === 0 && root.toLowerCase() !== EMPTY_TRANSACTIONS_ROOT;
}
