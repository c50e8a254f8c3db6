/**
 * Deposits: chain facts (native, ERC-20, internal transfers) into customers' deposit addresses, as
 * the indexer recorded them in chain.transfers. Status is the fact's (`seen`, `confirmed`,
 * `orphaned`), plus `credited` once the ledger has booked the deposit credit.
 */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { getAddress } from "viem";
import type { Pool } from "../../foundation/db.js";
import { NotFoundError } from "../errors.js";
import { Amount, CustomerId, Limit, pageLimit, problemResponses } from "../schemas.js";
import type { DepositFactRow } from "../webhooks/depositEvents.js";
import type { V1Deps } from "./deps.js";

// Amount without its `examples` (OpenAPI 3.0 allows none inside anyOf; redocly refuses it).
const BaseUnits = Type.String({ pattern: "^[0-9]{1,78}$", description: "base units" });

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
  detectedAt: Type.String(),
  confirmedAt: Type.Union([Type.String(), Type.Null()]),
});

const DepositStatus = Type.Union(
  ["seen", "confirmed", "orphaned", "credited"].map((s) => Type.Literal(s)),
);

type DepositRow = DepositFactRow & {
  status: string;
  credited: boolean;
  created_at: Date;
  confirmed_at: Date | null;
};

export async function queryDeposits(
  pool: Pool,
  filter: {
    id?: string;
    customerId?: string;
    status?: string;
    chainId?: number;
    afterId?: string;
    limit: number;
  },
): Promise<DepositRow[]> {
  // Credited: the ledger booked the deposit credit for this fact (an orphaned one still shows
  // orphaned, and the status filter `orphaned` lists it, as depositOut reports it).
  const credited = `EXISTS (SELECT 1 FROM ledger.transfers lt
                WHERE lt.kind = 'deposit' AND lt.chain_id = t.chain_id
                  AND lt.tx_hash = t.tx_hash AND lt.position = t.position)`;
  const { rows } = await pool.query<DepositRow>(
    `SELECT * FROM (
       SELECT t.id::text, ca.owner, t.chain_id::text, t.asset, t.to_address, t.from_address,
              t.amount::text, t.tx_hash, t.position, t.block_number::text, t.block_hash, t.status,
              ${credited} AS credited, t.created_at, t.confirmed_at
         FROM chain.transfers t
         JOIN chain.custody_addresses ca
           ON ca.chain_id = t.chain_id AND ca.address = t.to_address AND ca.kind = 'deposit'
        WHERE t.kind IN ('native', 'erc20', 'internal')
          AND ($1::bigint IS NULL OR t.id = $1)
          AND ($2::text IS NULL OR ca.owner = $2)
          AND ($4::bigint IS NULL OR t.chain_id = $4)
          AND ($5::bigint IS NULL OR t.id > $5)
     ) d
     WHERE $3::text IS NULL
        OR ($3 = 'credited' AND d.credited)
        OR ($3 <> 'credited' AND d.status = $3 AND (NOT d.credited OR d.status = 'orphaned'))
     ORDER BY d.id::bigint LIMIT $6`,
    [
      filter.id ?? null,
      filter.customerId ?? null,
      filter.status ?? null,
      filter.chainId ?? null,
      filter.afterId ?? null,
      filter.limit,
    ],
  );
  return rows;
}

export function depositOut(r: DepositRow) {
  return {
    id: r.id,
    customerId: r.owner,
    chainId: Number(r.chain_id),
    assetId: `${r.chain_id}:${r.asset}`,
    asset: getAddress(r.asset),
    address: getAddress(r.to_address),
    from: getAddress(r.from_address),
    amount: r.amount,
    txHash: r.tx_hash,
    position: r.position,
    blockNumber: r.block_number,
    blockHash: r.block_hash,
    status: r.credited && r.status !== "orphaned" ? "credited" : r.status,
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

type ReorgHoldRow = {
  credit_id: string;
  owner: string;
  chain_id: string;
  asset: string;
  to_address: string;
  amount: string;
  tx_hash: string;
  position: string;
  block_number: string;
  orphaned_block: string | null;
  hold_amount: string | null;
  shortfall_amount: string | null;
  holds_placed: number;
  updated_at: Date;
};

/** Credited deposits whose fact a reorg orphaned: their hold (and shortfall) pending (state held). */
export async function queryReorgHolds(
  pool: Pool,
  filter: { chainId?: number; afterId?: string; limit: number },
): Promise<ReorgHoldRow[]> {
  const { rows } = await pool.query<ReorgHoldRow>(
    `SELECT credit_id::text, owner, chain_id::text, asset, to_address, amount::text, tx_hash, position,
            block_number::text, orphaned_block::text, hold_amount::text, shortfall_amount::text,
            holds_placed, updated_at
       FROM ledger.deposit_credits
      WHERE state = 'held'
        AND ($1::bigint IS NULL OR chain_id = $1)
        AND ($2::uuid IS NULL OR credit_id > $2)
      ORDER BY credit_id LIMIT $3`,
    [filter.chainId ?? null, filter.afterId ?? null, filter.limit],
  );
  return rows;
}

function reorgHoldOut(r: ReorgHoldRow) {
  return {
    creditId: r.credit_id,
    customerId: r.owner,
    chainId: Number(r.chain_id),
    assetId: `${r.chain_id}:${r.asset}`,
    address: getAddress(r.to_address),
    amount: r.amount,
    txHash: r.tx_hash,
    position: r.position,
    blockNumber: r.block_number,
    orphanedBlock: r.orphaned_block,
    holdAmount: r.hold_amount,
    shortfallAmount: r.shortfall_amount,
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
        const rows = await queryReorgHolds(deps.pool, {
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
          summary: "List deposits, by customer, status and chain (oldest first, cursor = last id)",
          querystring: Type.Object(
            {
              customer_id: Type.Optional(CustomerId),
              status: Type.Optional(DepositStatus),
              chain_id: Type.Optional(Type.String({ pattern: "^[0-9]{1,15}$" })),
              after: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$" })),
              limit: Limit,
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ deposits: Type.Array(DepositOut) }), ...problemResponses },
        },
      },
      async (request) => {
        const q = request.query;
        const rows = await queryDeposits(deps.pool, {
          ...(q.customer_id !== undefined ? { customerId: q.customer_id } : {}),
          ...(q.status !== undefined ? { status: q.status } : {}),
          ...(q.chain_id !== undefined ? { chainId: Number(q.chain_id) } : {}),
          ...(q.after !== undefined ? { afterId: q.after } : {}),
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
        const [row] = await queryDeposits(deps.pool, { id: request.params.id, limit: 1 });
        if (!row) throw new NotFoundError("deposit", request.params.id);
        return depositOut(row);
      },
    );
  };
}
