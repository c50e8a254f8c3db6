/**
 * The chain's custody addresses (`chain.custody_addresses`) and their kind, read in the run's
 * snapshot: all of them for a full run; the wallets and the deposit addresses it needs for an
 * incremental one.
 */
import type { PoolClient } from "../../foundation/db.js";
import type { CustodyKind } from "./types.js";

export async function loadCustody(
  client: PoolClient,
  chainId: number,
): Promise<Map<string, CustodyKind>> {
  const r = await client.query<{ address: string; kind: CustodyKind }>(
    "SELECT address, kind FROM chain.custody_addresses WHERE chain_id = $1",
    [chainId],
  );
  return new Map(r.rows.map((row) => [row.address, row.kind]));
}

/** The chain's hot and cold wallets (few): an incremental run reads these and only the deposit
 * addresses it needs (`loadCustodyOf`), not the whole set. */
export async function loadCustodyWallets(
  client: PoolClient,
  chainId: number,
): Promise<Map<string, CustodyKind>> {
  const r = await client.query<{ address: string; kind: CustodyKind }>(
    "SELECT address, kind FROM chain.custody_addresses WHERE chain_id = $1 AND kind IN ('hot', 'cold')",
    [chainId],
  );
  return new Map(r.rows.map((row) => [row.address, row.kind]));
}

/** Which of `addresses` are custody addresses of the chain, and their kind. */
export async function loadCustodyOf(
  client: PoolClient,
  chainId: number,
  addresses: readonly string[],
): Promise<Map<string, CustodyKind>> {
  if (addresses.length === 0) return new Map();
  const r = await client.query<{ address: string; kind: CustodyKind }>(
    "SELECT address, kind FROM chain.custody_addresses WHERE chain_id = $1 AND address = ANY($2::text[])",
    [chainId, addresses],
  );
  return new Map(r.rows.map((row) => [row.address, row.kind]));
}

export async function countCustody(client: PoolClient, chainId: number): Promise<number> {
  const r = await client.query<{ n: string }>(
    "SELECT count(*) AS n FROM chain.custody_addresses WHERE chain_id = $1",
    [chainId],
  );
  return Number(r.rows[0]!.n);
}
