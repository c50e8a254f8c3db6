/**
 * For the console's overview tests: a reconciliation run row as the reconciler stores it (a read
 * test seeds what the console reads through /v1/recon/runs), and a hot wallet's native balance in it.
 */
import type { Pool } from "../../../foundation/db.js";

/** A run of `chainId` at block 7 with its balances, finished at `finishedAt`; its id. */
export async function insertReconRun(
  pool: Pool,
  chainId: number,
  status: string,
  balances: unknown,
  finishedAt: string | null = null,
): Promise<number> {
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO recon.runs (chain_id, block_number, mode, status, balances, finished_at)
     VALUES ($1, 7, 'full', $2, $3::jsonb, $4) RETURNING id`,
    [chainId, status, JSON.stringify(balances), finishedAt],
  );
  return Number(rows[0]!.id);
}

/** A hot wallet's native balance on chain 31337 as a run reports it (chain and ledger agree). */
export const hotBalance = (address: string, chain: bigint) => ({
  scope: "hot",
  address,
  assetId: `31337:0x${"0".repeat(40)}`,
  chain: chain.toString(),
  ledger: chain.toString(),
  difference: "0",
  explained: "0",
  unexplained: "0",
});

/** The overview's Hot wallets section. */
export function hotWalletsSection(body: string): string {
  const start = body.indexOf('id="hot-wallets"');
  return body.slice(start, body.indexOf("</section>", start));
}
