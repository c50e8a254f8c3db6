/**
 * Decisions on a withdrawal before the signer has it: approve / reject (M-of-N distinct persons,
 * never the requester) and cancel (the requester or an admin). Each is one transaction holding the
 * withdrawal's row lock; reject and cancel release the hold. A person is known by their keys'
 * owner and email (apiKeys.ts `personsAmong`): two keys sharing either are one person, as are two
 * that other keys join (`personsOf`), so Anna's personal key carrying anna@example.com and her SSO
 * session are one approver. With console SSO configured, a decider whose key names no email could
 * be anyone, SSO users included: refused.
 *
 * Each decision is recorded under the caller's Idempotency-Key in its transaction
 * (api.withdrawal_decisions), as a create is on its withdrawal: a retry whose stored answer was lost
 * (a 5xx after the commit, a crash before it was stored) gets the withdrawal as the decision left
 * it and moved on since, not ALREADY_DECIDED; the key with another request is IDEMPOTENCY_KEY_REUSED.
 */

import { appendAudit } from "../../foundation/audit.js";
import type { PoolClient } from "../../foundation/db.js";
import { withTransaction } from "../../foundation/db.js";
import { isWithdrawalBlocked } from "../../ledger/index.js";
import {
  type ApiKey,
  normalizeOwner,
  PERSONS_LOCK,
  personLinks,
  personsAmong,
  principalOf,
} from "../apiKeys.js";
import {
  ApprovalError,
  IdempotencyConflictError,
  NotFoundError,
  PolicyViolationError,
  WithdrawalStateError,
} from "../errors.js";
import { CALLERS_KEY, callersKeyParams, lockCallersKey } from "../idempotency.js";
import type { WithdrawalStages } from "./context.js";
import { refuseOnHaltedChain } from "./haltedChain.js";
import { canMove, findByIdempotencyKey, getWithdrawal, type Withdrawal } from "./store.js";

type Decider = { decision: string; owner: string; email: string | null };

type Action = "approve" | "reject" | "cancel";
/** One decision as the caller asked it, under their Idempotency-Key. */
type Asked = {
  caller: ApiKey;
  key: string;
  id: string;
  action: Action;
  reason: string | undefined;
};

/**
 * The decision recorded under a caller's key, if any (in the caller's transaction, under the key's
 * lock): a create checks it too, so a key is one request whatever the route. The key is the
 * caller's principal's (any of its API keys: `principalOf`), or the API key's own for a decision
 * a revision before principals recorded.
 */
export async function decisionUnderKey(
  client: PoolClient,
  caller: Pick<ApiKey, "id" | "owner">,
  key: string,
): Promise<{ withdrawal_id: string; action: Action; reason: string | null } | undefined> {
  const { rows } = await client.query<{
    withdrawal_id: string;
    action: Action;
    reason: string | null;
  }>(
    `SELECT withdrawal_id::text, action, reason FROM api.withdrawal_decisions
      WHERE ${CALLERS_KEY}`,
    callersKeyParams(caller, key),
  );
  return rows[0];
}

/**
 * The withdrawal a decision already made under this key left (its answer lost on the way), or
 * undefined for a new key. Taken under the key's lock (the one a create takes: a key is one
 * request, whatever the route), before the withdrawal's row lock. A key a create used is
 * refused, whatever became of that withdrawal.
 */
async function decidedUnderKey(client: PoolClient, a: Asked): Promise<Withdrawal | undefined> {
  await lockCallersKey(client, "withdrawal-key", a.caller, a.key);
  if (await findByIdempotencyKey(client, a.caller, a.key))
    throw new IdempotencyConflictError(a.key, "POST /v1/withdrawals");
  const earlier = await decisionUnderKey(client, a.caller, a.key);
  if (!earlier) return undefined;
  if (
    earlier.withdrawal_id !== a.id ||
    earlier.action !== a.action ||
    earlier.reason !== (a.reason ?? null)
  )
    throw new IdempotencyConflictError(
      a.key,
      `POST /v1/withdrawals/${earlier.withdrawal_id}/${earlier.action}`,
    );
  return getWithdrawal(client, a.id);
}

async function recordDecision(client: PoolClient, a: Asked) {
  await client.query(
    `INSERT INTO api.withdrawal_decisions
       (api_key_id, idempotency_key, withdrawal_id, action, reason, principal)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [a.caller.id, a.key, a.id, a.action, a.reason ?? null, principalOf(a.caller)],
  );
}

/**
 * Who decided on the withdrawal so far (in the caller's transaction): each approver's owner
 * normalised, with the email of the key they decided with.
 */
async function decidersOf(client: PoolClient, id: string): Promise<Decider[]> {
  const { rows } = await client.query<{ approver: string; decision: string; email: string | null }>(
    `SELECT a.approver, a.decision, k.email
       FROM api.withdrawal_approvals a LEFT JOIN api.api_keys k ON k.id = a.api_key_id
      WHERE a.withdrawal_id = $1`,
    [id],
  );
  return rows.map((r) => ({
    decision: r.decision,
    owner: normalizeOwner(r.approver),
    email: r.email ?? null,
  }));
}

type Party = { owner: string; email?: string | null };

/**
 * Who is one person for this withdrawal (in the caller's transaction): two keys sharing an owner or
 * an email are one, and so are two sharing neither when other keys join them (bob's old key, and
 * the key of `robert` carrying bob's new email, are one person through bob's new key): comparing
 * the deciding keys alone would count that person twice, or let them approve their own request.
 * The links are every key's, revoked or not (api.api_keys `personLinks`), and the parties' own: a
 * revoked key still says its owner and its email were one person, so revoking the key that joined
 * two of a person's identities (a key rotated), before or after the withdrawal was requested,
 * cannot split the requester from their own approving key, or a person's first approval from their
 * second. (`apikeys set-email` refuses to re-point such a key's email while the withdrawal waits:
 * apiKeys.ts.) Returns each party's person: the one identity its group is known by.
 */
async function personsOf(client: PoolClient, parties: readonly Party[]) {
  return personsAmong([...(await personLinks(client)), ...parties]);
}

/** The requester as a person: the owner stored on the withdrawal, and its key's email. */
async function requesterOf(client: PoolClient, w: Withdrawal) {
  const { rows } = await client.query<{ email: string | null }>(
    "SELECT email FROM api.api_keys WHERE id = $1",
    [w.apiKeyId],
  );
  return { owner: w.requestedBy, email: rows[0]?.email ?? null };
}

export function createDecisions({
  pool,
  config,
  holds,
  move,
  handToSigner,
  ring,
}: WithdrawalStages) {
  // With console SSO on, people approve as `oidc:<email>`; a key naming no email may be one of
  // them under another name, so it cannot count as a distinct approver (docs/console.md).
  const personRequired = Boolean(config.api?.console?.oidc);
  async function decide(
    client: PoolClient,
    asAuthenticated: ApiKey,
    id: string,
    decision: "approve" | "reject",
    reason: string | undefined,
  ): Promise<Withdrawal> {
    const w = await getWithdrawal(client, id, { forUpdate: true });
    if (!w) throw new NotFoundError("withdrawal", id);
    if (w.status !== "pending_approval") throw new WithdrawalStateError(id, w.status, decision);
    // The caller's person as their key row says now, held FOR SHARE to the commit: `apikeys
    // set-email` (apiKeys.ts setApiKeyEmail) holds it FOR UPDATE while it checks that the key
    // decided on no withdrawal still waiting, so this decision is either seen by that check or
    // made with the new email, never made with the old one and re-read later as the new one.
    const { rows: held } = await client.query<{ email: string | null }>(
      "SELECT email FROM api.api_keys WHERE id = $1 FOR SHARE",
      [asAuthenticated.id],
    );
    const caller = { ...asAuthenticated, email: held[0]?.email ?? null };
    // Persons are compared through other keys too (personsOf): `set-email` on one of those waits
    // for this decision's commit, or this decision sees its change (apiKeys.ts PERSONS_LOCK).
    await client.query("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))", [
      PERSONS_LOCK,
    ]);
    if (personRequired && !caller.email)
      throw new ApprovalError(
        "APPROVER_PERSON_UNKNOWN",
        "this key names no person (email) and console SSO is configured: it could be an SSO approver's own; decide with a key created with --email, or through SSO",
        { withdrawal_id: id, approver: caller.owner, api_key_id: caller.id },
      );
    // Owners are compared normalised (apiKeys.ts): rows written before owners were normalised
    // keep the spelling of their day, and "Anna" must not approve what "anna" requested.
    const requester = await requesterOf(client, w);
    const earlier = await decidersOf(client, id);
    const personOf = await personsOf(client, [caller, requester, ...earlier]);
    if (personOf(caller) === personOf(requester))
      throw new ApprovalError(
        "APPROVER_IS_REQUESTER",
        "the requester of a withdrawal cannot approve or reject it",
        { withdrawal_id: id, approver: caller.owner },
      );
    const inserted = earlier.some((a) => personOf(a) === personOf(caller))
      ? { rowCount: 0 }
      : await client.query(
          `INSERT INTO api.withdrawal_approvals (withdrawal_id, approver, api_key_id, decision, reason)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
          [id, caller.owner, caller.id, decision, reason ?? null],
        );
    if (inserted.rowCount !== 1)
      throw new ApprovalError(
        "ALREADY_DECIDED",
        `${caller.owner} (under this key or another of the same person) already decided on this withdrawal`,
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
      details: {
        api_key_id: caller.id,
        ...(caller.email ? { email: caller.email } : {}),
        ...(reason ? { reason } : {}),
      },
    });
    return w;
  }

  /** `decision` in one transaction with its key's record, or the result a retry is owed. */
  async function underKey(a: Asked, decision: (client: PoolClient) => Promise<Withdrawal>) {
    const result = await withTransaction(pool, async (client) => {
      const earlier = await decidedUnderKey(client, a);
      if (earlier) return earlier;
      const w = await decision(client);
      await recordDecision(client, a);
      return w;
    });
    await ring();
    return result;
  }

  async function approve(caller: ApiKey, id: string, reason: string | undefined, key: string) {
    return underKey({ caller, key, id, action: "approve", reason }, async (client) => {
      let w = await decide(client, caller, id, "approve", reason);
      // A reorg that removed a deposit this customer had spent blocks their withdrawals: one that
      // was waiting for approvals then may be paying with that deposit. It keeps its hold and can
      // be rejected or cancelled; approving it waits until the block is cleared.
      if (await isWithdrawalBlocked(client, w.customerId))
        throw new PolicyViolationError(
          "CUSTOMER_WITHDRAWALS_BLOCKED",
          "params.id",
          "withdrawals of this customer are blocked until an operator clears it (a reorg removed a deposit they had already spent): it cannot be approved now",
          { withdrawal_id: id },
        );
      // Approving may hand it to the signer: not on a halted chain (haltedChain.ts).
      await refuseOnHaltedChain(client, w.chainId);
      const approvers = (await decidersOf(client, id)).filter((a) => a.decision === "approve");
      const personOf = await personsOf(client, approvers);
      const approvals = new Set(approvers.map(personOf)).size;
      if (approvals >= w.requiredApprovals) {
        w = await move(client, w, "approved", caller.owner, { approvals });
        w = await handToSigner(client, w);
      }
      return w;
    });
  }

  async function reject(caller: ApiKey, id: string, reason: string | undefined, key: string) {
    return underKey({ caller, key, id, action: "reject", reason }, async (client) => {
      const w = await decide(client, caller, id, "reject", reason);
      await holds.release(client, w);
      return move(client, w, "rejected", caller.owner, reason ? { reason } : {}, {
        failureReason: reason ?? "rejected",
      });
    });
  }

  async function cancel(caller: ApiKey, id: string, reason: string | undefined, key: string) {
    return underKey({ caller, key, id, action: "cancel", reason }, async (client) => {
      const w = await getWithdrawal(client, id, { forUpdate: true });
      if (!w) throw new NotFoundError("withdrawal", id);
      if (normalizeOwner(w.requestedBy) !== caller.owner && !caller.scopes.includes("admin"))
        throw new ApprovalError(
          "NOT_REQUESTER",
          "only the requester (or an admin) can cancel a withdrawal",
          { withdrawal_id: id },
        );
      if (!canMove(w.status, "cancelled")) throw new WithdrawalStateError(id, w.status, "cancel");
      await holds.release(client, w);
      return move(client, w, "cancelled", caller.owner, reason ? { reason } : {}, {
        failureReason: reason ?? "cancelled",
      });
    });
  }

  return { approve, reject, cancel };
}
