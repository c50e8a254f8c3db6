/**
 * What other modules may read of the watched set (chain.custody_addresses): a customer's deposit
 * addresses, a chain's hot wallet, whether an address is the custody's. Addresses come back
 * lowercase, as stored; callers checksum at their edge.
 */
import type pg from "pg";

type Queryable = Pick<pg.ClientBase, "query">;

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
