/** GET /v1/chains (with indexer head and lag) and GET /v1/assets. */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { SCOPES } from "../apiKeys.js";
import { assetsOf, chainStatuses } from "../chainStatus.js";
import { problemResponses } from "../schemas.js";
import type { V1Deps } from "./deps.js";

const anyScope = SCOPES;
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

const ChainOut = Type.Object({
  key: Type.String(),
  chainId: Type.Integer(),
  name: Type.String(),
  confirmations: Type.Object({ kind: Type.String(), blocks: Type.Optional(Type.Integer()) }),
  head: Nullable(
    Type.String({
      description:
        "RPC head block: the highest any of the chain's endpoints answered (each asked with a short timeout); null when none answered",
    }),
  ),
  headEndpoint: Nullable(
    Type.String({
      description: "the endpoint that answered `head` (scheme, host and port only)",
    }),
  ),
  indexed: Nullable(Type.String({ description: "the indexer's last stored block" })),
  lag: Nullable(Type.String()),
  maxLagBlocks: Type.Integer(),
  halted: Type.Union(
    [
      Type.Object({
        since: Type.String({ description: "when the halt was recorded (ISO 8601)" }),
        reason: Type.String(),
      }),
      Type.Null(),
    ],
    {
      description:
        "the open halt: a reorg reached a final block and nothing is ingested until an operator resumes the chain (`custody-node chains resume`); null when not halted",
    },
  ),
  healthy: Type.Boolean({
    description: "not halted, RPC reachable and the indexer within maxLagBlocks",
  }),
});

const AssetOut = Type.Object({
  assetId: Type.String(),
  chainId: Type.Integer(),
  chain: Type.String(),
  address: Type.String(),
  symbol: Type.String(),
  decimals: Type.Integer(),
  native: Type.Boolean(),
});

export function chainsRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      "/chains",
      {
        config: { scopes: anyScope },
        schema: {
          tags: ["chains"],
          summary: "Configured chains with RPC head, indexed block and lag",
          response: { 200: Type.Object({ chains: Type.Array(ChainOut) }), ...problemResponses },
        },
      },
      async () => {
        const statuses = await chainStatuses(deps.common.config, deps.pool, deps.heads);
        return {
          chains: statuses.map((s) => ({
            key: s.key,
            chainId: s.chainId,
            name: s.name,
            confirmations: s.confirmations,
            head: s.head?.toString() ?? null,
            headEndpoint: s.headEndpoint,
            indexed: s.indexed?.toString() ?? null,
            lag: s.lag?.toString() ?? null,
            maxLagBlocks: s.maxLagBlocks,
            halted: s.halted && { since: s.halted.since.toISOString(), reason: s.halted.reason },
            // A halted chain's lag is small at first (its checkpoint stopped at the halt): never
            // healthy whatever the lag says.
            healthy: s.halted === null && s.lag !== null && s.lag <= BigInt(s.maxLagBlocks),
          })),
        };
      },
    );

    app.get(
      "/assets",
      {
        config: { scopes: anyScope },
        schema: {
          tags: ["chains"],
          summary: "Listed assets (native and tokens) per chain",
          response: { 200: Type.Object({ assets: Type.Array(AssetOut) }), ...problemResponses },
        },
      },
      async () => ({ assets: assetsOf(deps.common.config) }),
    );
  };
}
