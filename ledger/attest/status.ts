/**
 * One attestation's state, for whoever follows it from outside ledger/attest (the demo waits for
 * its attestation to be mined and confirmed): its status and the transaction that carried it; and
 * the attestations in flight, for the state metrics (ops/stateMetrics.ts).
 */
import type { Hex } from "viem";
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
 * works the request (the metric custody_attestations_in_flight and the AttestationStuck alert).
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
