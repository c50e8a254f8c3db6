/**
 * The deposit addresses' last-read on-chain balances (`recon.onchain_balances`) and their per-asset
 * total (`recon.deposit_balance_totals`). A run reads only addresses with activity plus a rotating
 * slice; the rest count at the balance read last (no fact touched them since, and the rotation and
 * the unattributed-inflow check find value that arrived without one).
 */
import type { PoolClient } from "../../ops/db.js";
import type { OnchainBalance } from "./balances.js";

const STORE_CHUNK = 50_000;

/**
 * What the deposit addresses not read this run hold, per asset id, by their cached balances:
 * the stored total minus the cached balances of the addresses that were read.
 */
export async function unreadDepositBalances(
  client: PoolClient,
  args: { chainId: number; read: readonly string[] },
): Promise<Map<string, bigint>> {
  const { chainId } = args;
  const out = new Map<string, bigint>();
  const totals = await client.query<{ asset: string; total: string }>(
    "SELECT asset, total::text FROM recon.deposit_balance_totals WHERE chain_id = $1",
    [chainId],
  );
  for (const r of totals.rows) out.set(`${chainId}:${r.asset}`, BigInt(r.total));
  if (out.size === 0 || args.read.length === 0) return out;
  const cached = await client.query<{ asset: string; sum: string }>(
    `SELECT asset, sum(balance)::text AS sum FROM recon.onchain_balances
      WHERE chain_id = $1 AND address = ANY($2::text[]) GROUP BY asset`,
    [chainId, args.read],
  );
  for (const r of cached.rows) {
    const k = `${chainId}:${r.asset}`;
    out.set(k, (out.get(k) ?? 0n) - BigInt(r.sum));
  }
  return out;
}

/**
 * Keep the deposit balances read at `block` (only where nothing newer is stored) and move the
 * totals by the difference, in the caller's transaction; one writer per chain at a time.
 */
export async function storeDepositBalances(
  client: PoolClient,
  args: { chainId: number; block: number; balances: readonly OnchainBalance[] },
): Promise<void> {
  const { chainId, block } = args;
  const deposits = args.balances.filter((b) => b.kind === "deposit");
  if (deposits.length === 0) return;
  await client.query(
    "SELECT pg_advisory_xact_lock(hashtextextended('recon.onchain_balances:' || $1::text, 0))",
    [chainId],
  );
  const prefix = `${chainId}:`;
  for (let i = 0; i < deposits.length; i += STORE_CHUNK) {
    const chunk = deposits.slice(i, i + STORE_CHUNK);
    await client.query(
      `WITH input AS (
         SELECT * FROM unnest($2::text[], $3::text[], $4::numeric[]) AS i(address, asset, balance)),
       old AS (
         SELECT i.address, i.asset, i.balance, b.balance AS old_balance
           FROM input i LEFT JOIN recon.onchain_balances b
             ON b.chain_id = $1 AND b.address = i.address AND b.asset = i.asset
          WHERE b.block_number IS NULL OR b.block_number <= $5),
       kept AS (
         INSERT INTO recon.onchain_balances (chain_id, address, asset, balance, block_number)
         SELECT $1, address, asset, balance, $5 FROM old
         ON CONFLICT (chain_id, address, asset) DO UPDATE
           SET balance = excluded.balance, block_number = excluded.block_number)
       INSERT INTO recon.deposit_balance_totals (chain_id, asset, total)
       SELECT $1, asset, sum(balance - COALESCE(old_balance, 0)) FROM old GROUP BY asset
       ON CONFLICT (chain_id, asset) DO UPDATE
         SET total = recon.deposit_balance_totals.total + excluded.total`,
      [
        chainId,
        chunk.map((b) => b.address),
        chunk.map((b) => b.assetId.slice(prefix.length)),
        chunk.map((b) => b.balance.toString()),
        block,
      ],
    );
  }
}
