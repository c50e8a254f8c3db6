/**
 * Withdrawals: create, get (with approvals and audit history), list, approve, reject, cancel, and an
 * operator's fail of one in needs_review (admin).
 */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { listAudit } from "../../foundation/audit.js";
import { TxRequestNotReviewableError } from "../../signer/index.js";
import { callerOf } from "../auth.js";
import { NotFoundError, WithdrawalStateError } from "../errors.js";
import { idempotencyKeyOf } from "../idempotency.js";
import {
  Address,
  Amount,
  ChainRef,
  CustomerId,
  IdempotencyHeaders,
  Limit,
  pageLimit,
  problemResponses,
  requirePageCursor,
  Uuid,
} from "../schemas.js";
import {
  approvalsOf,
  getWithdrawal,
  listWithdrawals,
  WITHDRAWAL_STATUSES,
  type WithdrawalStatus,
  withdrawalOut,
} from "../withdrawals/store.js";
import { AuditOut, auditOut } from "./audit.js";
import type { V1Deps } from "./deps.js";

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) =>
  Type.Union([t, Type.Null()]);

export const WithdrawalOut = Type.Object({
  id: Type.String(),
  customerId: Type.String(),
  chainId: Type.Integer(),
  assetId: Type.String(),
  asset: Type.String(),
  to: Type.String(),
  amount: Type.String(),
  status: Type.Unsafe<WithdrawalStatus>({
    type: "string",
    enum: [...WITHDRAWAL_STATUSES],
    description:
      "confirmed: the confirmation rule is met (hold posted), still followed; finalized: final (terminal); a reorg takes confirmed back to broadcast; receipt_unknown / needs_review: the hold stays until the chain or an operator (`POST /v1/withdrawals/{id}/fail`, `custody-node withdrawals fail`) decides",
  }),
  requiredApprovals: Type.Integer(),
  approvals: Type.Array(
    Type.Object({
      approver: Type.String(),
      decision: Type.String(),
      reason: Nullable(Type.String()),
      at: Type.String(),
    }),
  ),
  requestedBy: Type.String(),
  from: Nullable(Type.String()),
  txHash: Nullable(Type.String()),
  fee: Nullable(Type.String()),
  failureReason: Nullable(Type.String()),
  failRequested: Nullable(
    Type.Object(
      { at: Type.String(), by: Type.String(), reason: Type.String() },
      {
        description:
          "an operator failed it while its nonce was unused: the signer is cancelling the nonce, the status stays `broadcast` with the hold standing, and it fails (hold released) once the cancel is final, or is paid if its own send mines first; kept after the outcome",
      },
    ),
  ),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

const Decision = Type.Object(
  { reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })) },
  { additionalProperties: false },
);

const readers = ["withdrawals:write", "withdrawals:approve"] as const;

export function withdrawalsRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  const full = async (id: string) => {
    const w = await getWithdrawal(deps.pool, id);
    if (!w) throw new NotFoundError("withdrawal", id);
    return withdrawalOut(w, await approvalsOf(deps.pool, id));
  };

  return async (app) => {
    app.post(
      "/withdrawals",
      {
        config: { scopes: ["withdrawals:write"] },
        schema: {
          tags: ["withdrawals"],
          summary:
            "Request a withdrawal (validated, policy-checked, held, then signed or queued for approval)",
          headers: IdempotencyHeaders,
          body: Type.Object(
            {
              customerId: CustomerId,
              chain: ChainRef,
              asset: Type.String({
                minLength: 1,
                maxLength: 100,
                description: "`native`, a listed token symbol, or its address",
              }),
              to: Address,
              amount: Amount,
            },
            { additionalProperties: false },
          ),
          response: { 201: WithdrawalOut, ...problemResponses },
        },
      },
      async (request, reply) => {
        const w = await deps.withdrawals.create(
          callerOf(request),
          request.body,
          idempotencyKeyOf(request),
        );
        reply.status(201);
        return withdrawalOut(w, await approvalsOf(deps.pool, w.id));
      },
    );

    app.get(
      "/withdrawals",
      {
        config: { scopes: readers },
        schema: {
          tags: ["withdrawals"],
          summary: "List withdrawals (oldest first, or newest first with order=newest)",
          querystring: Type.Object(
            {
              customer_id: Type.Optional(CustomerId),
              status: Type.Optional(Type.Union(WITHDRAWAL_STATUSES.map((s) => Type.Literal(s)))),
              after: Type.Optional({ ...Uuid, description: "the last id of the previous page" }),
              order: Type.Optional(
                Type.Union([Type.Literal("oldest"), Type.Literal("newest")], {
                  description:
                    "oldest first (default) or newest first; `after` then pages back from that id",
                }),
              ),
              limit: Limit,
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({ withdrawals: Type.Array(WithdrawalOut) }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const q = request.query;
        await requirePageCursor(
          q.after,
          async (id) => (await getWithdrawal(deps.pool, id)) !== undefined,
        );
        const rows = await listWithdrawals(deps.pool, {
          ...(q.customer_id ? { customerId: q.customer_id } : {}),
          ...(q.status ? { status: q.status } : {}),
          ...(q.after ? { after: q.after } : {}),
          ...(q.order === "newest" ? { newestFirst: true } : {}),
          limit: pageLimit(q.limit),
        });
        return {
          withdrawals: await Promise.all(
            rows.map(async (w) => withdrawalOut(w, await approvalsOf(deps.pool, w.id))),
          ),
        };
      },
    );

    app.get(
      "/withdrawals/:id",
      {
        config: { scopes: readers },
        schema: {
          tags: ["withdrawals"],
          summary: "One withdrawal with its approvals and audit history",
          params: Type.Object({ id: Uuid }),
          response: {
            200: Type.Object({ ...WithdrawalOut.properties, history: Type.Array(AuditOut) }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const w = await full(request.params.id);
        const history = await listAudit(deps.pool, {
          entityType: "withdrawal",
          entityId: request.params.id,
          limit: 1000,
        });
        return { ...w, history: history.map(auditOut) };
      },
    );

    app.post(
      "/withdrawals/:id/fail",
      {
        // Releasing the hold of a withdrawal whose outcome the chain never showed is the riskiest
        // decision here (if it did go out, the money is paid twice): admins only, as the CLI.
        config: { scopes: ["admin"] },
        schema: {
          tags: ["withdrawals"],
          summary:
            "Fail a withdrawal in needs_review and release its hold (an operator who checked the chain)",
          description:
            "Only `needs_review` can be failed: anything else the chain can still decide (409 WITHDRAWAL_INVALID_STATE). The chain is checked first: refused (409 SIGNER_REQUEST_MINED_ON_CHAIN) when one of its own transactions used its nonce, refused for now (409 SIGNER_NONCE_NOT_FINAL, 503 SIGNER_CHAIN_CHECK_UNAVAILABLE) while that cannot be told. Nonce used by another transaction in a final block: `failed` now, hold released, `withdrawal.failed` sent. Nonce unused: one of its signed sends may still mine, so the signer cancels the nonce; the answer is the withdrawal back in `broadcast` with its hold standing, and it becomes `failed` (OPERATOR_FAILED, hold released) when the cancel's block is final, or is paid if its own send mines first. Audited as the key's owner with the reason. The same as `custody-node withdrawals fail`; a repeat answers the withdrawal as it is.",
          headers: IdempotencyHeaders,
          params: Type.Object({ id: Uuid }),
          body: Type.Object(
            {
              reason: Type.String({
                minLength: 1,
                maxLength: 500,
                pattern: "\\S",
                description: "what was checked on chain",
              }),
            },
            { additionalProperties: false },
          ),
          response: { 200: WithdrawalOut, ...problemResponses },
        },
      },
      async (request) => {
        const { id } = request.params;
        try {
          await deps.withdrawals.failByOperator(id, {
            by: callerOf(request).owner,
            reason: request.body.reason.trim(),
          });
        } catch (error) {
          // The signer's record left needs_review meanwhile (the chain moved it): the same answer
          // as a withdrawal found in another state.
          if (error instanceof TxRequestNotReviewableError)
            throw new WithdrawalStateError(id, String(error.meta?.status ?? "moved"), "fail");
          throw error;
        }
        return full(id);
      },
    );

    for (const action of ["approve", "reject", "cancel"] as const) {
      app.post(
        `/withdrawals/:id/${action}`,
        {
          config: { scopes: action === "cancel" ? ["withdrawals:write"] : ["withdrawals:approve"] },
          schema: {
            tags: ["withdrawals"],
            summary:
              action === "cancel"
                ? "Cancel a withdrawal awaiting approval (the requester); the hold is voided"
                : action === "approve"
                  ? "Approve (a distinct approver, not the requester); at M approvals it goes to the signer"
                  : "Reject (an approver, not the requester); the hold is voided",
            headers: IdempotencyHeaders,
            params: Type.Object({ id: Uuid }),
            body: Type.Optional(Decision),
            response: { 200: WithdrawalOut, ...problemResponses },
          },
        },
        async (request) => {
          const caller = callerOf(request);
          const reason = request.body?.reason;
          // The withdrawal as this decision left it (its transaction's), not as read afterwards: a
          // second approver committing meanwhile would have the first approval answer `signing`.
          const w = await deps.withdrawals[action](
            caller,
            request.params.id,
            reason,
            idempotencyKeyOf(request),
          );
          return withdrawalOut(w, await approvalsOf(deps.pool, w.id));
        },
      );
    }
  };
}
