/**
 * A stop while a reconciliation run waits on the node. The service's stop (ops/start.ts) aborts
 * the shared shutdown signal first, the RPC client's, and then stops the roles: the run's read fails
 * with the abort's reason a moment before the role's own stop. That is the stop, not a failed
 * reconciliation: an error line there would page on every deploy (the signer had the same race,
 * signer/stopMidTick.integration.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createShutdown } from "../../foundation/shutdown.js";
import { freshAddress } from "../../indexers/testing/chain.js";
import { capturedLogger, LOG_LEVELS } from "../../ops/testing/logs.js";
import { waitFor } from "../../ops/testing/wait.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { type SlowNodeChain, startSlowNodeChain } from "./testing/slowNodeChain.js";

let t: SlowNodeChain;

beforeAll(async () => {
  // Custody addresses, so a run reads on-chain balances (through the proxy).
  t = await startSlowNodeChain(([hot]) => [
    { address: hot!, kind: "hot", owner: "hot-1" },
    { address: freshAddress(403), owner: "alice" },
  ]);
  await t.mineAndSync(10);
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

describe("a stop while a reconciliation run waits on the node", () => {
  it("is logged as the stop, not as a failed reconciliation", async () => {
    const { logger, lines } = capturedLogger();
    const shutdown = createShutdown();
    // Every answer of the node 2 s late: the role's first run waits on its reads.
    t.proxy.setDelay(2_000);
    const asked = t.proxy.calls("eth_getBlockByNumber") + t.proxy.calls("eth_call");
    const role = await t.startRole(sweepReader, { ...t.ctx.common, logger, shutdown });
    try {
      await waitFor(
        "a read of the run sent",
        async () => t.proxy.calls("eth_getBlockByNumber") + t.proxy.calls("eth_call") > asked,
      );
      await shutdown.kill("stop");
      await waitFor("the run's read aborted", async () =>
        lines.some(
          (l) =>
            l.msg === "reconciliation run interrupted by stop" ||
            l.msg === "reconciliation run failed",
        ),
      );
    } finally {
      await role.stop();
      t.proxy.setDelay(0);
    }
    // Before the fix: ["reconciliation run failed", "reconciliation failed"] (err "stop").
    expect(lines.filter((l) => l.level >= LOG_LEVELS.error).map((l) => l.msg)).toEqual([]);
    expect(lines.map((l) => l.msg)).toContain("reconciliation run interrupted by stop");
    // Not complete, and said why; not counted failed (ReconciliationFailing reads the count).
    const { rows } = await t.ctx.db.pool.query<{ status: string; error: string }>(
      "SELECT status, error FROM recon.runs WHERE chain_id = $1",
      [t.chain.chainId],
    );
    expect(rows).toEqual([
      { status: "failed", error: expect.stringMatching(/^interrupted by the process's stop: /) },
    ]);
    const runs = await t.ctx.common.metrics.registry
      .getSingleMetric("custody_recon_runs_total")
      ?.get();
    expect(runs).toBeDefined();
    const failed = runs!.values.filter((v) => v.labels.result === "failed");
    expect(failed.reduce((sum, v) => sum + v.value, 0)).toBe(0);
  });
});
