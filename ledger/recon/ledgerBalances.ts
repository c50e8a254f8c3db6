/**
 * The ledger side of a run's balance check: posted balances of the chain's non-user accounts and
 * the user liabilities, with pending reorg holds counted as posted; and the deposit credits under
 * a reorg hold.
 */
import type { PoolClient } from "../../foundation/db.js";
import { accountKey } from "./balances.js";
import type { ReorgHold } from "./types.js";

/**
 * Posted ledger balances of the chain's custody, fee and suspense accounts (a few per asset, by
 * the partial index `accounts_not_user`), and the user liabilities at the snapshot (liabilities.ts),
 * both with pending reorg holds counted as posted.
 */
export async function loadBalances(
  client: PoolClient,
  chainId: number,
  userLiabilities: ReadonlyMap<string, bigint>,
): Promise<{ ledger: Map<string, bigint>; liabilities: Map<string, bigint> }> {
  const r = await client.query<{ asset_id: string; name: string; net: bigint }>(
    `SELECT a.asset_id, a.name, a.debits_posted - a.credits_posted AS net
       FROM ledger.account_balances a
      WHERE a.chain_id = $1 AND a.kind <> 'user'`,
    [chainId],
  );
  const ledger = new Map<string, bigint>();
  const liabilities = new Map(userLiabilities);
  for (const row of r.rows) ledger.set(accountKey(row.asset_id, row.name), row.net);
  // A pending reorg hold is money the chain no longer holds: count it as posted (custody:deposits
  // lower, the customer's liability lower), so a reorg the ledger has handled is not a difference.
  const held = await client.query<{ asset_id: string; debit_kind: string; amount: bigint }>(
    `SELECT h.asset_id, h.debit_kind, sum(h.amount) AS amount
       FROM ledger.pending_reorg_holds h
      WHERE h.chain_id = $1
      GROUP BY h.asset_id, h.debit_kind`,
    [chainId],
  );
  for (const row of held.rows) {
    const amount = row.amount;
    const key = accountKey(row.asset_id, "custody:deposits");
    ledger.set(key, (ledger.get(key) ?? 0n) - amount);
    if (row.debit_kind === "user")
      liabilities.set(row.asset_id, (liabilities.get(row.asset_id) ?? 0n) - amount);
  }
  return { ledger, liabilities };
}

/** Deposit credits of the chain under a reorg hold (few: each one is a reorg of a credit). */
export async function loadReorgHolds(client: PoolClient, chainId: number): Promise<ReorgHold[]> {
  const r = await client.query<{
    credit_id: string;
    owner: string;
    asset: string;
    tx_hash: string;
    position: string;
    to_address: string;
    amount: bigint;
    state: "held" | "final";
    hold_amount: bigint | null;
    shortfall_amount: bigint | null;
    orphaned_block: string | null;
    updated_at: Date;
    returned_credit_id: string | null;
    returned_position: string | null;
  }>(
    `SELECT credit_id::text, owner, asset, tx_hash, position, to_address, amount, state,
       hold_amount, shortfall_amount, orphaned_block::text, updated_at,
       returned_credit_id::text, returned_position
     FROM ledger.reorged_deposit_credits WHERE chain_id = $1
     ORDER BY updated_at, credit_id`,
    [chainId],
  );
  return r.rows.map((x) => ({
    creditId: x.credit_id,
    owner: x.owner,
    assetId: `${chainId}:${x.asset}`,
    txHash: x.tx_hash,
    position: x.position,
    toAddress: x.to_address,
    amount: x.amount,
    state: x.state,
    holdAmount: x.hold_amount ?? 0n,
    shortfallAmount: x.shortfall_amount ?? 0n,
    orphanedBlock: x.orphaned_block === null ? null : Number(x.orphaned_block),
    updatedAt: x.updated_at,
    ...(x.returned_credit_id !== null
      ? { returned: { creditId: x.returned_credit_id, position: x.returned_position ?? "?" } }
      : {}),
  }));
}
