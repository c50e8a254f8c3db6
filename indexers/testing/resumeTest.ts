/**
 * The `chains resume` tests' chain: confirmations 2 blocks, finality 4, reorg window 8, no traces,
 * one watched deposit address (D1); and the operator's resume of it. Test-only.
 */
import { createEvmAdapter, type EvmAdapter } from "../../chains/index.js";
import { resumeChain } from "../resume.js";
import { freshAddress } from "./chain.js";
import { type IndexerTest, startIndexerTest } from "./indexerTest.js";

export const D1 = freshAddress(1);

export function startResumeTest(options: { proxies?: number } = {}): Promise<IndexerTest> {
  return startIndexerTest({
    chain: {
      config: {
        confirmations: { kind: "blocks", blocks: 2 },
        finality: { kind: "blocks", blocks: 4 },
        reorgWindow: 8,
        traces: false,
      },
    },
    ...options,
    watch: [{ address: D1 }],
  });
}

/**
 * The operator's resume of the halted chain (alice, "deep reorg confirmed"), through `adapter`
 * (the chain's own by default): its answer or error.
 */
export function resumeCaught(
  t: IndexerTest,
  acceptReorg: string | null,
  adapter: EvmAdapter = createEvmAdapter(t.chain, { common: t.ctx.common }),
): Promise<unknown> {
  return resumeChain({
    pool: t.ctx.db.pool,
    adapter,
    chain: t.chain,
    by: "alice",
    reason: "deep reorg confirmed",
    acceptReorg,
  }).catch((error: unknown) => error);
}
