/**
 * Proof of liabilities for customers: their leaf, salt and Merkle-sum path for the latest
 * confirmed attestation of an asset (ledger/attest). The customer checks it against the root that
 * dApps read from the chain or the Ponder/subgraph GraphQL (`custody-node por verify`, or the
 * static page ops/por/verifier.html).
 */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { liabilitiesProof } from "../../ledger/attest/proofs.js";
import { resolveAsset, resolveChain } from "../chainStatus.js";
import { NotFoundError } from "../errors.js";
import { AssetId, CustomerId, problemResponses } from "../schemas.js";
import type { V1Deps } from "./deps.js";

const Hex32 = Type.String({ pattern: "^0x[0-9a-f]{64}$" });
const Uint = Type.String({ pattern: "^[0-9]+$", description: "base units, decimal" });

const LiabilitiesProofOut = Type.Object({
  version: Type.Literal(1),
  customerId: Type.String(),
  salt: Type.String({ ...Hex32, description: "the customer's secret salt for this asset" }),
  balance: Type.String({ ...Uint, description: "the customer's balance in the attested tree" }),
  path: Type.Array(
    Type.Object({
      side: Type.Union([Type.Literal("left"), Type.Literal("right")], {
        description: "which side the sibling is on",
      }),
      hash: Hex32,
      sum: Uint,
    }),
    { description: "siblings from the leaf up to the root" },
  ),
  chainId: Type.Integer(),
  assetId: Type.String(),
  asset: Type.String({ description: "token address (zero address: native)" }),
  block: Type.String({ description: "the attested (final) block" }),
  contract: Type.String({ description: "the ReservesAttestor that emitted the attestation" }),
  txHash: Type.String({ description: "the attestation transaction" }),
  attested: Type.Object(
    {
      reserves: Uint,
      liabilities: Uint,
      liabilitiesRoot: Hex32,
      addressesRoot: Hex32,
      reportHash: Hex32,
    },
    { description: "what custody attested; verify against the chain, not against these" },
  ),
});

export function proofsRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      "/customers/:customerId/liabilities-proof",
      {
        config: { scopes: ["ledger:read"] },
        schema: {
          tags: ["customers"],
          operationId: "getLiabilitiesProof",
          summary:
            "The customer's leaf, salt and Merkle-sum path in the latest attested liabilities tree of an asset",
          params: Type.Object({ customerId: CustomerId }),
          querystring: Type.Object({ asset: AssetId }, { additionalProperties: false }),
          response: { 200: LiabilitiesProofOut, ...problemResponses },
        },
      },
      async (request) => {
        const [chainRef, token] = request.query.asset.split(":") as [string, string];
        const chain = resolveChain(deps.common.config, chainRef, "querystring.asset");
        const asset = resolveAsset(deps.common.config, chain, token, "querystring.asset");
        const found = await liabilitiesProof(deps.pool, {
          customerId: request.params.customerId,
          assetId: asset.assetId,
        });
        if (!found.found)
          throw new NotFoundError(
            found.reason === "no_attestation"
              ? "confirmed attestation of asset"
              : "leaf in the latest attestation for customer",
            found.reason === "no_attestation" ? asset.assetId : request.params.customerId,
          );
        return found.proof;
      },
    );
  };
}
