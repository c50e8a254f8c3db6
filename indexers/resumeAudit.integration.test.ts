/**
 * `chains resume` is an operator decision (DESIGN "Finality and bad days": only an audited
 * operator closes a halt, and --accept-reorg rolls back final blocks, confirmed deposits
 * included). Like every other operator command, a blank --by or --reason is refused and changes
 * nothing: the halt stays open, no fact is orphaned, no audit row without a name is written.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { createEvmAdapter } from "../chains/index.js";
import { readHalts } from "./halts.js";
import { resumeChain } from "./resume.js";
import { sendAndMine, syncToHead } from "./testing/chain.js";
import { type IndexerTest, TEST_CHAIN_ID } from "./testing/indexerTest.js";
import { D1, startResumeTest } from "./testing/resumeTest.js";

let t: IndexerTest;

beforeAll(async () => {
  t = await startResumeTest();
});

afterAll(async () => {
  await t?.stop();
});

const count = async (sql: string) => (await t.ctx.db.pool.query<{ n: number }>(sql)).rows[0]!.n;

it("refuses a resume with a blank --by or --reason and changes nothing", async () => {
  const ingestor = await t.ingestor({ options: { batchBlocks: 4 } });
  for (let i = 0n; i < 12n; i++) await sendAndMine(t.rpc, { from: t.from, to: D1, value: 1n + i });
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, TEST_CHAIN_ID);
  // A reorg of 6 blocks, below the published finalized block (4 deep): the chain halts.
  await t.rpc("anvil_reorg", [6, [[{ from: t.from, to: D1, value: "0x999" }, 0]]]);
  await ingestor.syncOnce();
  await ingestor.stop();
  expect(await readHalts(t.ctx.db.pool)).toHaveLength(1);
  const orphanedBefore = await count(
    "SELECT count(*)::int AS n FROM chain.transfers WHERE status = 'orphaned'",
  );

  const adapter = createEvmAdapter(t.chain, { common: t.ctx.common });
  for (const [by, reason] of [
    [" ", "node checked"],
    ["alice", ""],
  ] as const) {
    const result = await resumeChain({
      pool: t.ctx.db.pool,
      adapter,
      chain: t.chain,
      by,
      reason,
      acceptReorg: "1:none",
    }).catch((error: Error) => error);
    expect(result).toBeInstanceOf(Error);
    expect((result as Error).message).toMatch(/must not be empty/);
  }
  expect(await readHalts(t.ctx.db.pool)).toHaveLength(1);
  expect(
    await count("SELECT count(*)::int AS n FROM chain.transfers WHERE status = 'orphaned'"),
  ).toBe(orphanedBefore);
  expect(
    await count("SELECT count(*)::int AS n FROM audit.audit_log WHERE action = 'chain.resumed'"),
  ).toBe(0);
});
