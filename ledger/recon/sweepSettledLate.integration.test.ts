/**
 * A native sweep on a chain without traces (no fact shows the value leaving the deposit address)
 * whose settlement is stamped (`custody.sweeps.settled_at`, its transaction's start) before a run's
 * snapshot and committed after it: that run did not see it, and the next run must still read the
 * swept address again, as it does for facts orphaned or reorgs recorded in such a transaction.
 * Otherwise the address counts at its balance before the sweep (recon.onchain_balances) while the
 * ledger has it swept, an unexplained difference in the deposits until the rotation reaches it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshAddress } from "../../indexers/testing/chain.js";
import type { RunSummary } from "./reconcile.js";
import {
  bookNativeSweep,
  depositAndCredit,
  noRotationRole,
  sweepByBalances,
} from "./testing/nativeSweep.js";
import { mine, startWatchedChain, sync, type WatchedChain } from "./testing/watchedChain.js";

const E18 = 10n ** 18n;
const D = freshAddress(232);
const ELSEWHERE = freshAddress(233);

let w: WatchedChain;

const kinds = (s: RunSummary) => s.breaks.map((b) => `${b.type} ${b.key}`);

beforeAll(async () => {
  w = await startWatchedChain({
    config: { traces: false, confirmations: { kind: "blocks", blocks: 2 } },
    deposits: [{ address: D, owner: "alice" }],
  });
});

afterAll(async () => {
  await w?.stop();
});

describe("a native sweep settled in a transaction that spanned a run's snapshot", () => {
  it("has its address read again by the next run: no break", async () => {
    const { ctx, chain } = w;
    const role = noRotationRole(w);
    await depositAndCredit(w, D, E18);
    expect(kinds(await role.run({ chain }))).toEqual([]);

    // The sweep, as the chain shows it without traces.
    const r = await sweepByBalances(w, { address: D, amount: E18, to: ELSEWHERE });
    expect(r.status).toBe("0x1");
    const B = Number(r.blockNumber);
    await mine(w, 3);
    await sync(w);
    // A run before the settlement commits (below the sweep, as the role's grace period puts it).
    const before = await role.run({ chain, block: B - 2 });
    expect(kinds(before)).toEqual([]);
    const { rows } = await ctx.db.pool.query<{ snapshot_at: Date }>(
      "SELECT snapshot_at FROM recon.runs WHERE id = $1",
      [before.runId],
    );
    // Settled as the signer settles it, in a transaction that started a second before that run's
    // snapshot (its settled_at) and committed after it.
    await bookNativeSweep(w, {
      sweepId: "s-late",
      address: D,
      amount: E18,
      receipt: r,
      salt: `0x${"2".padStart(64, "0")}`,
      settledAt: new Date(rows[0]!.snapshot_at.getTime() - 1000),
    });

    const next = await role.run({ chain });
    expect(next.block).toBeGreaterThanOrEqual(B);
    expect(next.mode).toBe("incremental");
    expect(kinds(next)).toEqual([]);
    expect(kinds(await role.run({ chain, full: true }))).toEqual([]);
  });
});
