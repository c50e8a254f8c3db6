/**
 * GET /v1/treasury/moves (admin): the bookings made so far, oldest first, from their audit rows
 * (who, why, wallet, asset and the transfers booked; cursor = the audit row id).
 * POST /v1/treasury/moves (admin): book an operator's own move — a hot wallet's funding or
 * defunding, or gas it paid for an operator transaction such as the factory deploy — against its
 * chain fact (ledger/treasury.ts). Idempotent per chain id + tx hash; audited as the key's owner.
 */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { getAddress } from "viem";
import { type AuditEntry, auditEntryExists, listAudit } from "../../foundation/audit.js";
import type { Pool } from "../../foundation/db.js";
import { bookTreasuryMove, TREASURY_MOVES, TreasuryMoveError } from "../../ledger/index.js";
import { signerTransactions } from "../../signer/index.js";
import { callerOf } from "../auth.js";
import {
  Address,
  Amount,
  BaseUnits,
  ChainRef,
  IdempotencyHeaders,
  Limit,
  pageLimit,
  problemResponses,
  requirePageCursor,
} from "../schemas.js";
import type { V1Deps } from "./deps.js";

// Amount without its `examples` (OpenAPI 3.0 allows none inside anyOf; redocly refuses it).

const Text = Type.String({ minLength: 1, maxLength: 500, pattern: "^[^\\u0000]*$" });

const TreasuryMoveOut = Type.Object({
  id: Type.String({ description: "the booking's audit row id (the list's cursor)" }),
  move: Type.String({
    description: "fund | defund | gas | unbook (a booking reversed by `treasury unbook`)",
  }),
  chainId: Type.Integer(),
  txHash: Type.String(),
  wallet: Type.String(),
  assetId: Type.String({ description: "the asset moved (gas: the chain's native asset)" }),
  amount: Type.Union([BaseUnits, Type.Null()], {
    description: "base units moved (fund/defund) or gas paid (gas); null if unknown",
  }),
  fee: Type.Union([BaseUnits, Type.Null()], { description: "gas booked with a defund" }),
  factsIndexed: Type.Boolean(),
  by: Type.String(),
  reason: Type.String(),
  at: Type.String(),
});

/** What `bookTreasuryMove` records in a treasury audit row's details. */
type TreasuryDetails = {
  reason?: string;
  wallet?: string;
  asset?: string;
  facts_indexed?: boolean;
  transfers?: { kind: string; amount: string }[];
};

/** The treasury bookings' audit rows (entity `treasury`, actions `treasury.*`), oldest first. */
export function listTreasuryMoves(
  pool: Pool,
  filter: { afterId?: string; limit: number },
): Promise<AuditEntry[]> {
  return listAudit(pool, { entityType: "treasury", actionPrefix: "treasury.", ...filter });
}

function treasuryMoveOut(entry: AuditEntry) {
  const r = { ...entry, details: entry.details as TreasuryDetails };
  const [chainId, txHash] = r.entityId.split(":");
  const move = r.action.slice("treasury.".length);
  const transfers = r.details.transfers ?? [];
  const value = transfers.find((t) => t.kind === (move === "gas" ? "fee" : "treasury"));
  const fee = move === "defund" ? transfers.find((t) => t.kind === "fee") : undefined;
  return {
    id: r.id,
    move,
    chainId: Number(chainId),
    txHash: txHash ?? "",
    wallet: r.details.wallet ? getAddress(r.details.wallet) : "",
    assetId:
      move === "gas"
        ? `${chainId}:0x0000000000000000000000000000000000000000`
        : (r.details.asset ?? ""),
    amount: value?.amount ?? null,
    fee: fee?.amount ?? null,
    factsIndexed: r.details.facts_indexed ?? false,
    by: r.actor,
    reason: r.details.reason ?? "",
    at: r.at.toISOString(),
  };
}

export function treasuryRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      "/treasury/moves",
      {
        config: { scopes: ["admin"] },
        schema: {
          tags: ["treasury"],
          operationId: "listTreasuryMoves",
          summary: "List treasury bookings: who moved what, why (oldest first, cursor = last id)",
          querystring: Type.Object(
            {
              after: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$" })),
              limit: Limit,
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({ moves: Type.Array(TreasuryMoveOut) }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const q = request.query;
        await requirePageCursor(q.after, (id) => auditEntryExists(deps.pool, id));
        const rows = await listTreasuryMoves(deps.pool, {
          ...(q.after !== undefined ? { afterId: q.after } : {}),
          limit: pageLimit(q.limit),
        });
        return { moves: rows.map(treasuryMoveOut) };
      },
    );
    app.post(
      "/treasury/moves",
      {
        config: { scopes: ["admin"] },
        schema: {
          tags: ["treasury"],
          operationId: "bookTreasuryMove",
          summary: "Book a hot wallet's funding, defunding, or operator gas against its chain fact",
          headers: IdempotencyHeaders,
          body: Type.Object(
            {
              move: Type.Union(TREASURY_MOVES.map((m) => Type.Literal(m))),
              chain: ChainRef,
              txHash: Type.String({ pattern: "^0x[0-9a-fA-F]{64}$" }),
              wallet: Address,
              token: Type.Optional(Address),
              amount: Type.Optional(Amount),
              fee: Type.Optional(Amount),
              reason: Text,
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              move: Type.String(),
              chainId: Type.Integer(),
              txHash: Type.String(),
              factsIndexed: Type.Boolean(),
              transfers: Type.Array(
                Type.Object({
                  id: Type.String(),
                  kind: Type.String(),
                  amount: Amount,
                  status: Type.String(),
                }),
              ),
            }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const b = request.body;
        const chain = deps.common.config.chains.find(
          (c) => c.key === b.chain || String(c.chainId) === b.chain,
        );
        if (!chain) throw new TreasuryMoveError(`treasury ${b.move}`, `unknown chain "${b.chain}"`);
        const booking = await bookTreasuryMove(
          { common: deps.common, pool: deps.pool, ledger: deps.ledger, signerTransactions },
          {
            move: b.move,
            chainId: chain.chainId,
            txHash: b.txHash,
            wallet: b.wallet,
            ...(b.token ? { token: b.token } : {}),
            ...(b.amount !== undefined ? { amount: BigInt(b.amount) } : {}),
            ...(b.fee !== undefined ? { fee: BigInt(b.fee) } : {}),
            by: callerOf(request).owner,
            reason: b.reason,
          },
        );
        return {
          ...booking,
          transfers: booking.transfers.map((t) => ({ ...t, amount: t.amount.toString() })),
        };
      },
    );
  };
}
