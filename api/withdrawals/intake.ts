/**
 * Intake: a withdrawal request is validated at the edge, refused on a halted chain, checked against
 * the customer's block, the custody's own addresses (on every configured chain) and the policy
 * (rolling 24 h per customer and asset, serialised by an advisory lock), held in the ledger, then
 * waits for approvals or goes straight to the signer. One transaction; a repeated idempotency key returns the stored withdrawal
 * if it means the same request.
 */
import { randomUUID } from "node:crypto";
import { appendAudit } from "../../foundation/audit.js";
import { activeHotWalletAddress } from "../../foundation/config.js";
import type { PoolClient } from "../../foundation/db.js";
import { withTransaction } from "../../foundation/db.js";
import { BaseError } from "../../foundation/errors.js";
import {
  contractHotWallet,
  contractHotWallets,
  FORWARDER_FACTORY,
  findDepositAddress,
  getContract,
  hotWalletOf,
  isWatchedAddress,
  loadCustodyOf,
} from "../../indexers/index.js";
import { isWithdrawalBlocked, TransferFailedError } from "../../ledger/index.js";
import { type ApiKey, principalOf } from "../apiKeys.js";
import { resolveAsset, resolveChain } from "../chainStatus.js";
import { IdempotencyConflictError, PolicyViolationError } from "../errors.js";
import { lockCallersKey } from "../idempotency.js";
import type { WithdrawalStages } from "./context.js";
import { decisionUnderKey } from "./decisions.js";
import { refuseOnHaltedChain } from "./haltedChain.js";
import { evaluateWithdrawalPolicy } from "./policy.js";
import { findByIdempotencyKey, fromRow, WITHDRAWAL_COLUMNS, type WithdrawalRow } from "./store.js";
import { holdId } from "./transitions.js";
import { checkedAmount, checkedDestination } from "./validate.js";

export type CreateWithdrawalInput = {
  customerId: string;
  chain: string;
  asset: string;
  to: string;
  amount: string;
};

export function createIntake({ pool, config, ledger, move, handToSigner, ring }: WithdrawalStages) {
  async function hotWalletFor(
    client: PoolClient,
    chain: { chainId: number; key: string },
  ): Promise<string | undefined> {
    // The config names it once a rotation began (the first wallet not retiring, by its address):
    // the first registered one is then the wallet being retired (drained, or its key disabled).
    const active = activeHotWalletAddress(config.hotWallets, chain.key);
    if (active) {
      // Only once its signer loaded a key that signs for it (signer/role.ts registers it then): a
      // withdrawal recorded with an address no key signs for would wait for ever, its money held.
      if ((await loadCustodyOf(client, chain.chainId, [active])).get(active) === "hot")
        return active;
      throw new BaseError(
        `The hot wallet that takes new withdrawals on ${chain.key} (${active}) is not registered: its signer has not loaded a key that signs for it`,
        { code: "NO_HOT_WALLET", meta: { chain_id: chain.chainId, hot_wallet: active } },
      );
    }
    const chainId = chain.chainId;
    // A hot wallet is registered in the watched set (kind hot); the factory's deployer is one too.
    const hot = await hotWalletOf(client, chainId);
    if (hot) return hot;
    const factory = await getContract(client, chainId, FORWARDER_FACTORY);
    return factory?.hotWallet.toLowerCase();
  }

  async function isCustodyAddressOn(client: PoolClient, chainId: number, address: string) {
    const cold = config.chains.find((c) => c.chainId === chainId)?.coldAddress;
    if (cold && cold.toLowerCase() === address) return true;
    if (await isWatchedAddress(client, chainId, address)) return true;
    // Any contract of ours (the forwarder factory, the reserves attestor whose address dApps show
    // customers) and the hot wallet each was recorded with: neither contract has a way to send
    // value on, so a token paid to one is lost to the customer and to us alike.
    if ((await contractHotWallet(client, chainId, address)) !== undefined) return true;
    if ((await contractHotWallets(client, chainId)).includes(address)) return true;
    return (await findDepositAddress(client, chainId, address)) !== undefined;
  }

  // On any configured chain, not only the one paid on: a hot wallet's key signs everywhere, and a
  // customer who copies one of the custody's addresses from another network would pay the custody,
  // where nothing watches that address, with their own money.
  async function isCustodyAddress(client: PoolClient, address: string) {
    // A configured hot wallet is ours before its signer first loads its key and registers it.
    if (config.hotWallets.some((w) => w.address?.toLowerCase() === address)) return true;
    for (const c of config.chains)
      if (await isCustodyAddressOn(client, c.chainId, address)) return true;
    return false;
  }

  async function create(caller: ApiKey, input: CreateWithdrawalInput, idempotencyKey: string) {
    // Edge validation first: nothing is read or written for a bad request.
    const chain = resolveChain(config, input.chain, "body.chain");
    const asset = resolveAsset(config, chain, input.asset, "body.asset");
    const to = checkedDestination(input.to);
    const amount = checkedAmount(input.amount);
    const assetId = `${chain.chainId}:${asset.address.toLowerCase()}`;

    const result = await withTransaction(pool, async (client) => {
      // One create per key at a time (taken before the customer's lock below, always in that
      // order): a retry that took over a lapsed lease while the first request still runs waits
      // for it and finds its withdrawal, instead of failing on the key's unique index (a 500).
      // The key is the caller's principal's: a retry under a rotated API key is the same request.
      await lockCallersKey(client, "withdrawal-key", caller, idempotencyKey);
      const existing = await findByIdempotencyKey(client, caller, idempotencyKey);
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
      // A key a decision used (its stored answer lost) is that decision's: refused here too.
      const decided = await decisionUnderKey(client, caller, idempotencyKey);
      if (decided)
        throw new IdempotencyConflictError(
          idempotencyKey,
          `POST /v1/withdrawals/${decided.withdrawal_id}/${decided.action}`,
        );
      await refuseOnHaltedChain(client, chain.chainId);
      // A reorg removed a deposit this customer had already spent (ledger reorg hold shortfall).
      if (await isWithdrawalBlocked(client, input.customerId))
        throw new PolicyViolationError(
          "CUSTOMER_WITHDRAWALS_BLOCKED",
          "body.customerId",
          "withdrawals of this customer are blocked until an operator clears it (a reorg removed a deposit they had already spent)",
        );
      if (await isCustodyAddress(client, to))
        throw new PolicyViolationError(
          "DESTINATION_IS_CUSTODY",
          "body.to",
          "destination is one of the custody's own addresses (on this or another chain)",
        );
      // Serialise withdrawals per customer and asset, so two concurrent requests cannot both pass
      // the rolling limit.
      await client.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [
        `withdrawal:${input.customerId}:${assetId}`,
      ]);
      // A withdrawal counts from its request until a day after it last changed, and for as long
      // as its money has not surely left (awaiting approval, signing, sent, receipt unknown): one
      // approved or mined after waiting more than a day leaves now, beside today's requests.
      const { rows: sums } = await client.query<{ total: bigint }>(
        // Two disjoint sets, each read by its index (api/migrations/0010), not the whole history.
        `SELECT COALESCE(sum(amount), 0) AS total FROM (
           SELECT amount FROM api.withdrawals
            WHERE customer_id = $1 AND chain_id = $2 AND asset = $3
              AND status NOT IN ('confirmed', 'finalized', 'rejected', 'cancelled', 'failed')
           UNION ALL
           SELECT amount FROM api.withdrawals
            WHERE customer_id = $1 AND chain_id = $2 AND asset = $3
              AND status IN ('confirmed', 'finalized')
              AND updated_at > now() - interval '24 hours') AS counted`,
        [input.customerId, chain.chainId, asset.address.toLowerCase()],
      );
      const decision = evaluateWithdrawalPolicy(config.policies, {
        customerId: input.customerId,
        assetId,
        to,
        amount,
        rolling24h: sums[0]!.total,
      });
      const hot = await hotWalletFor(client, chain);
      if (!hot)
        throw new BaseError(`No hot wallet is registered on ${chain.key}`, {
          code: "NO_HOT_WALLET",
          meta: { chain_id: chain.chainId },
        });
      const id = randomUUID();
      const { rows } = await client.query<WithdrawalRow>(
        `INSERT INTO api.withdrawals (id, customer_id, chain_id, asset, to_address, amount, status,
           required_approvals, requested_by, api_key_id, idempotency_key, from_address, principal)
         VALUES ($1, $2, $3, $4, $5, $6, 'requested', $7, $8, $9, $10, $11, $12)
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
          principalOf(caller),
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
    await ring();
    return result;
  }

  return { create };
}
