/** Customers: their deposit addresses (and, as the ledger lands, balances and transfers). */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { getAddress } from "viem";
import { allocateDepositAddress } from "../../signer/deposit-addresses/index.js";
import { appendAudit } from "../audit.js";
import { callerOf } from "../auth.js";
import { resolveChain } from "../chainStatus.js";
import { ChainRef, CustomerId, IdempotencyHeaders, problemResponses } from "../schemas.js";
import type { V1Deps } from "../v1.js";

const DepositAddressOut = Type.Object({
  chainId: Type.Integer(),
  chain: Type.String(),
  address: Type.String(),
  createdAt: Type.String(),
});

export function customersRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      "/customers/:customerId/deposit-addresses",
      {
        config: { scopes: ["deposits:write"] },
        schema: {
          tags: ["customers"],
          summary: "Allocate (or return) the customer's deposit address on a chain",
          security: [{ apiKey: [] }],
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
        const allocated = await allocateDepositAddress(
          { common: deps.common, pool: deps.pool },
          { chainId: chain.chainId, customerId: request.params.customerId },
        );
        if (allocated.created)
          await appendAudit(deps.pool, {
            actor: callerOf(request).owner,
            action: "deposit_address.allocated",
            entityType: "customer",
            entityId: request.params.customerId,
            details: { chain_id: chain.chainId, address: allocated.address },
          });
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
          security: [{ apiKey: [] }],
          params: Type.Object({ customerId: CustomerId }),
          response: {
            200: Type.Object({ addresses: Type.Array(DepositAddressOut) }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const { rows } = await deps.pool.query<{
          chain_id: string;
          address: string;
          created_at: Date;
        }>(
          `SELECT chain_id::text, address, created_at FROM chain.custody_addresses
            WHERE kind = 'deposit' AND owner = $1 ORDER BY chain_id, created_at`,
          [request.params.customerId],
        );
        const keys = new Map(deps.common.config.chains.map((c) => [c.chainId, c.key]));
        return {
          addresses: rows.map((r) => ({
            chainId: Number(r.chain_id),
            chain: keys.get(Number(r.chain_id)) ?? String(r.chain_id),
            address: getAddress(r.address),
            createdAt: r.created_at.toISOString(),
          })),
        };
      },
    );
  };
}
