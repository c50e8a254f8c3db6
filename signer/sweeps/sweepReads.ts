/**
 * What reconciliation reads of sweeps (ledger/recon's `SweepReader`, injected by the composition
 * root: recon sits below the signer and never names custody.*). Read-only, on the caller's client
 * so the reads share its snapshot. Amounts are what the Swept events say moved
 * (custody.sweep_items.swept) of booked sweeps; addresses and assets lowercase, as stored.
 */
import type pg from "pg";

type Queryable = Pick<pg.ClientBase, "query">;

/** `hotWallet`: where the sweep moved it (lowercase). */
export type BookedSweepItem = {
  address: string;
  asset: string;
  swept: bigint;
  txHash: string;
  hotWallet: string;
};

/** Deposit addresses of the chain that a sweep settled at or after `since` took value from. */
export async function sweptAddressesSince(
  client: Queryable,
  args: { chainId: number; since: Date },
): Promise<string[]> {
  const r = await client.query<{ address: string }>(
    `SELECT DISTINCT i.address FROM custody.sweep_items i JOIN custody.sweeps s ON s.id = i.sweep_id
      WHERE i.chain_id = $1 AND s.settled_at >= $2`,
    [args.chainId, args.since],
  );
  return r.rows.map((x) => x.address);
}

/** What booked sweeps moved out of these addresses: one row per sweep item, with its tx hash. */
export async function bookedSweepItems(
  client: Queryable,
  args: { chainId: number; addresses: readonly string[] },
): Promise<BookedSweepItem[]> {
  const r = await client.query<{
    address: string;
    asset: string;
    swept: bigint;
    tx_hash: string;
    hot_wallet: string;
  }>(
    `SELECT i.address, i.asset, i.swept, s.tx_hash, lower(s.hot_wallet) AS hot_wallet
       FROM custody.sweep_items i JOIN custody.sweeps s ON s.id = i.sweep_id
      WHERE i.chain_id = $1 AND s.status = 'booked' AND i.swept > 0 AND i.address = ANY($2::text[])
        AND s.tx_hash IS NOT NULL`,
    [args.chainId, args.addresses],
  );
  return r.rows.map((x) => ({
    address: x.address,
    asset: x.asset,
    swept: x.swept,
    txHash: x.tx_hash,
    hotWallet: x.hot_wallet,
  }));
}

/** The signer's implementation of reconciliation's `SweepReader`. */
export const sweepReader = { sweptAddressesSince, bookedSweepItems };
