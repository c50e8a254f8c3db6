/**
 * What other modules may read of the watched set (chain.custody_addresses): a customer's deposit
 * addresses, a chain's hot wallet, whether an address is the custody's, and (for reconciliation's
 * snapshot) the set with each address's kind. Addresses come back lowercase, as stored; callers
 * checksum at their edge.
 */
import type pg from "pg";
import type { WatchedAddress } from "./watched.js";

type Queryable = Pick<pg.ClientBase, "query">;

/** An address's role in custody: a customer's deposit address, a hot or a cold wallet. */
export type WatchedKind = WatchedAddress["kind"];

export type CustomerDepositAddress = { chainId: number; address: string; createdAt: Date };

/** A customer's deposit addresses on every chain, by chain, oldest first. */
export async function depositAddressesOf(
  client: Queryable,
  customerId: string,
): Promise<CustomerDepositAddress[]> {
  const { rows } = await client.query<{ chain_id: string; address: string; created_at: Date }>(
    `SELECT chain_id::text, address, created_at FROM chain.custody_addresses
      WHERE kind = 'deposit' AND owner = $1 ORDER BY chain_id, created_at`,
    [customerId],
  );
  return rows.map((r) => ({
    chainId: Number(r.chain_id),
    address: r.address,
    createdAt: r.created_at,
  }));
}

/** The chain's first registered hot wallet (kind hot), if any. */
export async function hotWalletOf(client: Queryable, chainId: number): Promise<string | undefined> {
  const { rows } = await client.query<{ address: string }>(
    `SELECT address FROM chain.custody_addresses WHERE chain_id = $1 AND kind = 'hot'
      ORDER BY created_at LIMIT 1`,
    [chainId],
  );
  return rows[0]?.address;
}

/** Whether `address` (lowercase) is in the chain's watched set, of any kind. */
export async function isWatchedAddress(
  client: Queryable,
  chainId: number,
  address: string,
): Promise<boolean> {
  const { rows } = await client.query(
    "SELECT 1 FROM chain.custody_addresses WHERE chain_id = $1 AND address = $2",
    [chainId, address],
  );
  return rows.length > 0;
}

/** Every custody address of the chain and its kind (a full reconciliation's snapshot). */
export async function loadCustody(
  client: Queryable,
  chainId: number,
): Promise<Map<string, WatchedKind>> {
  const r = await client.query<{ address: string; kind: WatchedKind }>(
    "SELECT address, kind FROM chain.custody_addresses WHERE chain_id = $1",
    [chainId],
  );
  return new Map(r.rows.map((row) => [row.address, row.kind]));
}

/**
 * Every custody address of the chain with its kind, in address order (attestation's reserves);
 * with `asOf`, only those registered by then (the list a reconciliation run started then saw).
 */
export async function listCustody(
  client: Queryable,
  chainId: number,
  asOf?: Date,
): Promise<{ address: string; kind: WatchedKind }[]> {
  const r = await client.query<{ address: string; kind: WatchedKind }>(
    `SELECT address, kind FROM chain.custody_addresses
      WHERE chain_id = $1 AND ($2::timestamptz IS NULL OR created_at <= $2)
      ORDER BY address`,
    [chainId, asOf ?? null],
  );
  return r.rows;
}

/** The chain's hot and cold wallets (few): an incremental run reads these and only the deposit
 * addresses it needs (`loadCustodyOf`), not the whole set. */
export async function loadCustodyWallets(
  client: Queryable,
  chainId: number,
): Promise<Map<string, WatchedKind>> {
  const r = await client.query<{ address: string; kind: WatchedKind }>(
    "SELECT address, kind FROM chain.custody_addresses WHERE chain_id = $1 AND kind IN ('hot', 'cold')",
    [chainId],
  );
  return new Map(r.rows.map((row) => [row.address, row.kind]));
}

/** Which of `addresses` are custody addresses of the chain, and their kind. */
export async function loadCustodyOf(
  client: Queryable,
  chainId: number,
  addresses: readonly string[],
): Promise<Map<string, WatchedKind>> {
  if (addresses.length === 0) return new Map();
  const r = await client.query<{ address: string; kind: WatchedKind }>(
    "SELECT address, kind FROM chain.custody_addresses WHERE chain_id = $1 AND address = ANY($2::text[])",
    [chainId, addresses],
  );
  return new Map(r.rows.map((row) => [row.address, row.kind]));
}

export async function countCustody(client: Queryable, chainId: number): Promise<number> {
  const r = await client.query<{ n: string }>(
    "SELECT count(*) AS n FROM chain.custody_addresses WHERE chain_id = $1",
    [chainId],
  );
  return Number(r.rows[0]!.n);
}
