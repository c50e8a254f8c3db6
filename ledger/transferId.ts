import { createHash } from "node:crypto";

/** The namespace of custody-node ledger ids (a fixed random UUID; never change it). */
export const LEDGER_NAMESPACE = "6f1c2a4e-9b1d-4c55-8f0e-3d7a1b2c9e41";

function uuidBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replaceAll("-", ""), "hex");
}

/**
 * A deterministic transfer id: UUID v5 (RFC 9562) of `name` in the ledger namespace. The same
 * chain event or business id always yields the same transfer id, so a retry cannot apply twice.
 * Names per docs/contracts.md, e.g. `deposit:31337:0xabc…:log:3`, `withdrawal:<withdrawalId>`.
 */
export function transferId(name: string, namespace = LEDGER_NAMESPACE): string {
  const hash = createHash("sha1")
    .update(uuidBytes(namespace))
    .update(Buffer.from(name, "utf8"))
    .digest();
  const b = hash.subarray(0, 16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x50;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = b.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** The deposit credit's name for a chain fact; `n` > 0 for a re-credit after a compensation. */
export function depositTransferName(
  chainId: number,
  txHash: string,
  position: string,
  n = 0,
): string {
  const base = `deposit:${chainId}:${txHash.toLowerCase()}:${position}`;
  return n === 0 ? base : `${base}:${n}`;
}

export function assetIdOf(chainId: number | bigint, token: string): string {
  return `${chainId}:${token.toLowerCase()}`;
}

/** The chain id part of an `assetIdOf` id, as written there (decimal). */
export function assetChainOf(assetId: string): string {
  return assetId.slice(0, assetId.indexOf(":"));
}

/** The token part of an `assetIdOf` id (lowercase address; the zero address for native). */
export function assetTokenOf(assetId: string): string {
  return assetId.slice(assetId.indexOf(":") + 1);
}
