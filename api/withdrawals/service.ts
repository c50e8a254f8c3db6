/**
 * Withdrawals: create (validate, policy, hold, hand to the signer or wait for approvals), approve /
 * reject (M-of-N distinct approvers, never the requester), cancel, and following the signer's
 * outcome (`getTxOutcomes`, never receipts or the custody tables) to finality: confirmed posts the
 * hold and books the gas; a reorg reverts the posting to a hold; finalized is terminal;
 * receipt_unknown and needs_review keep the hold; failed (before broadcast, reverted in a final
 * block, or by an operator) voids it. Every change is one Postgres transaction holding the
 * withdrawal row lock, with its audit entry, ledger transfers, signer request and webhook event, so
 * a crash leaves either all of it or none.
 */
import { randomUUID } from "node:crypto";
import { encodeFunctionData, erc20Abi, zeroAddress } from "viem";
import type { Common } from "../../foundation/common.js";
import { type Pool, type PoolClient, withTransaction } from "../../foundation/db.js";
import { BaseError } from "../../foundation/errors.js";
import { isWithdrawalBlocked, type Ledger, TransferFailedError } from "../../ledger/index.js";
import {
  FORWARDER_FACTORY,
  findDepositAddress,
  getContract,
} from "../../signer/deposit-addresses/index.js";
import {
  failTxRequestByOperator,
  getTxOutcomes,
  requestTransaction,
  type TxOutcome,
  TxRequestNotReviewableError,
} from "../../signer/index.js";
import type { ApiKey } from "../apiKeys.js";
import { appendAudit } from "../audit.js";
import { resolveAsset, resolveChain } from "../chainStatus.js";
import {
  ApprovalError,
  IdempotencyConflictError,
  NotFoundError,
  PolicyViolationError,
  WithdrawalStateError,
} from "../errors.js";
import { apiMetrics } from "../metrics.js";
import { type EventType, emitRepeatableEvent } from "../webhooks/events.js";
import { createWithdrawalHolds, withdrawalTransferIds } from "./holds.js";
import { type Move, planOutcome } from "./outcome.js";
import { evaluateWithdrawalPolicy } from "./policy.js";
import {
  canMove,
  FOLLOWED_STATUSES,
  findByIdempotencyKey,
  fromRow,
  getWithdrawal,
  WITHDRAWAL_COLUMNS,
  type Withdrawal,
  type WithdrawalRow,
  type WithdrawalStatus,
} from "./store.js";
import { checkedAmount, checkedDestination } from "./validate.js";

export type CreateWithdrawalInput = {
  customerId: string;
  chain: string;
  asset: string;
  to: string;
  amount: string;
};

export type Withdrawals = {
  create: (
    caller: ApiKey,
    input: CreateWithdrawalInput,
    idempotencyKey: string,
  ) => Promise<Withdrawal>;
  approve: (caller: ApiKey, id: string, reason?: string) => Promise<Withdrawal>;
  reject: (caller: ApiKey, id: string, reason?: string) => Promise<Withdrawal>;
  cancel: (caller: ApiKey, id: string, reason?: string) => Promise<Withdrawal>;
  /** Apply the signer's progress to withdrawals in flight; returns how many changed. */
  syncOutcomes: () => Promise<number>;
  /**
   * An operator fails a withdrawal in `needs_review` and releases its hold (audited, with a
   * reason): the signer's request is failed first (its own audited record, refused if the chain
   * moved it meanwhile), then the withdrawal. Repeating it after a crash finishes the job.
   */
  failByOperator: (id: string, decision: { by: string; reason: string }) => Promise<Withdrawal>;
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The signer request id of a withdrawal (docs/contracts.md). */
export const signerRequestId = (withdrawalId: string) => `withdrawal:${withdrawalId}`;
/** The hold placed at intake (epoch 0; a reorg places the next epoch's: see holds.ts). */
export const holdId = (withdrawalId: string) => withdrawalTransferIds(withdrawalId, 0).hold;

const EVENT_OF: Partial<Record<WithdrawalStatus, EventType>> = {
  approved: "withdrawal.approved",
  broadcast: "withdrawal.broadcast",
  confirmed: "withdrawal.confirmed",
  finalized: "withdrawal.finalized",
  receipt_unknown: "withdrawal.receipt_unknown",
  needs_review: "withdrawal.needs_review",
  failed: "withdrawal.failed",
  rejected: "withdrawal.rejected",
  cancelled: "withdrawal.cancelled",
};

export function createWithdrawals({
  common,
  pool,
  ledger,
  ringWebhooks = async () => {},
}: {
  common: Common;
  pool: Pool;
  ledger: Ledger;
  ringWebhooks?: () => Promise<unknown>;
}): Withdrawals {
  const log = common.logger.child({ component: "withdrawals" });
  const config = common.config;
  const metrics = apiMetrics(common.metrics.registry);
  const holds = createWithdrawalHolds(ledger);

  async function move(
    client: PoolClient,
    w: Withdrawal,
    to: WithdrawalStatus,
    actor: string,
    details: Record<string, unknown> = {},
    fields: { txHash?: string; fee?: bigint; failureReason?: string; reorged?: boolean } = {},
  ): Promise<Withdrawal> {
    if (!canMove(w.status, to)) throw new WithdrawalStateError(w.id, w.status, `move to ${to}`);
    // A reorg starts the next hold epoch; the gas booked with the reverted posting is reversed too.
    const { rows } = await client.query<WithdrawalRow>(
      `UPDATE api.withdrawals
          SET status = $2, updated_at = now(),
              tx_hash = COALESCE($3, tx_hash),
              fee = CASE WHEN $6 THEN NULL ELSE COALESCE($4, fee) END,
              failure_reason = COALESCE($5, failure_reason),
              reorg_count = reorg_count + CASE WHEN $6 THEN 1 ELSE 0 END
        WHERE id = $1
        RETURNING ${WITHDRAWAL_COLUMNS}`,
      [
        w.id,
        to,
        fields.txHash ?? null,
        fields.fee?.toString() ?? null,
        fields.failureReason ?? null,
        fields.reorged ?? false,
      ],
    );
    const next = fromRow(rows[0]!);
    const action = fields.reorged ? "withdrawal.reorged" : `withdrawal.${to}`;
    await appendAudit(client, {
      actor,
      action,
      entityType: "withdrawal",
      entityId: w.id,
      details: { from_status: w.status, to_status: to, ...details },
    });
    const type: EventType | undefined = fields.reorged ? "withdrawal.reorged" : EVENT_OF[to];
    if (type)
      await emitRepeatableEvent(client, config, {
        type,
        name: `withdrawal:${w.id}:${fields.reorged ? "reorged" : to}`,
        data: {
          withdrawal_id: w.id,
          customer_id: w.customerId,
          chain_id: w.chainId,
          asset: w.asset,
          to: w.to,
          amount: w.amount.toString(),
          status: to,
          tx_hash: next.txHash,
          ...(next.failureReason ? { failure_reason: next.failureReason } : {}),
          ...(fields.reorged ? { reorgs: next.reorgCount } : {}),
          ...(typeof details.review_reason === "string"
            ? { review_reason: details.review_reason }
            : {}),
        },
      });
    log.info({ msg: "withdrawal status", withdrawal_id: w.id, from: w.status, to, actor });
    metrics.withdrawals.inc({ status: to });
    return next;
  }

  /** approved → signing: one signer request, inserted in this transaction. */
  async function handToSigner(client: PoolClient, w: Withdrawal): Promise<Withdrawal> {
    const native = w.asset === zeroAddress;
    await requestTransaction(client, {
      id: signerRequestId(w.id),
      chainId: w.chainId,
      from: w.fromAddress!,
      to: native ? w.to : w.asset,
      value: native ? w.amount : 0n,
      data: native
        ? "0x"
        : encodeFunctionData({
            abi: erc20Abi,
            functionName: "transfer",
            args: [w.to as `0x${string}`, w.amount],
          }),
      kind: "withdrawal",
      refId: w.id,
    });
    return move(client, w, "signing", "system", { signer_request: signerRequestId(w.id) });
  }

  async function voidHold(client: PoolClient, w: Withdrawal): Promise<void> {
    await holds.release(client, w);
  }

  async function hotWalletFor(client: PoolClient, chainId: number): Promise<string | undefined> {
    // A hot wallet is registered in the watched set (kind hot); the factory's deployer is one too.
    const { rows } = await client.query<{ address: string }>(
      `SELECT address FROM chain.custody_addresses WHERE chain_id = $1 AND kind = 'hot'
        ORDER BY created_at LIMIT 1`,
      [chainId],
    );
    if (rows[0]) return rows[0].address;
    const factory = await getContract(client, chainId, FORWARDER_FACTORY);
    return factory?.hotWallet.toLowerCase();
  }

  async function isCustodyAddress(client: PoolClient, chainId: number, address: string) {
    const cold = config.chains.find((c) => c.chainId === chainId)?.coldAddress;
    if (cold && cold.toLowerCase() === address) return true;
    const { rows } = await client.query(
      "SELECT 1 FROM chain.custody_addresses WHERE chain_id = $1 AND address = $2",
      [chainId, address],
    );
    if (rows.length > 0) return true;
    const factory = await getContract(client, chainId, FORWARDER_FACTORY);
    if (
      factory &&
      (factory.address.toLowerCase() === address || factory.hotWallet.toLowerCase() === address)
    )
      return true;
    return (await findDepositAddress(client, chainId, address)) !== undefined;
  }

  async function create(caller: ApiKey, input: CreateWithdrawalInput, idempotencyKey: string) {
    // Edge validation first: nothing is read or written for a bad request.
    const chain = resolveChain(config, input.chain, "body.chain");
    const asset = resolveAsset(config, chain, input.asset, "body.asset");
    const to = checkedDestination(input.to);
    const amount = checkedAmount(input.amount);
    const assetId = `${chain.chainId}:${asset.address.toLowerCase()}`;

    const result = await withTransaction(pool, async (client) => {
      const existing = await findByIdempotencyKey(client, caller.id, idempotencyKey);
      if (existing) {
        // Reached only if the stored HTTP answer was lost (a 5xx after commit): the same key must
        // still mean the same request.
        const same =
          existing.customerId === input.customerId &&
          existing.chainId === chain.chainId &&
          existing.asset === asset.address.toLowerCase() &&
          existing.to === to &&
          existing.amount === amount;
        if (!same) throw new IdempotencyConflictError(idempotencyKey, "POST /v1/withdrawals");
        return existing;
      }
      // A reorg removed a deposit this customer had already spent (ledger reorg hold shortfall).
      if (await isWithdrawalBlocked(client, input.customerId))
        throw new PolicyViolationError(
          "CUSTOMER_WITHDRAWALS_BLOCKED",
          "body.customerId",
          "withdrawals of this customer are blocked until an operator clears it (a reorg removed a deposit they had already spent)",
        );
      if (await isCustodyAddress(client, chain.chainId, to))
        throw new PolicyViolationError(
          "DESTINATION_IS_CUSTODY",
          "body.to",
          "destination is one of the custody's own addresses",
        );
      // Serialise withdrawals per customer and asset, so two concurrent requests cannot both pass
      // the rolling limit.
      await client.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [
        `withdrawal:${input.customerId}:${assetId}`,
      ]);
      const { rows: sums } = await client.query<{ total: string }>(
        `SELECT COALESCE(sum(amount), 0)::text AS total FROM api.withdrawals
          WHERE customer_id = $1 AND chain_id = $2 AND asset = $3
            AND created_at > now() - interval '24 hours'
            AND status NOT IN ('rejected', 'cancelled', 'failed')`,
        [input.customerId, chain.chainId, asset.address.toLowerCase()],
      );
      const decision = evaluateWithdrawalPolicy(config.policies, {
        customerId: input.customerId,
        assetId,
        to,
        amount,
        rolling24h: BigInt(sums[0]!.total),
      });
      const hot = await hotWalletFor(client, chain.chainId);
      if (!hot)
        throw new BaseError(`No hot wallet is registered on ${chain.key}`, {
          code: "NO_HOT_WALLET",
          meta: { chain_id: chain.chainId },
        });
      const id = randomUUID();
      const { rows } = await client.query<WithdrawalRow>(
        `INSERT INTO api.withdrawals (id, customer_id, chain_id, asset, to_address, amount, status,
           required_approvals, requested_by, api_key_id, idempotency_key, from_address)
         VALUES ($1, $2, $3, $4, $5, $6, 'requested', $7, $8, $9, $10, $11)
         RETURNING ${WITHDRAWAL_COLUMNS}`,
        [
          id,
          input.customerId,
          chain.chainId,
          asset.address.toLowerCase(),
          to,
          amount.toString(),
          decision.requiredApprovals,
          caller.owner,
          caller.id,
          idempotencyKey,
          hot,
        ],
      );
      let w = fromRow(rows[0]!);
      await appendAudit(client, {
        actor: caller.owner,
        action: "withdrawal.requested",
        entityType: "withdrawal",
        entityId: id,
        details: {
          api_key_id: caller.id,
          customer_id: input.customerId,
          asset_id: assetId,
          to,
          amount: amount.toString(),
          required_approvals: decision.requiredApprovals,
        },
      });
      try {
        await ledger.hold(
          {
            id: holdId(id),
            assetId,
            debit: `user:${input.customerId}`,
            credit: `custody:hot:${hot}`,
            amount,
            kind: "withdrawal",
            memo: `withdrawal ${id}`,
          },
          { client },
        );
      } catch (error) {
        if (error instanceof TransferFailedError && error.code === "LEDGER_INSUFFICIENT_BALANCE") {
          const balance = await ledger.balance(
            { assetId, name: `user:${input.customerId}` },
            { client },
          );
          throw new PolicyViolationError(
            "INSUFFICIENT_AVAILABLE_BALANCE",
            "body.amount",
            `available balance ${balance.available} is below the amount`,
            { available: balance.available.toString() },
          );
        }
        throw error;
      }
      if (decision.requiredApprovals > 0) {
        w = await move(client, w, "pending_approval", "policy", {
          required_approvals: decision.requiredApprovals,
        });
      } else {
        w = await move(client, w, "approved", "policy", { reason: "below approval threshold" });
        w = await handToSigner(client, w);
      }
      return w;
    });
    await ringWebhooks().catch(() => {});
    return result;
  }

  /** Loads and locks the withdrawal, checks the decider may decide, records the decision. */
  async function decide(
    client: PoolClient,
    caller: ApiKey,
    id: string,
    decision: "approve" | "reject",
    reason: string | undefined,
  ): Promise<Withdrawal> {
    const w = await getWithdrawal(client, id, { forUpdate: true });
    if (!w) throw new NotFoundError("withdrawal", id);
    if (w.status !== "pending_approval") throw new WithdrawalStateError(id, w.status, decision);
    if (caller.owner === w.requestedBy)
      throw new ApprovalError(
        "APPROVER_IS_REQUESTER",
        "the requester of a withdrawal cannot approve or reject it",
        { withdrawal_id: id, approver: caller.owner },
      );
    const inserted = await client.query(
      `INSERT INTO api.withdrawal_approvals (withdrawal_id, approver, api_key_id, decision, reason)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
      [id, caller.owner, caller.id, decision, reason ?? null],
    );
    if (inserted.rowCount !== 1)
      throw new ApprovalError(
        "ALREADY_DECIDED",
        `${caller.owner} already decided on this withdrawal`,
        {
          withdrawal_id: id,
          approver: caller.owner,
        },
      );
    await appendAudit(client, {
      actor: caller.owner,
      action: decision === "approve" ? "withdrawal.approved_by" : "withdrawal.rejected_by",
      entityType: "withdrawal",
      entityId: id,
      details: { api_key_id: caller.id, ...(reason ? { reason } : {}) },
    });
    return w;
  }

  async function approve(caller: ApiKey, id: string, reason?: string) {
    const result = await withTransaction(pool, async (client) => {
      let w = await decide(client, caller, id, "approve", reason);
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(DISTINCT approver)::int AS n FROM api.withdrawal_approvals
          WHERE withdrawal_id = $1 AND decision = 'approve'`,
        [id],
      );
      const approvals = rows[0]!.n;
      if (approvals >= w.requiredApprovals) {
        w = await move(client, w, "approved", caller.owner, { approvals });
        w = await handToSigner(client, w);
      }
      return w;
    });
    await ringWebhooks().catch(() => {});
    return result;
  }

  async function reject(caller: ApiKey, id: string, reason?: string) {
    const result = await withTransaction(pool, async (client) => {
      const w = await decide(client, caller, id, "reject", reason);
      await voidHold(client, w);
      return move(client, w, "rejected", caller.owner, reason ? { reason } : {}, {
        failureReason: reason ?? "rejected",
      });
    });
    await ringWebhooks().catch(() => {});
    return result;
  }

  async function cancel(caller: ApiKey, id: string, reason?: string) {
    const result = await withTransaction(pool, async (client) => {
      const w = await getWithdrawal(client, id, { forUpdate: true });
      if (!w) throw new NotFoundError("withdrawal", id);
      if (w.requestedBy !== caller.owner && !caller.scopes.includes("admin"))
        throw new ApprovalError(
          "NOT_REQUESTER",
          "only the requester (or an admin) can cancel a withdrawal",
          { withdrawal_id: id },
        );
      if (!canMove(w.status, "cancelled")) throw new WithdrawalStateError(id, w.status, "cancel");
      await voidHold(client, w);
      return move(client, w, "cancelled", caller.owner, reason ? { reason } : {}, {
        failureReason: reason ?? "cancelled",
      });
    });
    await ringWebhooks().catch(() => {});
    return result;
  }

  /** One planned move: its ledger step, then the status change (same transaction). */
  async function step(client: PoolClient, w: Withdrawal, m: Move, o: TxOutcome) {
    const txHash = o.txHash ?? undefined;
    switch (m.ledger) {
      case "post": {
        const position = o.transferPosition ?? (w.asset === zeroAddress ? "tx" : null);
        // Without the fact's reference reconciliation could not pair the post: retry next pass.
        if (!o.txHash || !position)
          throw new Error(`signer outcome of withdrawal ${w.id} has no tx or transfer position`);
        const fee = o.fee ?? 0n;
        await holds.post(client, w, { chainId: w.chainId, txHash: o.txHash, position }, fee);
        return move(
          client,
          w,
          m.to,
          "signer",
          { tx_hash: o.txHash, block: o.blockNumber?.toString() },
          {
            txHash: o.txHash,
            fee,
          },
        );
      }
      case "revert": {
        const epoch = await holds.revert(client, w, w.fee);
        return move(
          client,
          w,
          m.to,
          "signer",
          { tx_hash: w.txHash, reorgs: o.reorgs, hold_epoch: epoch },
          { reorged: true },
        );
      }
      case "void": {
        // Released only on evidence: refused before a nonce was taken, decided by a final block,
        // or failed by an operator. A `failed` without any of these is a signer bug: keep the hold.
        if (o.nonce !== null && o.finalizedAt === null && o.errorCode !== "OPERATOR_FAILED")
          throw new BaseError(
            `Signer reported withdrawal ${w.id} failed without a final block or an operator; the hold is kept`,
            {
              code: "WITHDRAWAL_RELEASE_REFUSED",
              meta: { withdrawal_id: w.id, error_code: o.errorCode, nonce: o.nonce.toString() },
            },
          );
        const fee = o.fee ?? 0n;
        await holds.bookFee(client, w, fee, o.txHash);
        await holds.release(client, w);
        return move(
          client,
          w,
          m.to,
          "signer",
          { error_code: o.errorCode, error: o.errorMessage },
          {
            ...(txHash ? { txHash } : {}),
            fee,
            failureReason: o.errorCode ?? "failed",
          },
        );
      }
      case "none":
        return move(
          client,
          w,
          m.to,
          "signer",
          {
            ...(txHash ? { tx_hash: txHash } : {}),
            ...(o.reviewReason ? { review_reason: o.reviewReason } : {}),
          },
          txHash ? { txHash } : {},
        );
    }
  }

  /** Applies one outcome if the withdrawal is still where the pass saw it. */
  async function applyOutcome(id: string, seen: WithdrawalStatus, o: TxOutcome): Promise<boolean> {
    return withTransaction(pool, async (client) => {
      let w = await getWithdrawal(client, id, { forUpdate: true });
      if (!w || w.status !== seen) return false;
      const moves = planOutcome(w.status, o.status, o.txHash !== null);
      for (const m of moves) w = await step(client, w, m, o);
      return moves.length > 0;
    });
  }

  /** Applies each outcome that moves its withdrawal; returns how many moved. */
  async function applyOutcomes(
    rows: readonly { id: string; status: WithdrawalStatus }[],
    outcomes: ReadonlyMap<string, TxOutcome>,
  ): Promise<number> {
    let changed = 0;
    for (const { id, status } of rows) {
      const o = outcomes.get(signerRequestId(id));
      if (!o || planOutcome(status, o.status, o.txHash !== null).length === 0) continue;
      try {
        if (await applyOutcome(id, status, o)) changed++;
      } catch (err) {
        log.error({ msg: "applying signer outcome failed", withdrawal_id: id, err });
      }
    }
    return changed;
  }

  const byRequest = (list: TxOutcome[]) => new Map(list.map((o) => [o.requestId, o]));

  /** Every followed withdrawal, a page at a time (keyset on id; partial index withdrawals_followed). */
  async function fullScan(): Promise<number> {
    let changed = 0;
    let after = "00000000-0000-0000-0000-000000000000";
    for (;;) {
      const { rows } = await pool.query<{ id: string; status: WithdrawalStatus }>(
        `SELECT id::text, status FROM api.withdrawals
          WHERE status = ANY($1::text[]) AND id > $2::uuid ORDER BY id LIMIT 500`,
        [FOLLOWED_STATUSES, after],
      );
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.id;
      const outcomes = await getTxOutcomes(pool, {
        requestIds: rows.map((r) => signerRequestId(r.id)),
      });
      changed += await applyOutcomes(rows, byRequest(outcomes));
      if (rows.length < 500) break;
    }
    return changed;
  }

  // Between full scans (the safety net), only outcomes that changed since the last pass are read.
  const FULL_SCAN_EVERY_MS = 30_000;
  /** Changes commit a moment after their timestamp: re-read this far back (contract 4). */
  const OVERLAP_MS = 5_000;
  const PAGE = 1000;
  let since: Date | undefined;
  let lastFullScan = 0;

  async function syncOutcomes(): Promise<number> {
    let changed = 0;
    if (since === undefined || Date.now() - lastFullScan >= FULL_SCAN_EVERY_MS) {
      const { rows } = await pool.query<{ now: Date }>("SELECT now() AS now");
      lastFullScan = Date.now();
      changed = await fullScan();
      since = rows[0]!.now;
    } else {
      const changes = await getTxOutcomes(pool, {
        since: new Date(since.getTime() - OVERLAP_MS),
        kind: "withdrawal",
        limit: PAGE,
      });
      if (changes.length >= PAGE) {
        lastFullScan = 0; // a burst: let the next pass read everything
      }
      const ids = changes.map((o) => o.refId).filter((id) => UUID.test(id));
      if (ids.length > 0) {
        const { rows } = await pool.query<{ id: string; status: WithdrawalStatus }>(
          `SELECT id::text, status FROM api.withdrawals
            WHERE id = ANY($1::uuid[]) AND status = ANY($2::text[])`,
          [ids, FOLLOWED_STATUSES],
        );
        changed = await applyOutcomes(rows, byRequest(changes));
      }
      for (const o of changes) if (o.changedAt > since) since = o.changedAt;
    }
    if (changed > 0) await ringWebhooks().catch(() => {});
    return changed;
  }

  async function failByOperator(
    id: string,
    decision: { by: string; reason: string },
  ): Promise<Withdrawal> {
    if (!decision.by.trim() || !decision.reason.trim())
      throw new BaseError("An operator failure needs who (--by) and why (--reason)", {
        code: "WITHDRAWAL_OPERATOR_DECISION_INCOMPLETE",
      });
    const byOperator = (w: Withdrawal) =>
      w.status === "failed" && (w.failureReason ?? "").startsWith("OPERATOR_FAILED");
    const seen = await getWithdrawal(pool, id);
    if (!seen) throw new NotFoundError("withdrawal", id);
    if (byOperator(seen)) return seen;
    // Only needs_review: anything else can still be decided by the chain.
    if (seen.status !== "needs_review") throw new WithdrawalStateError(id, seen.status, "fail");
    // The signer's record first: if the chain moved the request meanwhile (it mined after all),
    // this refuses and no hold is released. Already failed: a repeat after a crash.
    try {
      await failTxRequestByOperator(pool, {
        requestId: signerRequestId(id),
        by: decision.by,
        reason: decision.reason,
      });
    } catch (error) {
      if (!(error instanceof TxRequestNotReviewableError && error.meta?.status === "failed"))
        throw error;
    }
    const result = await withTransaction(pool, async (client) => {
      const w = await getWithdrawal(client, id, { forUpdate: true });
      if (!w) throw new NotFoundError("withdrawal", id);
      // The outcome pass may have applied the signer's `failed` in between: done already.
      if (w.status === "failed") return w;
      if (w.status !== "needs_review") throw new WithdrawalStateError(id, w.status, "fail");
      await holds.release(client, w);
      return move(
        client,
        w,
        "failed",
        decision.by,
        { reason: decision.reason, by: "operator" },
        { failureReason: `OPERATOR_FAILED: ${decision.reason}` },
      );
    });
    await ringWebhooks().catch(() => {});
    return result;
  }

  return { create, approve, reject, cancel, syncOutcomes, failByOperator };
}
