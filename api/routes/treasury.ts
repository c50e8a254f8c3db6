/**
 * POST /v1/treasury/moves (admin): book an operator's own move — a hot wallet's funding or
 * defunding, or gas it paid for an operator transaction such as the factory deploy — against its
 * chain fact (ledger/treasury.ts). Idempotent per chain id + tx hash; audited as the key's owner.
 */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { bookTreasuryMove, TREASURY_MOVES, TreasuryMoveError } from "../../ledger/index.js";
import { callerOf } from "../auth.js";
import { Address, Amount, ChainRef, problemResponses } from "../schemas.js";
import type { V1Deps } from "../v1.js";

const Text = Type.String({ minLength: 1, maxLength: 500, pattern: "^[^\\u0000]*$" });

export function treasuryRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      "/treasury/moves",
      {
        config: { scopes: ["admin"] },
        schema: {
          tags: ["treasury"],
          operationId: "bookTreasuryMove",
          summary: "Book a hot wallet's funding, defunding, or operator gas against its chain fact",
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
          { common: deps.common, pool: deps.pool, ledger: deps.ledger },
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
