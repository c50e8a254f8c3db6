/**
 * The reconciler role's break gauges (`custody_recon_breaks`, `custody_recon_breaks_acknowledged`,
 * what ReconciliationBreaksOpen reads) say what the stored break states say at each scrape, not
 * what this process's own latest run found: a break the CLI's run found (an operator's, the
 * nightly `--full`) pages at the next scrape instead of after the role's next run, and an
 * operator's acknowledgement stops the page at once. A scrape while Postgres cannot answer keeps
 * the figures it had, in time (a lost read is no evidence the breaks are gone). The real role, the
 * real CLI, real Postgres and anvil.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshAddress, sendAndMine } from "../../indexers/testing/chain.js";
import { chainCli } from "../../ops/testing/process.js";
import { waitFor } from "../../ops/testing/wait.js";
import { type SlowNodeChain, startSlowNodeChain } from "./testing/slowNodeChain.js";

const CHAIN_ID = 31337;
const BOB = freshAddress(402);

let t: SlowNodeChain;

const runs = async () =>
  (
    await t.ctx.db.pool.query<{ id: string; status: string }>(
      "SELECT id::text, status FROM recon.runs WHERE chain_id = $1 ORDER BY id",
      [CHAIN_ID],
    )
  ).rows;

/** The figure /metrics shows (the process's registry, as api/app.ts serves it) for a break type. */
async function scraped(name: string, type: string): Promise<number | undefined> {
  const text = await t.ctx.common.metrics.registry.metrics();
  const line = text
    .split("\n")
    .find(
      (l) =>
        l.startsWith(`${name}{`) &&
        l.includes(`chain_id="${CHAIN_ID}"`) &&
        l.includes(`type="${type}"`),
    );
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

beforeAll(async () => {
  t = await startSlowNodeChain(([hot]) => [
    { address: hot!, kind: "hot", owner: "hot-1" },
    { address: BOB, owner: "bob" },
  ]);
  await t.mineAndSync(10);
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

describe("the reconciler role's break gauges", () => {
  it("show a break the CLI's run found, and its acknowledgement, before the role runs again; a scrape Postgres cannot answer keeps them", async () => {
    // 30 s blocks: the role's grace period is one block.
    const handle = await t.startRole();
    const cli = chainCli({ databaseUrl: t.ctx.db.url, chain: t.chain });
    try {
      // The role's first pass (at start); its next one is a minute away (RECON_INTERVAL_MS).
      await waitFor(
        "the role's first run",
        async () => (await runs()).some((r) => r.status === "completed"),
        { timeoutMs: 30_000, everyMs: 50 },
      );
      expect(await scraped("custody_recon_breaks", "missing_credit")).toBe(0);
      const roleRuns = (await runs()).length;

      // A deposit to bob nobody credits; an operator reconciles the chain by hand.
      await sendAndMine(t.rpc, { from: t.accounts[2]!, to: BOB, value: 10n ** 18n });
      await t.mineAndSync(3);
      const found = await cli.run(["reconcile", "--chain", t.chain.key]);
      expect(found.code, found.out).toBe(3);
      const after = await runs();
      // Only the CLI's run since the role's first: the role has not run again.
      expect(after).toHaveLength(roleRuns + 1);
      const cliRun = after.at(-1)!;
      expect(cliRun.status).toBe("completed");

      expect(await scraped("custody_recon_breaks", "missing_credit")).toBe(1);

      // Acknowledged from the CLI: no longer alerting, counted as acknowledged.
      const { rows } = await t.ctx.db.pool.query<{ n: number }>(
        "SELECT n FROM recon.breaks WHERE run_id = $1 AND type = 'missing_credit'",
        [cliRun.id],
      );
      expect(rows).toHaveLength(1);
      const ack = await cli.run([
        "recon",
        "breaks",
        "ack",
        `${cliRun.id}:${rows[0]!.n}`,
        "--by",
        "ops-anna",
        "--reason",
        "crediting worker down, restarting",
      ]);
      expect(ack.code, ack.out).toBe(0);
      expect(await scraped("custody_recon_breaks", "missing_credit")).toBe(0);
      expect(await scraped("custody_recon_breaks_acknowledged", "missing_credit")).toBe(1);

      // Postgres cannot answer the scrape's read (a table lock, a stalled server): the scrape
      // still answers, in time, with the figures it had, not a false zero and not an empty series.
      const locker = await t.ctx.db.pool.connect();
      try {
        await locker.query("BEGIN");
        await locker.query("LOCK TABLE recon.break_states IN ACCESS EXCLUSIVE MODE");
        // Each scrape waits out the read's 2 s timeout (so the read did fail), and no longer.
        const timed = async (name: string) => {
          const started = performance.now();
          const value = await scraped(name, "missing_credit");
          const ms = performance.now() - started;
          expect(ms).toBeGreaterThanOrEqual(1_900);
          expect(ms).toBeLessThan(5_000);
          return value;
        };
        expect(await timed("custody_recon_breaks_acknowledged")).toBe(1);
        expect(await timed("custody_recon_breaks")).toBe(0);
      } finally {
        await locker.query("ROLLBACK");
        locker.release();
      }
      expect((await runs()).length).toBe(roleRuns + 1);
    } finally {
      cli.remove();
      await handle.stop();
    }
  }, 120_000);
});
