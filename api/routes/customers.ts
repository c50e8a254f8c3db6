/** Customers: their deposit addresses (and, as the ledger lands, balances and transfers). */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { getAddress } from "viem";
import { allocateDepositAddress, depositAddressesOf } from "../../indexers/index.js";
import { accountTransferSeqExists } from "../../ledger/index.js";
import { callerOf } from "../auth.js";
import { assetsOf, resolveAsset, resolveChain } from "../chainStatus.js";
import {
  AssetId,
  ChainRef,
  CustomerId,
  IdempotencyHeaders,
  Int64Text,
  int64Text,
  Limit,
  pageLimit,
  problemResponses,
  requirePageCursor,
} from "../schemas.js";
import type { V1Deps } from "./deps.js";

const DepositAddressOut = Type.Object({
  chainId: Type.Integer(),
  chain: Type.String(),
  address: Type.String(),
  createdAt: Type.String(),
});

const BalanceOut = Type.Object({
  assetId: Type.String(),
  chainId: Type.Integer(),
  symbol: Type.String(),
  decimals: Type.Integer(),
  posted: Type.String({ description: "credits posted − debits posted" }),
  pending: Type.String({
    description:
      "pending debits: held for withdrawals in flight, and by reorg holds (a credited deposit a reorg removed, held until it confirms again or its block is final without it: see GET /v1/deposits/holds)",
  }),
  available: Type.String({
    description:
      "posted − pending: what the customer can withdraw (withdrawals are refused while a reorg shortfall blocks the customer)",
  }),
});

const TransferOut = Type.Object({
  id: Type.String(),
  seq: Type.String(),
  type: Type.String(),
  kind: Type.String(),
  direction: Type.String({ description: "debit | credit, from this account's side" }),
  amount: Type.String(),
  postedDelta: Type.String(),
  pendingDelta: Type.String(),
  pendingId: Type.Union([Type.String(), Type.Null()]),
  chainRef: Type.Union([
    Type.Object({ chainId: Type.Integer(), txHash: Type.String(), position: Type.String() }),
    Type.Null(),
  ]),
  memo: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
});

export function customersRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      "/customers/:customerId/balances",
      {
        config: { scopes: ["ledger:read", "deposits:read", "withdrawals:write"] },
        schema: {
          tags: ["customers"],
          summary: "A customer's balances per listed asset (posted, pending holds, available)",
          params: Type.Object({ customerId: CustomerId }),
          response: { 200: Type.Object({ balances: Type.Array(BalanceOut) }), ...problemResponses },
        },
      },
      async (request) => {
        const name = `user:${request.params.customerId}`;
        const balances = await Promise.all(
          assetsOf(deps.common.config).map(async (a) => {
            const account = await deps.ledger.getAccount({ assetId: a.assetId, name });
            const posted = account ? account.creditsPosted - account.debitsPosted : 0n;
            const pending = account?.debitsPending ?? 0n;
            return {
              assetId: a.assetId,
              chainId: a.chainId,
              symbol: a.symbol,
              decimals: a.decimals,
              posted: posted.toString(),
              pending: pending.toString(),
              available: (account?.available ?? 0n).toString(),
            };
          }),
        );
        return { balances };
      },
    );

    app.get(
      "/customers/:customerId/transfers",
      {
        config: { scopes: ["ledger:read"] },
        schema: {
          tags: ["customers"],
          summary: "Ledger transfers of the customer's account in one asset (newest first)",
          params: Type.Object({ customerId: CustomerId }),
          querystring: Type.Object(
            {
              asset: AssetId,
              cursor: Type.Optional(Int64Text("nextCursor of the last page")),
              limit: Limit,
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              transfers: Type.Array(TransferOut),
              nextCursor: Type.Union([Type.String(), Type.Null()]),
            }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const [chainRef, token] = request.query.asset.split(":") as [string, string];
        const chain = resolveChain(deps.common.config, chainRef, "querystring.asset");
        const asset = resolveAsset(deps.common.config, chain, token, "querystring.asset");
        const ref = { assetId: asset.assetId, name: `user:${request.params.customerId}` };
        const account = await deps.ledger.getAccount(ref);
        const cursor = request.query.cursor
          ? int64Text(request.query.cursor, "querystring.cursor")
          : undefined;
        // A seq of no transfer of this account (another customer's, cut short, past the end)
        // would page from an arbitrary place, or to the empty page that says the list ended.
        await requirePageCursor(
          cursor,
          async (seq) =>
            account !== undefined && (await accountTransferSeqExists(deps.pool, account.id, seq)),
          { field: "querystring.cursor", send: "the previous page's nextCursor" },
        );
        if (!account) return { transfers: [], nextCursor: null };
        const page = await deps.ledger.accountTransfers(ref, {
          limit: pageLimit(request.query.limit, 50),
          ...(cursor ? { cursor } : {}),
        });
        return {
          transfers: page.transfers.map((t) => ({
            id: t.id,
            seq: t.seq.toString(),
            type: t.type,
            kind: t.kind,
            direction: t.debitAccountId === account.id ? "debit" : "credit",
            amount: t.amount.toString(),
            postedDelta: t.postedDelta.toString(),
            pendingDelta: t.pendingDelta.toString(),
            pendingId: t.pendingId,
            chainRef: t.chainRef,
            memo: t.memo,
            createdAt: t.createdAt.toISOString(),
          })),
          nextCursor: page.nextCursor,
        };
      },
    );

    app.post(
      "/customers/:customerId/deposit-addresses",
      {
        config: { scopes: ["deposits:write"] },
        schema: {
          tags: ["customers"],
          summary: "Allocate (or return) the customer's deposit address on a chain",
          headers: IdempotencyHeaders,
          params: Type.Object({ customerId: CustomerId }),
          body: Type.Object({ chain: ChainRef }, { additionalProperties: false }),
          response: {
            200: Type.Object({ ...DepositAddressOut.properties, created: Type.Boolean() }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const chain = resolveChain(deps.common.config, request.body.chain, "body.chain");
        // The audit entry commits with the allocation (a created address is never unaudited).
        const allocated = await allocateDepositAddress(
          { common: deps.common, pool: deps.pool },
          {
            chainId: chain.chainId,
            customerId: request.params.customerId,
            actor: callerOf(request).owner,
          },
        );
        return {
          chainId: chain.chainId,
          chain: chain.key,
          address: allocated.address,
          createdAt: allocated.createdAt.toISOString(),
          created: allocated.created,
        };
      },
    );

    app.get(
      "/customers/:customerId/deposit-addresses",
      {
        config: { scopes: ["deposits:read"] },
        schema: {
          tags: ["customers"],
          summary: "A customer's deposit addresses",
          params: Type.Object({ customerId: CustomerId }),
          response: {
            200: Type.Object({ addresses: Type.Array(DepositAddressOut) }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const rows = await depositAddressesOf(deps.pool, request.params.customerId);
        const keys = new Map(deps.common.config.chains.map((c) => [c.chainId, c.key]));
        return {
          addresses: rows.map((r) => ({
            chainId: r.chainId,
            chain: keys.get(r.chainId) ?? String(r.chainId),
            address: getAddress(r.address),
            createdAt: r.createdAt.toISOString(),
          })),
        };
      },
    );
  };
}
