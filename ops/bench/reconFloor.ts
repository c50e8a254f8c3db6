/**
 * The floor of an incremental reconciliation of one block, for the scale bench: what Postgres costs
 * for the rows such a run must read and write, sent by plain statements with no matching, decisions,
 * checks or locks, in one transaction that is rolled back (the running tables stay as the measured
 * run left them):
 * - the block's facts;
 * - the ledger transfers written since the run's previous block, with both accounts' names;
 * - the two running tables moved by one row per (address, asset) the block touched: expected
 *   balances added to, cached on-chain balances set.
 * The on-chain read of the same balances is not in it (the bench prints it on a line of its own).
 */
import type { Pool } from "../../foundation/db.js";

export async function measureReconFloor(
  pool: Pool,
  { chainId, block, afterSeq }: { chainId: number; block: number; afterSeq: string },
): Promise<number> {
  const client = await pool.connect();
  try {
    const t = performance.now();
    await client.query("BEGIN");
    const facts = await client.query<{ to_address: string; asset: string; amount: bigint }>(
      `SELECT id, tx_hash, position, to_address, asset, amount FROM chain.transfers
        WHERE chain_id = $1 AND block_number = $2`,
      [chainId, block],
    );
    const entries = await client.query(
      `SELECT t.id, t.seq, t.asset_id, t.amount, t.posted_delta, t.kind, t.chain_id, t.tx_hash,
              t.position, d.name AS debit, c.name AS credit
         FROM ledger.transfers t
         JOIN ledger.accounts d ON d.id = t.debit_account_id
         JOIN ledger.accounts c ON c.id = t.credit_account_id
        WHERE t.seq > $1`,
      [afterSeq],
    );
    const sums = new Map<string, { address: string; asset: string; amount: bigint }>();
    for (const f of facts.rows) {
      const key = `${f.to_address}|${f.asset}`;
      const s = sums.get(key);
      if (s) s.amount += f.amount;
      else sums.set(key, { address: f.to_address, asset: f.asset, amount: f.amount });
    }
    const rows = [...sums.values()];
    const address = rows.map((r) => r.address);
    const asset = rows.map((r) => r.asset);
    const amount = rows.map((r) => r.amount.toString());
    await client.query(
      `INSERT INTO recon.expected_fact_balances (chain_id, address, asset, balance)
       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::numeric[])
       ON CONFLICT (chain_id, address, asset) DO UPDATE
         SET balance = recon.expected_fact_balances.balance + excluded.balance`,
      [chainId, address, asset, amount],
    );
    await client.query(
      `INSERT INTO recon.onchain_balances (chain_id, address, asset, balance, block_number)
       SELECT $1, a, s, b, $5 FROM unnest($2::text[], $3::text[], $4::numeric[]) AS u(a, s, b)
       ON CONFLICT (chain_id, address, asset) DO UPDATE
         SET balance = excluded.balance, block_number = excluded.block_number`,
      [chainId, address, asset, amount, block],
    );
    const ms = performance.now() - t;
    await client.query("ROLLBACK");
    // A floor over no rows would measure nothing: the block and its transfers must be there.
    if (facts.rows.length === 0 || entries.rows.length < facts.rows.length)
      throw new Error(
        `the floor read ${facts.rows.length} facts of block ${block} and ${entries.rows.length} entries after seq ${afterSeq}`,
      );
    return ms;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
