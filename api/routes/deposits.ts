/**
 * Deposits: chain facts (native, ERC-20, internal transfers) into customers' deposit addresses, as
 * the indexer recorded them, read through the ledger (ledger/deposits.ts). Status is the fact's
 * (`seen`, `confirmed`, `orphaned`), plus `credited` once the ledger has booked the deposit credit;
 * `creditState` says where the ledger's credit stands (an orphaned deposit held, reversed, restored
 * elsewhere, or never credited).
 */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { getAddress } from "viem";
import { formatAmount } from "../../foundation/amounts.js";
import {
  type DepositRow,
  depositCreditExists,
  listDeposits,
  listReorgHolds,
  type ReorgHoldRow,
} from "../../ledger/index.js";
import { NotFoundError } from "../errors.js";
import {
  Amount,
  BaseUnits,
  CustomerId,
  Limit,
  pageLimit,
  problemResponses,
  requirePageCursor,
} from "../schemas.js";
import type { V1Deps } from "./deps.js";

/** Where the ledger's credit of a deposit stands (ledger/deposits.ts DepositCreditState). */
const CreditState = (description: string) =>
  Type.Union(
    [
      Type.Literal("none"),
      Type.Literal("credited"),
      Type.Literal("held"),
      Type.Literal("reversed"),
      Type.Literal("restored"),
    ],
    { description },
  );

// Amount without its `examples` (OpenAPI 3.0 allows none inside anyOf; redocly refuses it).

const DepositOut = Type.Object({
  id: Type.String(),
  customerId: Type.String(),
  chainId: Type.Integer(),
  assetId: Type.String(),
  asset: Type.String(),
  address: Type.String({ description: "the deposit address (checksummed)" }),
  from: Type.String(),
  amount: Type.String(),
  txHash: Type.String(),
  position: Type.String(),
  blockNumber: Type.String(),
  blockHash: Type.String(),
  status: Type.String({ description: "seen | confirmed | orphaned | credited" }),
  creditState: CreditState(
    "where the ledger's credit of this deposit stands, so an orphaned deposit's money is told: " +
      "none (never credited), credited (the credit stands), held (a reorg took it out: reorg hold " +
      "pending, the amount is held from the customer and it may still come back; GET " +
      "/v1/deposits/holds; a re-mined copy still short of its confirmations shows it too), reversed (its block is final without it: the credit was taken back " +
      "for good), restored (orphaned here, but the same deposit confirmed again in another " +
      "block, whose deposit carries the credit; or came back there as another transfer of the " +
      "transaction, or after its hold was posted, and that deposit's own credit carries it)",
  ),
  detectedAt: Type.String(),
  confirmedAt: Type.Union([Type.String(), Type.Null()]),
});

const DepositStatus = Type.Union(
  ["seen", "confirmed", "orphaned", "credited"].map((s) => Type.Literal(s)),
);

export function depositOut(r: DepositRow) {
  return {
    id: r.id,
    customerId: r.owner,
    chainId: Number(r.chain_id),
    assetId: `${r.chain_id}:${r.asset}`,
    asset: getAddress(r.asset),
    address: getAddress(r.to_address),
    from: getAddress(r.from_address),
    amount: formatAmount(r.amount),
    txHash: r.tx_hash,
    position: r.position,
    blockNumber: r.block_number,
    blockHash: r.block_hash,
    status: r.credited && r.status !== "orphaned" ? "credited" : r.status,
    creditState: r.credit_state,
    detectedAt: r.created_at.toISOString(),
    confirmedAt: r.confirmed_at?.toISOString() ?? null,
  };
}

const ReorgHoldOut = Type.Object({
  creditId: Type.String({ description: "the deposit credit held (the list's cursor)" }),
  customerId: Type.String(),
  chainId: Type.Integer(),
  assetId: Type.String(),
  address: Type.String({ description: "the deposit address (checksummed)" }),
  amount: Amount,
  txHash: Type.String(),
  position: Type.String(),
  blockNumber: Type.String(),
  orphanedBlock: Type.Union([Type.String(), Type.Null()], {
    description:
      "height of the orphaned block; the hold is posted once it is final without the deposit",
  }),
  holdAmount: Type.Union([BaseUnits, Type.Null()], {
    description: "base units held from the customer",
  }),
  shortfallAmount: Type.Union([BaseUnits, Type.Null()], {
    description: "base units the customer's balance could not cover (blocks their withdrawals)",
  }),
  holdsPlaced: Type.Integer(),
  since: Type.String(),
});

function reorgHoldOut(r: ReorgHoldRow) {
  return {
    creditId: r.credit_id,
    customerId: r.owner,
    chainId: Number(r.chain_id),
    assetId: `${r.chain_id}:${r.asset}`,
    address: getAddress(r.to_address),
    amount: formatAmount(r.amount),
    txHash: r.tx_hash,
    position: r.position,
    blockNumber: r.block_number,
    orphanedBlock: r.orphaned_block,
    holdAmount: r.hold_amount === null ? null : formatAmount(r.hold_amount),
    shortfallAmount: r.shortfall_amount === null ? null : formatAmount(r.shortfall_amount),
    holdsPlaced: r.holds_placed,
    since: r.updated_at.toISOString(),
  };
}

export function depositsRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      "/deposits/holds",
      {
        config: { scopes: ["deposits:read"] },
        schema: {
          tags: ["deposits"],
          operationId: "listReorgHolds",
          summary: "List reorg holds: credited deposits a reorg removed, with hold and shortfall",
          querystring: Type.Object(
            {
              chain_id: Type.Optional(Type.String({ pattern: "^[0-9]{1,15}$" })),
              after: Type.Optional(
                Type.String({
                  pattern: "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
                }),
              ),
              limit: Limit,
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ holds: Type.Array(ReorgHoldOut) }), ...problemResponses },
        },
      },
      async (request) => {
        const q = request.query;
        await requirePageCursor(q.after, (id) => depositCreditExists(deps.pool, id));
        const rows = await listReorgHolds(deps.pool, {
          ...(q.chain_id !== undefined ? { chainId: Number(q.chain_id) } : {}),
          ...(q.after !== undefined ? { afterId: q.after } : {}),
          limit: pageLimit(q.limit),
        });
        return { holds: rows.map(reorgHoldOut) };
      },
    );

    app.get(
      "/deposits",
      {
        config: { scopes: ["deposits:read"] },
        schema: {
          tags: ["deposits"],
          summary:
            "List deposits, by customer, status, credit state and chain (oldest first, or newest first with order=newest; cursor = last id)",
          querystring: Type.Object(
            {
              customer_id: Type.Optional(CustomerId),
              status: Type.Optional(DepositStatus),
              credit_state: Type.Optional(CreditState("only deposits whose `creditState` is this")),
              chain_id: Type.Optional(Type.String({ pattern: "^[0-9]{1,15}$" })),
              after: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$" })),
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
          response: { 200: Type.Object({ deposits: Type.Array(DepositOut) }), ...problemResponses },
        },
      },
      async (request) => {
        const q = request.query;
        await requirePageCursor(
          q.after,
          async (id) => (await listDeposits(deps.pool, { id, limit: 1 })).length > 0,
        );
        const rows = await listDeposits(deps.pool, {
          ...(q.customer_id !== undefined ? { customerId: q.customer_id } : {}),
          ...(q.status !== undefined ? { status: q.status } : {}),
          ...(q.credit_state !== undefined ? { creditState: q.credit_state } : {}),
          ...(q.chain_id !== undefined ? { chainId: Number(q.chain_id) } : {}),
          ...(q.after !== undefined ? { afterId: q.after } : {}),
          ...(q.order === "newest" ? { newestFirst: true } : {}),
          limit: pageLimit(q.limit),
        });
        return { deposits: rows.map(depositOut) };
      },
    );

    app.get(
      "/deposits/:id",
      {
        config: { scopes: ["deposits:read"] },
        schema: {
          tags: ["deposits"],
          summary: "One deposit",
          params: Type.Object({ id: Type.String({ pattern: "^[0-9]{1,18}$" }) }),
          response: { 200: DepositOut, ...problemResponses },
        },
      },
      async (request) => {
        const [row] = await listDeposits(deps.pool, { id: request.params.id, limit: 1 });
        if (!row) throw new NotFoundError("deposit", request.params.id);
        return depositOut(row);
      },
    );
  };
}
