/**
 * One attestation's state, for whoever follows it from outside ledger/attest (the demo waits for
 * its attestation to be mined and confirmed): its status and the transaction that carried it; and
 * the attestations in flight and each chain's newest confirmed one, for the state metrics
 * (ops/stateMetrics.ts).
 */
import type { Hex } from "viem";
import type { ChainConfig } from "../../chains/index.js";
import type { Pool, PoolClient } from "../../foundation/db.js";
import type { AttestationRecord } from "./attest.js";
import type { AttestationOutcome, AttestationSender } from "./sender.js";

export type AttestationStatus = Pick<AttestationRecord, "status" | "txHash">;

/** The attestation `id`'s status and tx hash (null until sent); undefined when there is none. */
export async function attestationStatus(
  db: Pool | PoolClient,
  id: number,
): Promise<AttestationStatus | undefined> {
  const r = await db.query<{ status: AttestationStatus["status"]; tx_hash: Hex | null }>(
    "SELECT status, tx_hash FROM attest.attestations WHERE id = $1",
    [id],
  );
  const row = r.rows[0];
  return row ? { status: row.status, txHash: row.tx_hash } : undefined;
}

export type AttestationsInFlight = {
  chainId: number;
  /** The signer's status of the attestation's transaction (its request). */
  status: AttestationOutcome["status"];
  count: number;
};

/**
 * Attestations handed to the signer and not yet settled, per chain and the signer's status of
 * their transaction. While one is in flight its chain is not attested again (attest.ts `in_flight`),
 * so one stuck in receipt_unknown or needs_review stops the chain's attestation until an operator
 * works the request, as does one the signer reported failed without evidence the attestor settles
 * on (the metric custody_attestations_in_flight and the AttestationStuck alert).
 */
export async function attestationsInFlight(
  db: Pool | PoolClient,
  getTxOutcomes: AttestationSender["getTxOutcomes"],
): Promise<AttestationsInFlight[]> {
  const r = await db.query<{ request_id: string }>(
    "SELECT request_id FROM attest.attestations WHERE status = 'requested'",
  );
  if (r.rows.length === 0) return [];
  const outcomes = await getTxOutcomes(db, { requestIds: r.rows.map((x) => x.request_id) });
  const counts = new Map<string, AttestationsInFlight>();
  for (const o of outcomes) {
    const key = `${o.chainId}:${o.status}`;
    const cur = counts.get(key) ?? { chainId: o.chainId, status: o.status, count: 0 };
    cur.count++;
    counts.set(key, cur);
  }
  return [...counts.values()];
}

/**
 * Seconds since each of `chainIds`' newest attestation was confirmed on chain (Postgres' clock),
 * final or not: what dApps and customers' proofs read is at most that old. A chain with none
 * confirmed is absent. Any reason the attestor stops (a break, liabilities that differ, no final
 * run, no contract, a request stuck) only shows here, as an age that grows (AttestationOverdue).
 */
export async function newestConfirmedAttestationAges(
  db: Pool | PoolClient,
  chainIds: readonly number[],
): Promise<Map<number, number>> {
  // Asked per chain (not one GROUP BY over them all): each chain's max is then the last entry of
  // its range in attestations_confirmed_at, not an aggregate over every attestation it ever had.
  const r = await db.query<{ chain_id: string; age: number }>(
    `SELECT c.chain_id::text, EXTRACT(EPOCH FROM now() - newest.confirmed_at)::float8 AS age
       FROM unnest($1::bigint[]) AS c (chain_id)
       CROSS JOIN LATERAL (
         SELECT max(confirmed_at) AS confirmed_at
           FROM attest.attestations
          WHERE status = 'confirmed' AND chain_id = c.chain_id) AS newest
      WHERE newest.confirmed_at IS NOT NULL`,
    [chainIds],
  );
  return new Map(r.rows.map((x) => [Number(x.chain_id), x.age]));
}

/** Margin for what an attestation waits for beyond its schedule: finality, a run, mining. */
const OVERDUE_MARGIN_S = 3600;

/**
 * How long after its newest confirmed attestation a scheduled chain is overdue (undefined: not
 * scheduled). One is due every max(everyBlocks x blockTimeMs, intervalMs); on top, its run's block
 * must be final (minutes: up to ~15 on Ethereum's finalized tag), a reconciliation run must reach
 * past it and the transaction mine. Three schedules let one or two passes go by for a passing
 * reason (an RPC failure, a break cleared on the next run); the hour covers the waits above when
 * the schedule is short.
 */
export function attestationOverdueAfterSeconds(
  chain: Pick<ChainConfig, "blockTimeMs" | "attestation">,
): number | undefined {
  if (!chain.attestation) return undefined;
  const everyMs = Math.max(
    chain.attestation.everyBlocks * chain.blockTimeMs,
    chain.attestation.intervalMs,
  );
  return 3 * Math.ceil(everyMs / 1000) + OVERDUE_MARGIN_S;
}
