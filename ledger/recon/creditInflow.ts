/**
 * The operator's action on an `unattributed_inflow` break: credit the inflow to the deposit
 * address's customer (debit custody:deposits, credit user:<id>, kind `inflow_credit`), recorded in
 * ledger.inflow_credits with who and why and a `inflow.credited` ledger event, in one transaction
 * (the booking is the ledger's: ledger/inflowCredits.ts).
 * Exactly once: the transfer id derives from the break (run id, n), a break already credited
 * answers `exists`, and a break from a run older than another credit of the same address and asset
 * is refused as stale (the next run measures again with that credit counted), as is a break of a
 * run whose block a reorg has replaced since (runs stand above the finality rule's block).
 */
import type { Common } from "../../foundation/common.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { readFinalized } from "../../indexers/finality.js";
import type { Ledger } from "../createLedger.js";
import { bookInflowCredit } from "../inflowCredits.js";
import { assetIdOf, assetTokenOf, transferId } from "../transferId.js";
import { BreakNotFoundError, InflowNotCreditableError } from "./errors.js";

export type CreditInflowResult = {
  status: "created" | "exists";
  transferId: string;
  customerId: string;
  assetId: string;
  address: string;
  amount: bigint;
};

/** `<runId>:<n>` as printed by the reports. */
export function parseBreakId(id: string): { runId: number; n: number } {
  const m = /^([0-9]{1,15}):([0-9]{1,9})$/.exec(id.trim());
  if (!m) throw new BreakNotFoundError(id);
  return { runId: Number(m[1]), n: Number(m[2]) };
}

export async function creditInflow(
  { common, pool, ledger }: { common: Common; pool: Pool; ledger: Ledger },
  args: { breakId: string; by: string; reason: string },
): Promise<CreditInflowResult> {
  const { runId, n } = parseBreakId(args.breakId);
  const by = args.by.trim();
  const reason = args.reason.trim();
  if (by === "" || reason === "")
    throw new InflowNotCreditableError(args.breakId, "--by and --reason must not be empty");
  const log = common.logger.child({ component: "recon", action: "credit-inflow" });
  const result = await withTransaction(pool, async (client) => {
    const b = await client.query<{
      type: string;
      asset_id: string;
      key: string;
      difference: bigint;
      chain_id: string;
      block_number: string;
      snapshot_at: Date | null;
      status: string;
      state: string | null;
      last_run_id: string | null;
      block_hash: string | null;
      ours: string | null;
    }>(
      `SELECT b.type, b.asset_id, b.key, b.difference, r.chain_id::text,
         r.block_number::text, r.snapshot_at, r.status, s.state, s.last_run_id::text,
         r.block_hash,
         (SELECT c.hash FROM chain.canonical_blocks c
           WHERE c.chain_id = r.chain_id AND c.number = r.block_number) AS ours
       FROM recon.breaks b JOIN recon.runs r ON r.id = b.run_id
       LEFT JOIN recon.break_states s ON s.identity = b.identity
       WHERE b.run_id = $1 AND b.n = $2`,
      [runId, n],
    );
    const row = b.rows[0];
    if (!row) throw new BreakNotFoundError(args.breakId);
    if (row.type !== "unattributed_inflow")
      throw new InflowNotCreditableError(args.breakId, `it is a ${row.type} break`);
    const chainId = Number(row.chain_id);
    const address = row.key.replace(/^inflow:/, "");
    const asset = assetTokenOf(row.asset_id);
    const amount = -row.difference;
    const id = transferId(`inflow:${chainId}:${runId}:${n}`);
    // One credit of this address and asset at a time.
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [
      `inflow:${chainId}:${address}:${asset}`,
    ]);
    const done = await client.query<{ owner: string; amount: bigint }>(
      "SELECT owner, amount FROM ledger.credited_inflows WHERE run_id = $1 AND break_n = $2",
      [runId, n],
    );
    if (done.rows[0])
      return {
        status: "exists" as const,
        transferId: id,
        customerId: done.rows[0].owner,
        assetId: row.asset_id,
        address,
        amount: done.rows[0].amount,
      };
    const later = await client.query<{ run_id: string; break_n: number }>(
      `SELECT run_id::text, break_n FROM ledger.credited_inflows
        WHERE chain_id = $1 AND address = $2 AND asset = $3 AND created_at >= $4 LIMIT 1`,
      [chainId, address, asset, row.snapshot_at ?? new Date(0)],
    );
    if (later.rows[0])
      throw new InflowNotCreditableError(
        args.breakId,
        `break ${later.rows[0].run_id}:${later.rows[0].break_n} of the same address and asset was credited after run ${runId}: reconcile again and credit what the new run reports`,
      );
    // A later run measured the address again: its report, not this one, is the evidence (the
    // inflow may since be explained by a fact credited late, or have changed).
    if (row.last_run_id !== null && (row.state === "resolved" || row.last_run_id !== String(runId)))
      throw new InflowNotCreditableError(
        args.breakId,
        row.state === "resolved"
          ? "it is resolved (a later run no longer finds it, or an operator resolved it): nothing to credit"
          : `run ${row.last_run_id} measured it again: credit what that run reports`,
      );
    // Runs stand at the confirmation rule's block, above the finality rule's: a reorg may have
    // replaced the block the inflow was measured at since (the next run measures it again). A block
    // no longer stored is one below the published final block (kept blocks are pruned there).
    const published = row.ours === null ? await readFinalized(client, Number(row.chain_id)) : null;
    const final = published !== null && published.number >= BigInt(row.block_number);
    if (row.ours === null ? !final : row.ours !== row.block_hash)
      throw new InflowNotCreditableError(
        args.breakId,
        `run ${runId} measured it at block ${row.block_number} (${row.block_hash ?? "hash not stored"}), which is no longer our chain's (${row.ours ?? "not stored"}): reconcile again and credit what the new run reports`,
      );
    if (amount <= 0n) throw new InflowNotCreditableError(args.breakId, "no inflow to credit");
    const owner = await client.query<{ owner: string }>(
      "SELECT owner FROM chain.watched_addresses WHERE chain_id = $1 AND address = $2 AND kind = 'deposit'",
      [chainId, address],
    );
    const customerId = owner.rows[0]?.owner;
    if (!customerId)
      throw new InflowNotCreditableError(args.breakId, `${address} is not a deposit address`);
    const assetId = assetIdOf(chainId, asset);
    await bookInflowCredit(client, ledger, {
      transferId: id,
      chainId,
      address,
      asset,
      amount,
      owner: customerId,
      blockNumber: row.block_number,
      runId,
      breakN: n,
      creditedBy: by,
      reason,
      memo: `unattributed inflow to ${address} (recon break ${runId}:${n}) credited by ${by}: ${reason}`,
    });
    return { status: "created" as const, transferId: id, customerId, assetId, address, amount };
  });
  log.warn({
    msg: result.status === "created" ? "unattributed inflow credited" : "inflow already credited",
    break_id: `${runId}:${n}`,
    transfer_id: result.transferId,
    customer_id: result.customerId,
    asset_id: result.assetId,
    address: result.address,
    amount: result.amount.toString(),
    by,
    reason,
  });
  return result;
}
