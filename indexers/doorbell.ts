/** The `chain-facts` doorbell (docs/contracts.md): queue, job name and data. */
import type { QueueFactory } from "../ops/queues.js";
import { jobId } from "../ops/queues.js";
import type { FactsDoorbell } from "./createIngestor.js";

export const CHAIN_FACTS_QUEUE = "chain-facts";
export const CHAIN_FACTS_JOB = "facts";
/** Block numbers as JSON numbers (block heights fit easily; amounts never travel here). */
export type ChainFactsJob = { chainId: number; fromBlock: number; toBlock: number };

/** Rings the doorbell with a deterministic job id, so a re-rung bell for the same batch is one job. */
export function createFactsDoorbell(queues: QueueFactory): FactsDoorbell {
  const queue = queues.queue<ChainFactsJob>(CHAIN_FACTS_QUEUE);
  return async ({ chainId, fromBlock, toBlock, tipHash }) => {
    await queue.add(
      CHAIN_FACTS_JOB as never,
      { chainId, fromBlock: Number(fromBlock), toBlock: Number(toBlock) },
      { jobId: jobId(CHAIN_FACTS_JOB, chainId, fromBlock, toBlock, tipHash) },
    );
  };
}
