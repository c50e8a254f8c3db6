/**
 * Booking an operator's credit of an unattributed inflow (reconciliation's `recon credit-inflow`,
 * ledger/recon/creditInflow.ts, decides it): the transfer debit custody:deposits, credit
 * user:<owner> (kind `inflow_credit`), its row in ledger.inflow_credits (published to readers as
 * the `ledger.credited_inflows` view) and an `inflow.credited` ledger event, on the caller's
 * client so all three land in its transaction.
 */
import type { PoolClient } from "../foundation/db.js";
import type { Ledger } from "./createLedger.js";
import { TransferFailedError } from "./errors.js";
import { assetIdOf } from "./transferId.js";

export type InflowCredit = {
  /** Derived from the break (exactly once). */
  transferId: string;
  chainId: number;
  /** The deposit address (lowercase) and the asset's token. */
  address: string;
  asset: string;
  amount: bigint;
  /** The customer credited (the deposit address's owner). */
  owner: string;
  /** The final block the inflow was measured at. */
  blockNumber: string;
  runId: number;
  breakN: number;
  creditedBy: string;
  reason: string;
  memo: string;
};

export async function bookInflowCredit(
  client: PoolClient,
  ledger: Ledger,
  c: InflowCredit,
): Promise<void> {
  const assetId = assetIdOf(c.chainId, c.asset);
  const [r] = await ledger.createTransfers(
    [
      {
        id: c.transferId,
        assetId,
        debit: "custody:deposits",
        credit: `user:${c.owner}`,
        amount: c.amount,
        kind: "inflow_credit",
        memo: c.memo,
      },
    ],
    { client },
  );
  if (!r || r.status === "failed")
    throw new TransferFailedError(
      c.transferId,
      r?.status === "failed" ? r.code : "LEDGER_INVALID_TRANSFER",
    );
  await client.query(
    `INSERT INTO ledger.inflow_credits (transfer_id, chain_id, address, asset, amount, owner,
       block_number, run_id, break_n, credited_by, reason)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [
      c.transferId,
      c.chainId,
      c.address,
      c.asset,
      c.amount.toString(),
      c.owner,
      c.blockNumber,
      c.runId,
      c.breakN,
      c.creditedBy,
      c.reason,
    ],
  );
  await client.query(
    "INSERT INTO ledger.events (type, transfer_id, payload) VALUES ('inflow.credited', $1, $2)",
    [
      c.transferId,
      JSON.stringify({
        run_id: c.runId,
        break_n: c.breakN,
        chain_id: c.chainId,
        address: c.address,
        asset_id: assetId,
        amount: c.amount.toString(),
        owner: c.owner,
        block_number: c.blockNumber,
        credited_by: c.creditedBy,
        reason: c.reason,
      }),
    ],
  );
}
