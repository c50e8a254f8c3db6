/**
 * Produces the webhook events of changes the ledger records for customers (its outbox, the
 * `ledger.customer_events` view, written in the transaction of each change): a credited deposit's
 * reorg hold placed (`deposit.reorg_held`: held, may come back), voided (`deposit.reorg_restored`:
 * it came back, the credit stands) or posted (`deposit.reorg_reversed`: its block is final without
 * it, the credit is taken back), and an operator's credit of an unattributed inflow
 * (`inflow.credited`). Each ledger event gives one webhook event and a mark, in one transaction; a
 * crash between passes sends it on the next (same deterministic id, so never twice).
 *
 * Deposit events carry the orphaned fact's id as `deposit_id`, so the dispatcher orders them with
 * that deposit's other events; a hold is told only after the deposit's `deposit.orphaned`, and a
 * credit's events in the order the ledger recorded them.
 */

import { formatAmount } from "../../foundation/amounts.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { assetTokenOf } from "../../ledger/index.js";
import { type EventType, emitEvent } from "./events.js";

const TYPE_OF: Record<string, EventType> = {
  "deposit.reorg_held": "deposit.reorg_held",
  "deposit.reorg_restored": "deposit.reorg_restored",
  "deposit.reorg_final": "deposit.reorg_reversed",
  "inflow.credited": "inflow.credited",
};

// The fact a deposit event is about (the orphaned one: its block is `held_block_hash` on a restore,
// `block_hash` otherwise), and on a restore the fact that carries the credit now (at
// `restored_position` when the deposit came back as another transfer of its transaction).
const DUE = `
SELECT e.id::text, e.type, e.transfer_id::text, e.payload,
       f.id::text AS deposit_id, f.from_address, f.block_number::text AS block_number,
       r.id::text AS restored_deposit_id,
       -- Told, or no longer to be told (the fact came back before its orphaning was sent). Per
       -- life (depositEvents.ts): an orphaning is still due while fewer lives have their orphaned
       -- mark than their detected one (the first life's detected goes out even for an orphaned
       -- fact). Any orphaned mark was not enough: a fact back in its own block and orphaned again
       -- has the first life's, and its second hold went out before its second orphaning.
       (f.status <> 'orphaned' OR
          (SELECT count(*) FILTER (WHERE m.event = 'orphaned')
                    >= greatest(count(*) FILTER (WHERE m.event = 'detected'), 1)
             FROM api.deposit_event_marks m WHERE m.transfer_id = f.id)) AS orphaned_told
  FROM ledger.customer_events e
  LEFT JOIN chain.deposit_facts f
    ON e.type LIKE 'deposit.%' AND f.chain_id = (e.payload->>'chain_id')::bigint
   AND f.tx_hash = e.payload->>'tx_hash' AND f.position = e.payload->>'position'
   AND f.block_hash = coalesce(e.payload->>'held_block_hash', e.payload->>'block_hash')
  LEFT JOIN chain.deposit_facts r
    ON e.type = 'deposit.reorg_restored' AND r.chain_id = (e.payload->>'chain_id')::bigint
   AND r.tx_hash = e.payload->>'tx_hash'
   AND r.position = coalesce(e.payload->>'restored_position', e.payload->>'position')
   AND r.block_hash = e.payload->>'block_hash'
 WHERE NOT EXISTS (SELECT 1 FROM api.ledger_event_marks m WHERE m.ledger_event_id = e.id)
 ORDER BY e.id
 LIMIT $1`;

type DueRow = {
  id: string;
  type: string;
  transfer_id: string;
  payload: Record<string, unknown>;
  deposit_id: string | null;
  from_address: string | null;
  block_number: string | null;
  restored_deposit_id: string | null;
  orphaned_told: boolean;
};

const text = (v: unknown) => (v === null || v === undefined ? null : String(v));
const amount = (v: unknown) =>
  v === null || v === undefined ? null : formatAmount(BigInt(String(v)));
/** The token of the payload's `assetIdOf` id (`<chainId>:<token>`), null where it has none. */
const tokenOf = (assetId: unknown) =>
  typeof assetId === "string" && assetId.includes(":") ? assetTokenOf(assetId) : null;

function dataOf(row: DueRow): Record<string, unknown> {
  const p = row.payload;
  if (row.type === "inflow.credited")
    return {
      inflow_id: row.transfer_id,
      customer_id: p.owner,
      chain_id: Number(p.chain_id),
      asset: tokenOf(p.asset_id),
      address: p.address,
      amount: amount(p.amount),
      block_number: text(p.block_number),
      credited_by: p.credited_by,
      reason: p.reason,
    };
  const deposit = {
    deposit_id: row.deposit_id,
    credit_id: row.transfer_id,
    customer_id: p.owner,
    chain_id: Number(p.chain_id),
    asset: tokenOf(p.asset_id),
    address: p.to_address,
    from: row.from_address,
    amount: amount(p.amount),
    tx_hash: p.tx_hash,
    position: p.position,
  };
  if (row.type === "deposit.reorg_restored")
    return {
      ...deposit,
      block_hash: text(p.held_block_hash),
      restored_deposit_id: row.restored_deposit_id,
      // The credit that carries the deposit now: this one, or (back as another transfer of its
      // transaction) the credit of that deposit, whose deposit.credited names it.
      restored_credit_id: text(p.restored_credit_id) ?? row.transfer_id,
      restored_block_number: text(p.block_number),
      restored_block_hash: text(p.block_hash),
    };
  return {
    ...deposit,
    block_number: row.block_number,
    block_hash: text(p.block_hash),
    orphaned_block: text(p.orphaned_block),
    hold_amount: amount(p.hold_amount),
    shortfall_amount: amount(p.shortfall_amount),
    ...(row.type === "deposit.reorg_final" ? { finalized_block: text(p.finalized) } : {}),
  };
}

/** What a webhook event producer pass is given (deposit events and ledger events alike). */
export type ProducerOptions = { common: Common; pool: Pool; limit?: number };

export async function produceLedgerEvents(
  { common, pool, limit = 200 }: ProducerOptions,
  /**
   * The deposit-events producer's lock (depositEvents.ts): once it aborts another worker may be
   * passing, and nothing more is sent (what is not sent is the next holder's).
   */
  held?: AbortSignal,
): Promise<number> {
  const { rows } = await pool.query<DueRow>(DUE, [limit]);
  // A credit whose hold cannot be told yet: its later events wait with it (they would overtake it).
  const waiting = new Set<string>();
  let produced = 0;
  for (const row of rows) {
    if (held?.aborted) return produced;
    if (waiting.has(row.transfer_id)) continue;
    if (row.type === "deposit.reorg_held" && row.deposit_id !== null && !row.orphaned_told) {
      waiting.add(row.transfer_id);
      continue;
    }
    await withTransaction(pool, async (client) => {
      const eventId = await emitEvent(client, common.config, {
        type: TYPE_OF[row.type]!,
        name: `ledger-event:${row.id}`,
        data: dataOf(row),
      });
      await client.query(
        `INSERT INTO api.ledger_event_marks (ledger_event_id, event_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING`,
        [row.id, eventId],
      );
    });
    produced++;
  }
  return produced;
}
