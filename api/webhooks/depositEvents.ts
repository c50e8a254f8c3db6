/**
 * Produces the deposit webhook events from what the indexer and the ledger recorded: `detected`
 * (a fact into a deposit address), `confirmed` (its confirmation rule met), `credited` (the ledger
 * booked the credit), `orphaned` (its block left the canonical chain). One pass finds facts whose
 * event is not marked yet, and emits event + mark in one transaction per fact; the worker runs it
 * every second. It reads the views the owners publish: the indexer's chain.deposit_facts and the
 * ledger's ledger.credited_facts.
 */

import { formatAmount } from "../../foundation/amounts.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import type { DepositFactRow } from "../../ledger/index.js";
import { emitEvent } from "./events.js";

const CONDITIONS = {
  detected: "true",
  confirmed: "t.confirmed_at IS NOT NULL",
  credited: `EXISTS (SELECT 1 FROM ledger.credited_facts lt
               WHERE lt.chain_id = t.chain_id AND lt.tx_hash = t.tx_hash AND lt.position = t.position)`,
  orphaned: "t.status = 'orphaned'",
} as const;
type DepositEvent = keyof typeof CONDITIONS;

export async function produceDepositEvents({
  common,
  pool,
  limit = 200,
}: {
  common: Common;
  pool: Pool;
  limit?: number;
}): Promise<number> {
  let produced = 0;
  for (const event of Object.keys(CONDITIONS) as DepositEvent[]) {
    const { rows } = await pool.query<DepositFactRow>(
      `SELECT t.id::text, t.owner, t.chain_id::text, t.asset, t.to_address, t.from_address,
              t.amount, t.tx_hash, t.position, t.block_number::text, t.block_hash
         FROM chain.deposit_facts t
        WHERE ${CONDITIONS[event]}
          AND NOT EXISTS (SELECT 1 FROM api.deposit_event_marks m
                           WHERE m.transfer_id = t.id AND m.event = $1)
        ORDER BY t.id LIMIT $2`,
      [event, limit],
    );
    for (const f of rows) {
      await withTransaction(pool, async (client) => {
        const eventId = await emitEvent(client, common.config, {
          type: `deposit.${event}`,
          name: `deposit:${f.chain_id}:${f.block_hash}:${f.tx_hash}:${f.position}:${event}`,
          data: {
            deposit_id: f.id,
            customer_id: f.owner,
            chain_id: Number(f.chain_id),
            asset: f.asset,
            address: f.to_address,
            from: f.from_address,
            amount: formatAmount(f.amount),
            tx_hash: f.tx_hash,
            position: f.position,
            block_number: f.block_number,
            block_hash: f.block_hash,
          },
        });
        await client.query(
          `INSERT INTO api.deposit_event_marks (transfer_id, event, event_id) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING`,
          [f.id, event, eventId],
        );
      });
      produced++;
    }
  }
  return produced;
}
