/**
 * A chain halt opened and resumed as the indexer and an operator record them (indexers/halts.ts),
 * for tests of what a halt holds (docs/chain-halts.md).
 */

import type { Registry } from "prom-client";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { closeHalt, insertHalt } from "../../indexers/halts.js";

export const haltChain = (pool: Pool, chainId: number, reason = "test: deep reorg") =>
  withTransaction(pool, (c) => insertHalt(c, { chainId, reason, details: {} }));

export const resumeChain = (pool: Pool, chainId: number) =>
  withTransaction(pool, (c) => closeHalt(c, chainId, { resumedBy: "test", reason: "test resume" }));

/** The wallet's `custody_signer_held_requests{reason="chain_halted"}` (undefined: not exported). */
export async function heldGauge(registry: Registry, wallet: string): Promise<number | undefined> {
  const m = await registry.getSingleMetric("custody_signer_held_requests")?.get();
  return m?.values.find(
    (v) => v.labels.wallet === wallet.toLowerCase() && v.labels.reason === "chain_halted",
  )?.value;
}
