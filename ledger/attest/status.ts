/**
 * One attestation's state, for whoever follows it from outside ledger/attest (the demo waits for
 * its attestation to be mined and confirmed): its status and the transaction that carried it.
 */
import type { Hex } from "viem";
import type { Pool, PoolClient } from "../../foundation/db.js";
import type { AttestationRecord } from "./attest.js";

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
