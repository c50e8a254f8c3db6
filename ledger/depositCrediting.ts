/**
 * Deposit crediting: turns the indexer's confirmed deposit facts into ledger transfers, exactly
 * once each, and books a compensation when a credited fact is orphaned by a reorg deeper than the
 * confirmation rule. Runs from the `chain-facts` doorbell and from a periodic sweep (doorbells can
 * be lost); both are idempotent because every id derives from the fact.
 */
import type { Common } from "../ops/common.js";
import { type Pool, withTransaction } from "../ops/db.js";
import type { Ledger } from "./createLedger.js";
import type { Queryable } from "./runBatch.js";
import { assetIdOf, depositTransferName, transferId } from "./transferId.js";
import type { NewTransfer, TransferResult } from "./types.js";

/** Which facts to look at: a chain, and optionally a block range (a doorbell's). */
export type CreditScope = { chainId?: number; fromBlock?: number; toBlock?: number };

export type DepositCrediting = {
  /** Credit confirmed, uncredited deposit facts; returns how many transfers were created. */
  creditConfirmed: (options?: CreditScope & { limit?: number }) => Promise<number>;
  /** Compensate credits whose facts were orphaned; returns how many compensations were created. */
  compensateOrphaned: (options?: { chainId?: number; limit?: number }) => Promise<number>;
  /** Both, until nothing is left (or `maxRounds`). */
  sweep: (options?: CreditScope) => Promise<{ credited: number; compensated: number }>;
};

// Confirmed facts into deposit addresses with no standing credit (a credit stands until a
// compensation reverses it). FOR SHARE holds the fact's row until we commit, so the indexer cannot
// orphan it between our read and our credit: a fact orphaned before crediting is never credited.
const UNCREDITED = `
SELECT f.chain_id::int AS chain_id, f.block_hash, f.block_number::text, f.tx_hash, f.position, f.asset,
  f.amount::text, ca.owner,
  (SELECT count(*) FROM ledger.transfers t
    WHERE t.chain_id = f.chain_id AND t.tx_hash = f.tx_hash AND t.position = f.position AND t.kind = 'deposit')::int AS credits
FROM chain.transfers f
JOIN chain.custody_addresses ca ON ca.chain_id = f.chain_id AND ca.address = f.to_address AND ca.kind = 'deposit'
WHERE f.status = 'confirmed' AND f.kind IN ('native', 'erc20', 'internal') AND f.amount > 0
  AND ($1::bigint IS NULL OR f.chain_id = $1)
  AND ($3::bigint IS NULL OR f.block_number >= $3) AND ($4::bigint IS NULL OR f.block_number <= $4)
  AND NOT EXISTS (
    SELECT 1 FROM ledger.transfers t
    WHERE t.chain_id = f.chain_id AND t.tx_hash = f.tx_hash AND t.position = f.position AND t.kind = 'deposit'
      AND NOT EXISTS (SELECT 1 FROM ledger.transfers r WHERE r.reverses_id = t.id))
ORDER BY f.chain_id, f.block_number, f.tx_index, f.id
LIMIT $2
FOR SHARE OF f`;

// Standing credits whose chain reference has an orphaned fact and no confirmed one left. Driven
// from orphaned facts, which are few.
const ORPHANED_CREDITS = `
SELECT DISTINCT ON (t.id) t.id::text AS credit_id, t.asset_id, t.amount::text, t.chain_id::int AS chain_id,
  t.tx_hash, t.position, o.block_hash, o.block_number::text, o.orphaned_after_confirmation
FROM chain.transfers o
JOIN ledger.transfers t ON t.chain_id = o.chain_id AND t.tx_hash = o.tx_hash AND t.position = o.position AND t.kind = 'deposit'
WHERE o.status = 'orphaned' AND ($1::bigint IS NULL OR o.chain_id = $1)
  AND NOT EXISTS (SELECT 1 FROM chain.transfers c
    WHERE c.chain_id = t.chain_id AND c.tx_hash = t.tx_hash AND c.position = t.position AND c.status = 'confirmed')
  AND NOT EXISTS (SELECT 1 FROM ledger.transfers r WHERE r.reverses_id = t.id)
ORDER BY t.id, o.block_number DESC
LIMIT $2`;

const INSERT_EVENTS = `
INSERT INTO ledger.events (type, transfer_id, payload)
SELECT $1, * FROM unnest($2::uuid[], $3::jsonb[])`;

type FactRow = {
  chain_id: number;
  block_hash: string;
  block_number: string;
  tx_hash: string;
  position: string;
  asset: string;
  amount: string;
  owner: string;
  credits: number;
};

type OrphanRow = {
  credit_id: string;
  asset_id: string;
  amount: string;
  chain_id: number;
  tx_hash: string;
  position: string;
  block_hash: string;
  block_number: string;
  orphaned_after_confirmation: boolean;
};

async function insertEvents(
  client: Queryable,
  type: string,
  events: { transferId: string; payload: Record<string, unknown> }[],
) {
  if (events.length === 0) return;
  await client.query(INSERT_EVENTS, [
    type,
    events.map((e) => e.transferId),
    events.map((e) => JSON.stringify(e.payload)),
  ]);
}

export function createDepositCrediting({
  common,
  pool,
  ledger,
}: {
  common: Common;
  pool: Pool;
  ledger: Ledger;
}): DepositCrediting {
  const log = common.logger.child({ component: "deposit-crediting" });

  async function creditConfirmed({
    chainId,
    fromBlock,
    toBlock,
    limit = 500,
  }: CreditScope & { limit?: number } = {}) {
    return withTransaction(pool, async (client) => {
      const facts = await client.query<FactRow>(UNCREDITED, [
        chainId ?? null,
        limit,
        fromBlock ?? null,
        toBlock ?? null,
      ]);
      if (facts.rows.length === 0) return 0;
      const transfers: NewTransfer[] = facts.rows.map((f) => ({
        id: transferId(depositTransferName(f.chain_id, f.tx_hash, f.position, f.credits)),
        assetId: assetIdOf(f.chain_id, f.asset),
        debit: "custody:deposits",
        credit: `user:${f.owner}`,
        amount: BigInt(f.amount),
        kind: "deposit",
        chainRef: { chainId: f.chain_id, txHash: f.tx_hash.toLowerCase(), position: f.position },
      }));
      const results = await ledger.createTransfers(transfers, { client });
      const events: { transferId: string; payload: Record<string, unknown> }[] = [];
      results.forEach((r: TransferResult, i) => {
        const f = facts.rows[i] as FactRow;
        const t = transfers[i] as NewTransfer;
        const payload = {
          chain_id: f.chain_id,
          tx_hash: f.tx_hash,
          position: f.position,
          block_hash: f.block_hash,
          block_number: f.block_number,
          asset_id: t.assetId,
          amount: f.amount,
          owner: f.owner,
        };
        if (r.status === "created") events.push({ transferId: r.id, payload });
        else if (r.status === "failed")
          // Not retried here: the fact stays uncredited and visible to the next sweep and to
          // reconciliation (missing credit), with the reason in the log.
          log.error({ msg: "deposit credit refused", code: r.code, detail: r.detail, ...payload });
      });
      await insertEvents(client, "deposit.credited", events);
      for (const e of events)
        log.info({ msg: "deposit credited", transfer_id: e.transferId, ...e.payload });
      return events.length;
    });
  }

  async function compensateOrphaned({
    chainId,
    limit = 500,
  }: {
    chainId?: number;
    limit?: number;
  } = {}) {
    return withTransaction(pool, async (client) => {
      const orphans = await client.query<OrphanRow>(ORPHANED_CREDITS, [chainId ?? null, limit]);
      if (orphans.rows.length === 0) return 0;
      // The user keeps the credit (it may already be spent); custody:deposits is corrected to what
      // the chain holds and suspense carries the shortfall until someone resolves it.
      const transfers: NewTransfer[] = orphans.rows.map((o) => ({
        id: transferId(`compensation:${o.credit_id}`),
        assetId: o.asset_id,
        debit: "suspense",
        credit: "custody:deposits",
        amount: BigInt(o.amount),
        kind: "compensation",
        reverses: o.credit_id,
        chainRef: { chainId: o.chain_id, txHash: o.tx_hash, position: o.position },
        memo: "deposit orphaned after crediting",
      }));
      const results = await ledger.createTransfers(transfers, { client });
      const events: { transferId: string; payload: Record<string, unknown> }[] = [];
      results.forEach((r, i) => {
        const o = orphans.rows[i] as OrphanRow;
        const payload = {
          credit_id: o.credit_id,
          chain_id: o.chain_id,
          tx_hash: o.tx_hash,
          position: o.position,
          block_hash: o.block_hash,
          block_number: o.block_number,
          asset_id: o.asset_id,
          amount: o.amount,
          orphaned_after_confirmation: o.orphaned_after_confirmation,
        };
        if (r.status === "created") events.push({ transferId: r.id, payload });
        else if (r.status === "failed")
          log.error({ msg: "deposit compensation refused", code: r.code, ...payload });
      });
      await insertEvents(client, "deposit.compensated", events);
      for (const e of events)
        log.error({
          msg: "credited deposit orphaned: compensation booked to suspense",
          transfer_id: e.transferId,
          ...e.payload,
        });
      return events.length;
    });
  }

  return {
    creditConfirmed,
    compensateOrphaned,
    async sweep(range: CreditScope = {}) {
      const scope = range.chainId === undefined ? {} : { chainId: range.chainId };
      const credit: CreditScope = { ...range };
      let credited = 0;
      let compensated = 0;
      // Compensate first: a fact re-confirmed in another block is then credited again in this pass.
      for (let n = await compensateOrphaned(scope); n > 0; n = await compensateOrphaned(scope))
        compensated += n;
      for (let n = await creditConfirmed(credit); n > 0; n = await creditConfirmed(credit))
        credited += n;
      return { credited, compensated };
    },
  };
}
