/**
 * An operator unfreezes a customer's balance of one asset (`custody-node ledger unfreeze`): who and
 * why required, audited (`ledger.account.unfrozen`) in the same transaction as the change. A frozen
 * balance takes no new debits, which also stops what is not the customer spending: a withdrawal
 * held again after a deep reorg undid its failure (alert WithdrawalFailureUndoneUnheld) and the
 * repayment of a reorg receivable. A balance that is not frozen is left as it is and nothing is
 * recorded, so a repeated command changes nothing. Freezing has no command: `Ledger.freeze`.
 */
import { appendAudit } from "../foundation/audit.js";
import type { Common } from "../foundation/common.js";
import { afterCommit, type Pool, withTransaction } from "../foundation/db.js";
import { classifyAccount } from "./chartOfAccounts.js";
import { UnfreezeInputError } from "./errors.js";
import { assetIdOf } from "./transferId.js";

export type UnfreezeArgs = {
  chainId: number;
  /** The token (zero address: the chain's native asset). */
  asset: string;
  customerId: string;
  by: string;
  reason: string;
};

export type Unfreeze = {
  status: "unfrozen" | "not_frozen";
  assetId: string;
  account: string;
};

export async function unfreezeCustomer(
  deps: { common: Common; pool: Pool },
  args: UnfreezeArgs,
): Promise<Unfreeze> {
  const customerId = args.customerId.trim();
  const by = args.by.trim();
  const reason = args.reason.trim();
  const input = (field: string, detail: string) =>
    new UnfreezeInputError(args.customerId, field, detail);
  const account = `user:${customerId}`;
  if (!classifyAccount(account)) throw input("customer", "not a customer id");
  if (by === "") throw input("by", "--by must not be empty");
  if (reason === "") throw input("reason", "--reason must not be empty");
  const assetId = assetIdOf(args.chainId, args.asset);
  const known = await deps.pool.query("SELECT 1 FROM ledger.assets WHERE id = $1", [assetId]);
  if (known.rowCount === 0) throw input("asset", `unknown asset ${assetId}`);

  return withTransaction(deps.pool, async (client) => {
    const r = await client.query<{ frozen: boolean }>(
      "SELECT frozen FROM ledger.accounts WHERE asset_id = $1 AND name = $2 FOR UPDATE",
      [assetId, account],
    );
    const row = r.rows[0];
    if (!row) throw input("customer", `no account ${account} of ${assetId}`);
    if (!row.frozen) return { status: "not_frozen" as const, assetId, account };
    await client.query(
      "UPDATE ledger.accounts SET frozen = false WHERE asset_id = $1 AND name = $2",
      [assetId, account],
    );
    const details = { asset_id: assetId, account, reason };
    await appendAudit(client, {
      actor: by,
      action: "ledger.account.unfrozen",
      entityType: "customer",
      entityId: customerId,
      details,
    });
    afterCommit(client, () =>
      deps.common.logger.warn({ msg: "account unfrozen by an operator", by, ...details }),
    );
    return { status: "unfrozen" as const, assetId, account };
  });
}
