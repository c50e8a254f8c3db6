/**
 * Deposits as the API lists them: each chain fact into a customer's deposit address with its
 * status, `credited` once the ledger booked its deposit credit, and the reorg holds pending.
 *
 * The list joins the indexer's deposit facts and their owners (the view the indexer publishes,
 * chain.deposit_facts) with the ledger's credits in one statement, here rather than as an indexer
 * call plus a ledger call: the status filter and the page depend on the credit (`credited`, and
 * `seen`/`confirmed` mean "not credited"), so a page filtered in TS would come back short or need
 * more round trips. The ledger already reads the indexer's facts to credit them
 * (depositCrediting.ts), which is the allowed direction; the indexer never reads ledger tables.
 */
import type pg from "pg";

type Queryable = Pick<pg.ClientBase, "query">;

/**
 * A deposit fact joined with its owner, as the deposits routes and deposit events read it. The
 * amount is NUMERIC and arrives as a bigint (foundation/db.ts' PG_TYPES): JSON writers convert it
 * (formatAmount / toString). Ids and block numbers are int8, which pg gives as strings: read as text.
 */
export type DepositFactRow = {
  id: string;
  owner: string;
  chain_id: string;
  asset: string;
  to_address: string;
  from_address: string;
  amount: bigint;
  tx_hash: string;
  position: string;
  block_number: string;
  block_hash: string;
};

/**
 * Where the ledger's credit of a deposit stands (the credit of this fact, else the latest credit of
 * the same deposit: identity, recipient, asset, amount):
 *   none      never credited (not yet, or orphaned before its confirmations)
 *   credited  the credit stands (on an orphaned fact: until the reorg hold is placed)
 *   held      a reorg took the fact out: hold pending, the deposit may still come back (a copy
 *             mined again and still short of its confirmations shows its deposit held too)
 *   reversed  its height became final without it: hold posted (or compensated before holds), gone
 *   restored  this fact is orphaned, but the deposit confirmed again in another block, whose fact
 *             carries the credit (hold voided), or came back as another fact of the transaction
 *             (another position, or after its hold was posted), whose own credit carries it
 */
export type DepositCreditState = "none" | "credited" | "held" | "reversed" | "restored";

/** A deposit fact with its status and whether the ledger credited it (the deposits routes). */
export type DepositRow = DepositFactRow & {
  status: string;
  credited: boolean;
  credit_state: DepositCreditState;
  created_at: Date;
  confirmed_at: Date | null;
};

export type DepositFilter = {
  id?: string;
  customerId?: string;
  /** seen | confirmed | orphaned | credited */
  status?: string;
  /** Only deposits whose credit stands so (`credit_state`). */
  creditState?: DepositCreditState;
  chainId?: number;
  /** The last id of the previous page, in the list's order. */
  afterId?: string;
  /** Newest first (`afterId` going back); default oldest first. */
  newestFirst?: boolean;
  limit: number;
};

/** Deposit facts by fact id (the cursor), oldest (or newest) first, `limit` at most. */
export async function listDeposits(
  client: Queryable,
  filter: DepositFilter,
): Promise<DepositRow[]> {
  // Credited: the ledger's credit of this deposit stands (not held or taken back by a reorg hold;
  // the same recipient, asset and amount, as crediting matches it) and this fact is the confirmed
  // one. An orphaned one still shows orphaned, and the status filter `orphaned` lists it.
  const credited = `(t.status = 'confirmed' AND EXISTS (SELECT 1 FROM ledger.transfers lt
                JOIN ledger.deposit_credits d ON d.credit_id = lt.id
                WHERE lt.kind = 'deposit' AND lt.chain_id = t.chain_id
                  AND lt.tx_hash = t.tx_hash AND lt.position = t.position AND d.state = 'credited'
                  AND d.to_address = t.to_address AND d.asset = t.asset AND d.amount = t.amount))`;
  // Through the ledger's index of chain references, as crediting reads a fact's credits (0008).
  const creditState = `coalesce((SELECT CASE
                  WHEN d.state = 'credited' AND t.status = 'orphaned' AND d.block_hash <> t.block_hash
                    THEN 'restored'
                  WHEN d.returned_credit_id IS NOT NULL AND t.status = 'orphaned' THEN 'restored'
                  WHEN d.state IN ('credited', 'held') THEN d.state
                  ELSE 'reversed' END
                FROM ledger.transfers lt JOIN ledger.deposit_credits d ON d.credit_id = lt.id
                WHERE lt.kind = 'deposit' AND lt.chain_id = t.chain_id
                  AND lt.tx_hash = t.tx_hash AND lt.position = t.position
                  AND d.to_address = t.to_address AND d.asset = t.asset AND d.amount = t.amount
                ORDER BY d.block_hash = t.block_hash DESC, d.created_at DESC, d.credit_id DESC
                LIMIT 1), 'none')`;
  const { rows } = await client.query<DepositRow>(
    `SELECT * FROM (
       SELECT t.id::text, t.owner, t.chain_id::text, t.asset, t.to_address, t.from_address,
              t.amount, t.tx_hash, t.position, t.block_number::text, t.block_hash, t.status,
              ${credited} AS credited, ${creditState} AS credit_state, t.created_at, t.confirmed_at
         FROM chain.deposit_facts t
        WHERE ($1::bigint IS NULL OR t.id = $1)
          AND ($2::text IS NULL OR t.owner = $2)
          AND ($4::bigint IS NULL OR t.chain_id = $4)
          AND ($5::bigint IS NULL OR ${filter.newestFirst ? "t.id < $5" : "t.id > $5"})
     ) d
     WHERE ($3::text IS NULL
        OR ($3 = 'credited' AND d.credited)
        OR ($3 <> 'credited' AND d.status = $3 AND (NOT d.credited OR d.status = 'orphaned')))
       AND ($7::text IS NULL OR d.credit_state = $7)
     ORDER BY d.id::bigint${filter.newestFirst ? " DESC" : ""} LIMIT $6`,
    [
      filter.id ?? null,
      filter.customerId ?? null,
      filter.status ?? null,
      filter.chainId ?? null,
      filter.afterId ?? null,
      filter.limit,
      filter.creditState ?? null,
    ],
  );
  return rows;
}

export type ReorgHoldRow = {
  credit_id: string;
  owner: string;
  chain_id: string;
  asset: string;
  to_address: string;
  amount: bigint;
  tx_hash: string;
  position: string;
  block_number: string;
  orphaned_block: string | null;
  hold_amount: bigint | null;
  shortfall_amount: bigint | null;
  holds_placed: number;
  updated_at: Date;
};

/** Credited deposits whose fact a reorg orphaned: their hold (and shortfall) pending (state held). */
export async function listReorgHolds(
  client: Queryable,
  filter: { chainId?: number; afterId?: string; limit: number },
): Promise<ReorgHoldRow[]> {
  const { rows } = await client.query<ReorgHoldRow>(
    `SELECT credit_id::text, owner, chain_id::text, asset, to_address, amount, tx_hash, position,
            block_number::text, orphaned_block::text, hold_amount, shortfall_amount,
            holds_placed, updated_at
       FROM ledger.deposit_credits
      WHERE state = 'held'
        AND ($1::bigint IS NULL OR chain_id = $1)
        AND ($2::uuid IS NULL OR credit_id > $2)
      ORDER BY credit_id LIMIT $3`,
    [filter.chainId ?? null, filter.afterId ?? null, filter.limit],
  );
  return rows;
}

/** Whether a deposit credit with this id exists, in any state (the holds list's cursor names one). */
export async function depositCreditExists(client: Queryable, creditId: string): Promise<boolean> {
  const { rows } = await client.query("SELECT 1 FROM ledger.deposit_credits WHERE credit_id = $1", [
    creditId,
  ]);
  return rows.length > 0;
}
