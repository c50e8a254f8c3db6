/**
 * Withdrawals: create (validate, policy, hold, hand to the signer or wait for approvals), approve /
 * reject (M-of-N distinct approvers, never the requester), cancel, and following the signer's
 * outcome (broadcast, confirmed: post the hold and book the gas; failed: void the hold and book any
 * gas paid). Every change is one Postgres transaction holding the withdrawal row lock, with its
 * audit entry, ledger transfer, signer request and webhook event, so a crash leaves either all of
 * it or none.
 */
import { randomUUID } from "node:crypto";
import {
  createPublicClient,
  encodeFunctionData,
  erc20Abi,
  http,
  type Log,
  type PublicClient,
  zeroAddress,
} from "viem";
import {
  isWithdrawalBlocked,
  type Ledger,
  TransferFailedError,
  transferId,
} from "../../ledger/index.js";
import type { Common } from "../../ops/common.js";
import { type Pool, type PoolClient, withTransaction } from "../../ops/db.js";
import { BaseError } from "../../ops/errors.js";
import { requestTransaction } from "../../signer/index.js";
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
import { type EventType, emitEvent } from "../webhooks/events.js";
import { withdrawalPosition } from "./chainRef.js";
import { evaluateWithdrawalPolicy } from "./policy.js";
import {
  canMove,
  findByIdempotencyKey,
  fromRow,
  getWithdrawal,
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
};

/** The signer request id of a withdrawal (docs/contracts.md). */
export const signerRequestId = (withdrawalId: string) => `withdrawal:${withdrawalId}`;
export const holdId = (withdrawalId: string) => transferId(`withdrawal:${withdrawalId}`);

const EVENT_OF: Partial<Record<WithdrawalStatus, EventType>> = {
  approved: "withdrawal.approved",
  broadcast: "withdrawal.broadcast",
  confirmed: "withdrawal.confirmed",
  failed: "withdrawal.failed",
  rejected: "withdrawal.rejected",
  cancelled: "withdrawal.cancelled",
};

export type ReceiptLogs = (
  chainId: number,
  txHash: `0x${string}`,
) => Promise<readonly Pick<Log, "address" | "topics" | "data" | "logIndex">[]>;

/** Token withdrawals need their Transfer log's index (the fact recon pairs the post with). */
function rpcReceiptLogs(common: Common): ReceiptLogs {
  const clients = new Map<number, PublicClient>();
  return async (chainId, txHash) => {
    let client = clients.get(chainId);
    if (!client) {
      const chain = common.config.chains.find((c) => c.chainId === chainId);
      if (!chain) throw new Error(`chain ${chainId} is not configured`);
      client = createPublicClient({ transport: http(chain.rpcUrls[0], { timeout: 5000 }) });
      clients.set(chainId, client);
    }
    return (await client.getTransactionReceipt({ hash: txHash })).logs;
  };
}

export function createWithdrawals({
  common,
  pool,
  ledger,
  ringWebhooks = async () => {},
  receiptLogs = rpcReceiptLogs(common),
}: {
  common: Common;
  pool: Pool;
  ledger: Ledger;
  ringWebhooks?: () => Promise<unknown>;
  receiptLogs?: ReceiptLogs;
}): Withdrawals {
  const log = common.logger.child({ component: "withdrawals" });
  const config = common.config;
  const metrics = apiMetrics(common.metrics.registry);

  async function move(
    client: PoolClient,
    w: Withdrawal,
    to: WithdrawalStatus,
    actor: string,
    details: Record<string, unknown> = {},
    fields: { txHash?: string; fee?: bigint; failureReason?: string } = {},
  ): Promise<Withdrawal> {
    if (!canMove(w.status, to)) throw new WithdrawalStateError(w.id, w.status, `move to ${to}`);
    const { rows } = await client.query<WithdrawalRow>(
      `UPDATE api.withdrawals
          SET status = $2, updated_at = now(),
              tx_hash = COALESCE($3, tx_hash), fee = COALESCE($4, fee),
              failure_reason = COALESCE($5, failure_reason)
        WHERE id = $1
        RETURNING id::text, customer_id, chain_id::text, asset, to_address, amount::text, status,
          required_approvals, requested_by, api_key_id, idempotency_key, from_address, tx_hash,
          fee::text, failure_reason, created_at, updated_at`,
      [
        w.id,
        to,
        fields.txHash ?? null,
        fields.fee?.toString() ?? null,
        fields.failureReason ?? null,
      ],
    );
    const next = fromRow(rows[0]!);
    await appendAudit(client, {
      actor,
      action: `withdrawal.${to}`,
      entityType: "withdrawal",
      entityId: w.id,
      details: { from_status: w.status, ...details },
    });
    const type = EVENT_OF[to];
    if (type)
      await emitEvent(client, config, {
        type,
        name: `withdrawal:${w.id}:${to}`,
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
    await ledger.voidPending(
      { id: transferId(`withdrawal:${w.id}:void`), pendingId: holdId(w.id) },
      { client },
    );
  }

  async function hotWalletFor(client: PoolClient, chainId: number): Promise<string | undefined> {
    // A hot wallet is registered in the watched set (kind hot); the factory's deployer is one too.
    const { rows } = await client.query<{ address: string }>(
      `SELECT address FROM (
         SELECT address, 0 AS pref, created_at FROM chain.custody_addresses
          WHERE chain_id = $1 AND kind = 'hot'
         UNION ALL
         SELECT hot_wallet, 1, created_at FROM custody.contracts WHERE chain_id = $1
       ) h ORDER BY pref, created_at LIMIT 1`,
      [chainId],
    );
    return rows[0]?.address;
  }

  async function isCustodyAddress(client: PoolClient, chainId: number, address: string) {
    const cold = config.chains.find((c) => c.chainId === chainId)?.coldAddress;
    if (cold && cold.toLowerCase() === address) return true;
    const { rows } = await client.query(
      `SELECT 1 FROM chain.custody_addresses WHERE chain_id = $1 AND address = $2
       UNION ALL SELECT 1 FROM custody.contracts WHERE chain_id = $1 AND (address = $2 OR hot_wallet = $2)
       UNION ALL SELECT 1 FROM custody.deposit_addresses WHERE chain_id = $1 AND address = $2`,
      [chainId, address],
    );
    return rows.length > 0;
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
         RETURNING id::text, customer_id, chain_id::text, asset, to_address, amount::text, status,
           required_approvals, requested_by, api_key_id, idempotency_key, from_address, tx_hash,
           fee::text, failure_reason, created_at, updated_at`,
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
      action: `withdrawal.${decision}d_by`,
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

  type Outcome = {
    status: string;
    tx_hash: string | null;
    fee: string | null;
    error_code: string | null;
    error_message: string | null;
  };

  async function bookFee(client: PoolClient, w: Withdrawal, o: Outcome): Promise<bigint> {
    const fee = o.fee === null ? 0n : BigInt(o.fee);
    if (fee > 0n && o.tx_hash)
      await ledger.transfer(
        {
          id: transferId(`withdrawal:${w.id}:fee`),
          assetId: `${w.chainId}:${zeroAddress}`,
          debit: "fees:gas",
          credit: `custody:hot:${w.fromAddress}`,
          amount: fee,
          kind: "fee",
          chainRef: { chainId: w.chainId, txHash: o.tx_hash, position: "fee" },
          memo: `gas of withdrawal ${w.id}`,
        },
        { client },
      );
    return fee;
  }

  async function applyOutcome(id: string): Promise<boolean> {
    return withTransaction(pool, async (client) => {
      let w = await getWithdrawal(client, id, { forUpdate: true });
      if (!w || (w.status !== "signing" && w.status !== "broadcast")) return false;
      const { rows } = await client.query<Outcome>(
        `SELECT status, tx_hash, fee::text, error_code, error_message
           FROM custody.tx_requests WHERE id = $1`,
        [signerRequestId(id)],
      );
      const o = rows[0];
      if (!o) return false;
      const sent = ["broadcast", "mined", "confirmed"].includes(o.status);
      if (sent && w.status === "signing" && o.tx_hash)
        w = await move(
          client,
          w,
          "broadcast",
          "signer",
          { tx_hash: o.tx_hash },
          { txHash: o.tx_hash },
        );
      if (o.status === "confirmed" && o.tx_hash) {
        const position = withdrawalPosition(
          { ...w, fromAddress: w.fromAddress! },
          w.asset === zeroAddress ? [] : await receiptLogs(w.chainId, o.tx_hash as `0x${string}`),
        );
        // Without the fact's reference reconciliation could not pair the post: retry next pass.
        if (!position) throw new Error(`no Transfer log for withdrawal ${id} in ${o.tx_hash}`);
        await ledger.postPending(
          {
            id: transferId(`withdrawal:${id}:post`),
            pendingId: holdId(id),
            chainRef: { chainId: w.chainId, txHash: o.tx_hash, position },
          },
          { client },
        );
        const fee = await bookFee(client, w, o);
        await move(
          client,
          w,
          "confirmed",
          "signer",
          { tx_hash: o.tx_hash },
          { txHash: o.tx_hash, fee },
        );
        return true;
      }
      if (o.status === "failed") {
        const fee = await bookFee(client, w, o);
        await voidHold(client, w);
        await move(
          client,
          w,
          "failed",
          "signer",
          { error_code: o.error_code, error: o.error_message },
          {
            ...(o.tx_hash ? { txHash: o.tx_hash } : {}),
            fee,
            failureReason: o.error_code ?? "failed",
          },
        );
        return true;
      }
      return sent;
    });
  }

  async function syncOutcomes(): Promise<number> {
    const { rows } = await pool.query<{ id: string }>(
      `SELECT w.id::text FROM api.withdrawals w
         JOIN custody.tx_requests r ON r.id = 'withdrawal:' || w.id::text
        WHERE w.status IN ('signing', 'broadcast')
          AND (r.status IN ('confirmed', 'failed')
               OR (w.status = 'signing' AND r.status IN ('broadcast', 'mined')))
        ORDER BY w.updated_at LIMIT 200`,
    );
    let changed = 0;
    for (const { id } of rows) {
      try {
        if (await applyOutcome(id)) changed++;
      } catch (err) {
        log.error({ msg: "applying signer outcome failed", withdrawal_id: id, err });
      }
    }
    if (changed > 0) await ringWebhooks().catch(() => {});
    return changed;
  }

  return { create, approve, reject, cancel, syncOutcomes };
}
