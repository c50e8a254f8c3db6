/**
 * The Merkle-sum tree of customer liabilities for one asset (pure). Leaves are sorted by salted
 * id, so a leaf's position says nothing about the customer; every node commits to its children's
 * hashes and sums, so the root's sum is the total owed and no leaf can be hidden or negative.
 * ops/por/verify.js is the verifier's independent implementation of the same hashing (a browser
 * loads it as is); the two are tested against each other.
 *
 *   saltedId = keccak256(salt ‖ utf8(customerId))
 *   leaf     = keccak256(0x00 ‖ saltedId ‖ uint256 balance), sum = balance
 *   node     = keccak256(0x01 ‖ left.hash ‖ uint256 left.sum ‖ right.hash ‖ uint256 right.sum)
 *   an odd level is padded with (0x00…00, 0)
 */
import { concat, type Hex, keccak256, numberToHex, stringToHex, zeroHash } from "viem";

export type SumNode = { hash: Hex; sum: bigint };
export type LiabilityLeafInput = { customerId: string; salt: Hex; balance: bigint };
export type LiabilityLeaf = LiabilityLeafInput & { saltedId: Hex; hash: Hex };
export type ProofStep = { side: "left" | "right"; hash: Hex; sum: bigint };

const MAX_UINT256 = (1n << 256n) - 1n;
const EMPTY: SumNode = { hash: zeroHash, sum: 0n };
const u256 = (n: bigint): Hex => numberToHex(n, { size: 32 });

export function saltedId(customerId: string, salt: Hex): Hex {
  return keccak256(concat([salt, stringToHex(customerId)]));
}

export function leafOf(input: LiabilityLeafInput): LiabilityLeaf {
  if (input.balance < 0n)
    throw new RangeError(`customer ${input.customerId}: a negative balance cannot be a leaf`);
  if (input.balance > MAX_UINT256)
    throw new RangeError(`customer ${input.customerId}: balance exceeds uint256`);
  if (!/^0x[0-9a-f]{64}$/i.test(input.salt)) throw new RangeError("salt must be 32 bytes");
  const id = saltedId(input.customerId, input.salt);
  return { ...input, saltedId: id, hash: keccak256(concat(["0x00", id, u256(input.balance)])) };
}

export function parentOf(left: SumNode, right: SumNode): SumNode {
  const sum = left.sum + right.sum;
  if (sum > MAX_UINT256) throw new RangeError("liabilities exceed uint256");
  return {
    hash: keccak256(concat(["0x01", left.hash, u256(left.sum), right.hash, u256(right.sum)])),
    sum,
  };
}

export type MerkleSumTree = {
  leaves: LiabilityLeaf[];
  /** levels[0] are the leaves (as nodes), the last level is [root]. */
  levels: SumNode[][];
  root: SumNode;
};

/** An empty list has the empty root (0x00…00, 0): an asset nobody holds owes nothing. */
export function buildMerkleSumTree(inputs: readonly LiabilityLeafInput[]): MerkleSumTree {
  const seen = new Set<string>();
  for (const i of inputs) {
    if (seen.has(i.customerId)) throw new RangeError(`customer ${i.customerId} appears twice`);
    seen.add(i.customerId);
  }
  const leaves = inputs
    .map(leafOf)
    .sort((a, b) => (a.saltedId < b.saltedId ? -1 : a.saltedId > b.saltedId ? 1 : 0));
  let level: SumNode[] = leaves.map((l) => ({ hash: l.hash, sum: l.balance }));
  if (level.length === 0) return { leaves, levels: [[EMPTY]], root: EMPTY };
  const levels = [level];
  while (level.length > 1) {
    const next: SumNode[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(parentOf(level[i]!, level[i + 1] ?? EMPTY));
    level = next;
    levels.push(level);
  }
  return { leaves, levels, root: level[0]! };
}

/** The siblings from a customer's leaf up to the root. */
export function proofPath(
  tree: MerkleSumTree,
  customerId: string,
): { index: number; path: ProofStep[] } {
  const index = tree.leaves.findIndex((l) => l.customerId === customerId);
  if (index < 0) throw new RangeError(`customer ${customerId} has no leaf in this tree`);
  const path: ProofStep[] = [];
  let i = index;
  for (const level of tree.levels.slice(0, -1)) {
    const isRight = i % 2 === 1;
    const sibling = level[isRight ? i - 1 : i + 1] ?? EMPTY;
    path.push({ side: isRight ? "left" : "right", hash: sibling.hash, sum: sibling.sum });
    i = Math.floor(i / 2);
  }
  return { index, path };
}

/**
 * Merkle root of the custody address list (sorted lowercase addresses, keccak leaves, sorted pairs).
 * An odd level pairs its last node with itself, so the root does not tell [a, b, c] from
 * [a, b, c, c]: a list with an address twice is refused, not deduplicated, because the reserves
 * are summed over the same list and would count that address twice under a root showing it once.
 * (The shape is kept: attestations already on chain were built from unique lists.)
 */
export function addressesRoot(addresses: readonly string[]): Hex {
  const lower = addresses.map((a) => a.toLowerCase());
  const seen = new Set<string>();
  for (const a of lower) {
    if (seen.has(a)) throw new RangeError(`custody address ${a} appears twice`);
    seen.add(a);
  }
  let level = lower.sort().map((a) => keccak256(a as Hex));
  if (level.length === 0) return zeroHash;
  while (level.length > 1) {
    const next: Hex[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const a = level[i]!;
      const b = level[i + 1] ?? a;
      next.push(keccak256(concat(a < b ? [a, b] : [b, a])));
    }
    level = next;
  }
  return level[0]!;
}
