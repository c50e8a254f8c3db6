/**
 * The `indexer` role: one ingestor per chain this process serves, the `chain-facts` doorbell,
 * and a readiness check per chain (head advancing, lag within `maxLagBlocks`, loop not stuck).
 */
import { createEvmAdapter } from "../chains/index.js";
import type { RoleDefinition } from "../foundation/roles.js";
import { createIngestor, type Ingestor, type IngestorOptions } from "./createIngestor.js";
import { createFactsDoorbell } from "./doorbell.js";
import { indexerHealthCheck } from "./health.js";

/**
 * The role with its ingestors' options: production runs the defaults (`indexerRole`); a test can
 * shorten the intervals it would otherwise wait out.
 */
export function createIndexerRole(options: IngestorOptions = {}): RoleDefinition {
  return {
    name: "indexer",
    description: "chain ingestors: blocks, native/ERC-20/internal transfers, reorgs, confirmations",
    async start(ctx) {
      const doorbell = createFactsDoorbell(ctx.queues);
      const ingestors: Ingestor[] = [];
      for (const chain of ctx.chains) {
        const adapter = createEvmAdapter(chain, { common: ctx.common });
        const ingestor = await createIngestor({
          common: ctx.common,
          pool: ctx.pool,
          adapter,
          doorbell,
          options,
        });
        ctx.health.add(indexerHealthCheck({ chain, ingestor }));
        ingestor.start();
        ingestors.push(ingestor);
      }
      return {
        async stop() {
          await Promise.all(ingestors.map((i) => i.stop()));
        },
      };
    },
  };
}

export const indexerRole: RoleDefinition = createIndexerRole();
