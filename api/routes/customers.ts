/** Customers: their deposit addresses (and, as the ledger lands, balances and transfers). */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { getAddress } from "viem";
import { CustomerId, problemResponses } from "../schemas.js";
import type { V1Deps } from "../v1.js";

const DepositAddressOut = Type.Object({
  chainId: Type.Integer(),
  chain: Type.String(),
  address: Type.String(),
  createdAt: Type.String(),
});

export function customersRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
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
