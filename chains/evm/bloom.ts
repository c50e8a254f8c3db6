/**
 * Block logs bloom (yellow paper 4.3.1): 3 bits of a 2048-bit filter per address or topic. A clear
 * bit means "definitely absent"; all set means "maybe present". The indexer uses it to notice an
 * eth_getLogs answer that left out logs a block says it has.
 */
import { type Hex, hexToBytes, keccak256 } from "viem";

/** The 3 bit positions an item sets (compute once per token, reuse for every block). */
export function bloomBits(item: Hex): number[] {
  const hash = hexToBytes(keccak256(item));
  return [0, 2, 4].map((i) => ((hash[i]! << 8) | hash[i + 1]!) & 2047);
}

/** The bloom the items set (each item's 3 bits), as a block or receipt carries it: 256 bytes. */
export function bloomOf(items: Iterable<Hex>): Uint8Array {
  const bloom = new Uint8Array(256);
  for (const item of items)
    for (const bit of bloomBits(item)) bloom[255 - (bit >> 3)]! |= 1 << (bit & 7);
  return bloom;
}

export function bloomHas(bloom: Uint8Array, bits: number[]): boolean {
  if (bloom.length !== 256) return true; // unknown format: assume present
  return bits.every((bit) => (bloom[255 - (bit >> 3)]! & (1 << (bit & 7))) !== 0);
}

export function bloomMayContain(bloom: Hex, item: Hex): boolean {
  return bloomHas(hexToBytes(bloom), bloomBits(item));
}
