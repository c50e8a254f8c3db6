/**
 * The sequence in which a break only the CLI's run found was resolved on no evidence: the CLI's
 * full run finds it; the role's next run stands below the CLI's block (its grace period behind the
 * final block the CLI used), and the run after stands at or above it, continuing from the run below
 * (not from the CLI's). The break must stay open throughout, and that last run must find it again.
 */

import { expect } from "vitest";
import type { ChainConfig } from "../../../chains/index.js";
import type { Pool } from "../../../foundation/db.js";
import { breakIdentity, breakStatesOf } from "../breakStates.js";
import type { Reconciler } from "../reconcile.js";
import type { Break } from "../types.js";

/** Runs the sequence for the break `key` of `type`; returns the last run's finding of it. */
export async function expectFoundAgainBehindCli(args: {
  pool: Pool;
  chain: ChainConfig;
  /** The role's reconciler, and the operator's (the CLI's) on the same database. */
  role: Reconciler;
  operator: Reconciler;
  /** Where the role's next run stands: its finalBlock, read before the CLI's run. */
  behind: number;
  /** Mines past the confirmation rule and ingests (the role's run after needs a newer block). */
  settle: () => Promise<void>;
  key: string;
  type: Break["type"];
}): Promise<Break | undefined> {
  const { pool, chain, role, operator } = args;
  // The operator's (or the nightly) full run reads every fact, entry and deposit address.
  const cli = await operator.run({ chain, full: true });
  const found = cli.breaks.find((b) => b.key === args.key);
  expect(found?.type).toBe(args.type);
  const identity = breakIdentity(chain.chainId, found!);
  const state = async () => (await breakStatesOf(pool, [identity])).get(identity)?.state;
  expect(await state()).toBe("open");

  const below = await role.run({ chain, block: args.behind });
  expect(below.mode).toBe("incremental");
  expect(below.block).toBeLessThan(cli.block);
  expect(await state()).toBe("open");

  await args.settle();
  const next = await role.run({ chain });
  expect(next.mode).toBe("incremental");
  expect(next.block).toBeGreaterThanOrEqual(cli.block);
  expect(await state()).toBe("open");
  const again = next.breaks.find((b) => b.key === args.key);
  expect(again?.type).toBe(args.type);
  return again;
}
