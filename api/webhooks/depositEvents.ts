/**
 * Produces the deposit webhook events from what the indexer and the ledger recorded: `detected`
 * (a fact into a deposit address), `confirmed` (its confirmation rule met), `credited` (the ledger
 * booked the credit), `orphaned` (its block left the canonical chain). One pass finds facts whose
 * event is not marked yet, and emits event + mark in one transaction per fact; the worker runs it
 * every second. It reads the views the owners publish: the indexer's chain.deposit_facts and the
 * ledger's ledger.credited_facts. Then the events of the ledger's own records (reorg holds, inflow
 * credits: ledgerEvents.ts).
 */

import { formatAmount } from "../../foundation/amounts.js";
import { type PoolClient, withTransaction } from "../../foundation/db.js";
import { withPooledSessionLock } from "../../foundation/sessionLock.js";
import type { DepositFactRow } from "../../ledger/index.js";
import { emitEvent } from "./events.js";
import { type ProducerOptions, produceLedgerEvents } from "./ledgerEvents.js";

/**
 * A standing credit of fact `t` (as crediting matches it: identity, recipient, asset, amount):
 * `lt`, a row of the ledger's credited_facts.
 */
const STANDING_CREDIT = `lt.chain_id = t.chain_id AND lt.tx_hash = t.tx_hash AND lt.position = t.position
  AND lt.standing AND lt.to_address = t.to_address AND lt.asset = t.asset AND lt.amount = t.amount`;

const CONDITIONS = {
  detected: "true",
  confirmed: "t.confirmed_at IS NOT NULL",
  // A standing credit of this deposit while this fact is the confirmed one: a reorged deposit's
  // copy is not credited while the ledger holds the credit back, nor by position alone.
  credited: `t.status = 'confirmed' AND EXISTS (SELECT 1 FROM ledger.credited_facts lt
               WHERE ${STANDING_CREDIT})`,
  orphaned: "t.status = 'orphaned'",
} as const;
type DepositEvent = keyof typeof CONDITIONS;

/**
 * `credited` names the credit (its ledger transfer id, `credit_id`): a copy re-mined in another
 * block carries the same credit as the orphaned deposit, and the reorg events name it too, so a
 * receiver can link the two. The other events have none.
 */
const creditIdColumn = (event: DepositEvent) =>
  event === "credited"
    ? `(SELECT lt.transfer_id::text FROM ledger.credited_facts lt WHERE ${STANDING_CREDIT}
         ORDER BY lt.created_at DESC LIMIT 1) AS credit_id`
    : "NULL::text AS credit_id";

const FACT_COLUMNS = `t.id::text, t.owner, t.chain_id::text, t.asset, t.to_address, t.from_address,
  t.amount, t.tx_hash, t.position, t.block_number::text, t.block_hash`;
// `orphaned` follows the `detected` of the life it closes (lives after the first are counted).
const DETECTED_MARKED = `AND EXISTS (SELECT 1 FROM api.deposit_event_marks m
                          WHERE m.transfer_id = t.id AND m.event = 'detected')`;
const LIFE_DETECTED = `l.life <= (SELECT count(*) FROM api.deposit_event_marks m
                        WHERE m.transfer_id = t.id AND m.event = 'detected')`;

/**
 * One pass at a time across every worker. A pass reads what is due and then emits it row by row: a
 * second worker's pass in between could emit `orphaned` for a deposit this one read as due for
 * `credited` and sends after it, and a backend would end with a credited deposit the chain dropped.
 * A session lock on its own connection (released if the process dies); a worker that finds it held
 * skips its turn (returns 0). That connection is watched (foundation/sessionLock.ts): one gone
 * silent frees the lock for another worker in ~3 × `lockLostAfterMs` instead of hours, and a pass
 * that counted its lock lost emits nothing more (another worker may be passing by then).
 */
const PRODUCER_LOCK_KEY = "hashtextextended('api.deposit_events', 0)";

/**
 * Whether the life this pass read a fact in is still its life, checked under the lock its events'
 * emitters take (the subject's, held until commit; api migration 0014). A pass can be held up
 * between its read and its write past the loss of the producer lock (`held` is checked before the
 * write, not during it): meanwhile another worker may have sent this life's `orphaned`, and an
 * event of the life sent after it would leave a backend with a credited deposit the chain dropped.
 * An `orphaned` committed later waits for this transaction, so it follows this event.
 */
async function stillDue(client: PoolClient, factId: string, life: number): Promise<boolean> {
  await client.query(
    "SELECT pg_advisory_xact_lock(hashtextextended('api.webhook_subject:' || $1, 0))",
    [`deposit:${factId}`],
  );
  const { rows } = await client.query<{ orphanings: number }>(
    `SELECT count(*)::int AS orphanings FROM api.deposit_event_marks
      WHERE transfer_id = $1 AND event = 'orphaned'`,
    [factId],
  );
  // Life n follows n - 1 orphanings (producePass's lives).
  return rows[0]!.orphanings + 1 === life;
}

export async function produceDepositEvents(
  options: ProducerOptions & { lockLostAfterMs?: number },
): Promise<number> {
  const { lockLostAfterMs, ...pass } = options;
  const turn = await withPooledSessionLock(
    options.pool,
    {
      key: PRODUCER_LOCK_KEY,
      ...(lockLostAfterMs !== undefined ? { lostAfterMs: lockLostAfterMs } : {}),
    },
    (held) => producePass(pass, held),
  );
  return turn?.value ?? 0;
}

async function producePass(
  { common, pool, limit = 200 }: ProducerOptions,
  held: AbortSignal,
): Promise<number> {
  let produced = 0;
  for (const event of Object.keys(CONDITIONS) as DepositEvent[]) {
    // A fact orphaned and then canonical again (a reorg back revives its row) starts a new life:
    // its events are due again, after the orphaning, so the backend hears the deposit is back;
    // `orphaned` closes a life whose `detected` went out. Facts never orphaned-and-marked (nearly
    // all) are read as before, by the anti-join; only the few with an `orphaned` mark count lives.
    const { rows } = await pool.query<DepositFactRow & { life: number; credit_id: string | null }>(
      `SELECT * FROM (
         SELECT ${FACT_COLUMNS}, ${creditIdColumn(event)}, 1 AS life
           FROM chain.deposit_facts t
          WHERE ${CONDITIONS[event]}
            AND NOT EXISTS (SELECT 1 FROM api.deposit_event_marks m
                             WHERE m.transfer_id = t.id AND m.event IN ($1, 'orphaned'))
            ${event === "orphaned" ? DETECTED_MARKED : ""}
         UNION ALL
         SELECT ${FACT_COLUMNS}, ${creditIdColumn(event)}, l.life
           FROM (SELECT transfer_id, count(*)::int + 1 AS life FROM api.deposit_event_marks
                  WHERE event = 'orphaned' GROUP BY transfer_id) l
           JOIN chain.deposit_facts t ON t.id = l.transfer_id
          WHERE ${CONDITIONS[event]}
            AND ${event === "orphaned" ? LIFE_DETECTED : "t.status <> 'orphaned'"}
            AND NOT EXISTS (SELECT 1 FROM api.deposit_event_marks m
                             WHERE m.transfer_id = t.id AND m.event = $1 AND m.life = l.life)
       ) due
       ORDER BY id::bigint LIMIT $2`,
      [event, limit],
    );
    for (const f of rows) {
      if (held.aborted) return produced;
      const sent = await withTransaction(pool, async (client) => {
        if (!(await stillDue(client, f.id, f.life))) return false;
        const eventId = await emitEvent(client, common.config, {
          type: `deposit.${event}`,
          name: `deposit:${f.chain_id}:${f.block_hash}:${f.tx_hash}:${f.position}:${event}${f.life === 1 ? "" : `:${f.life}`}`,
          data: {
            deposit_id: f.id,
            ...(event === "credited" ? { credit_id: f.credit_id } : {}),
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
          `INSERT INTO api.deposit_event_marks (transfer_id, event, event_id, life)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
          [f.id, event, eventId, f.life],
        );
        return true;
      });
      if (sent) produced++;
    }
  }
  // After the facts' events: a reorg hold is told after its deposit's `deposit.orphaned`.
  if (held.aborted) return produced;
  return produced + (await produceLedgerEvents({ common, pool, limit }, held));
}
