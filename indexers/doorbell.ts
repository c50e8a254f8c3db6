/** The `chain-facts` doorbell (docs/contracts.md): queue, job name and data. */
import type { QueueFactory } from "../foundation/queues.js";
import { jobId } from "../foundation/queues.js";
import type { FactsDoorbell } from "./createIngestor.js";

export const CHAIN_FACTS_QUEUE = "chain-facts";
export const CHAIN_FACTS_JOB = "facts";
/** Block numbers as JSON numbers (block heights fit easily; amounts never travel here). */
export type ChainFactsJob = { chainId: number; fromBlock: number; toBlock: number };

/** Rings the doorbell with a deterministic job id, so a re-rung bell for the same batch is one job. */
export function createFactsDoorbell(queues: QueueFactory): FactsDoorbell {
  // ring(): never blocks ingestion on Redis; a lost bell is covered by crediting's periodic sweep.
  return async ({ chainId, fromBlock, toBlock, tipHash }) => {
    await queues.ring<ChainFactsJob>(CHAIN_FACTS_QUEUE, {
      name: CHAIN_FACTS_JOB,
      data: { chainId, fromBlock: Number(fromBlock), toBlock: Number(toBlock) },
      opts: { jobId: jobId(CHAIN_FACTS_JOB, chainId, fromBlock, toBlock, tipHash) },
    });
  };
}
