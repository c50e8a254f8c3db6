/** Deterministic ids (RFC 4122 UUID v5) from a name, so the same fact always gets the same id. */
import { createHash } from "node:crypto";

/** The RFC 4122 URL namespace; our names carry a "custody-node." prefix so they never collide. */
const NAMESPACE = "6ba7b811-9dad-11d1-80b4-00c04fd430c8";

export function uuidV5(name: string, namespace: string = NAMESPACE): string {
  const ns = Buffer.from(namespace.replaceAll("-", ""), "hex");
  const hash = createHash("sha1").update(ns).update(name, "utf8").digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function eventIdOf(name: string): string {
  return uuidV5(`custody-node.webhook:${name}`);
}
