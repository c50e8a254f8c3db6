/**
 * `chains resume --accept-reorg` accepts the rollback the operator was shown, nothing else. On a
 * real anvil (finality 4 blocks): a reorg of depth 6 halts the chain and resume refuses, showing
 * the common ancestor and the exact flag to pass. Before the operator re-runs, the node changes its
 * mind (another endpoint, another backend): the fork now reaches 9 blocks down. Accepting the
 * ancestor that was shown must not roll back to the deeper one nobody saw: it fails
 * (INDEXER_RESUME_ANCESTOR_CHANGED) and changes nothing; accepting the new one rolls back once.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { ResumeAncestorChangedError, ResumeInputError } from "./errors.js";
import { readFinalized } from "./finality.js";
import { readHalts } from "./halts.js";
import { loadTip } from "./store.js";
import { canonicalBlocks, canonicalFacts, sendAndMine, syncToHead } from "./testing/chain.js";
import { type IndexerTest, TEST_CHAIN_ID } from "./testing/indexerTest.js";
import { D1, resumeCaught, startResumeTest } from "./testing/resumeTest.js";

let t: IndexerTest;

beforeAll(async () => {
  t = await startResumeTest();
});

afterAll(async () => {
  await t?.stop();
});

const resume = (acceptReorg: string | null) => resumeCaught(t, acceptReorg);

it("rolls back only to the common ancestor the operator was shown", async () => {
  const pool = t.ctx.db.pool;
  const ingestor = await t.ingestor({ options: { batchBlocks: 4 } });
  for (let i = 0n; i < 14n; i++) await sendAndMine(t.rpc, { from: t.from, to: D1, value: 1n + i });
  await syncToHead(ingestor, pool, t.rpc, TEST_CHAIN_ID);
  await t.rpc("anvil_reorg", [6, [[{ from: t.from, to: D1, value: "0x999" }, 0]]]);
  await ingestor.syncOnce();
  await ingestor.stop();
  expect(await readHalts(pool)).toHaveLength(1);
  const tip = (await loadTip(pool, TEST_CHAIN_ID))!;

  const refused = await resume(null);
  expect(refused).toMatchObject({ kind: "refused", ancestor: tip.number - 6n, depth: 6 });
  // What the refusal shows is our block there, as `--accept-reorg <height>:<hash>` takes it.
  const { rows } = await pool.query<{ hash: string }>(
    "SELECT hash FROM chain.blocks WHERE chain_id = $1 AND number = $2 AND canonical",
    [TEST_CHAIN_ID, (tip.number - 6n).toString()],
  );
  const shown = `${tip.number - 6n}:${rows[0]!.hash}`;

  // Before the operator re-runs, the node shows a deeper fork: 9 blocks.
  await t.rpc("anvil_reorg", [9, [[{ from: t.from, to: D1, value: "0x998" }, 0]]]);
  const finalized = await readFinalized(pool, TEST_CHAIN_ID);
  const blocksBefore = await canonicalBlocks(pool, TEST_CHAIN_ID);
  const factsBefore = await canonicalFacts(pool, TEST_CHAIN_ID);
  const changed = await resume(shown);
  expect(changed).toBeInstanceOf(ResumeAncestorChangedError);
  const now = (changed as ResumeAncestorChangedError).meta as { found: string };
  expect(now.found).toMatch(new RegExp(`^${tip.number - 9n}:0x[0-9a-f]{64}$`));
  expect((changed as Error).message).toContain(`--accept-reorg ${now.found}`);
  // Nothing changed: the halt is open, no block or fact orphaned, the finalized block where it was.
  expect(await readHalts(pool)).toHaveLength(1);
  expect(await loadTip(pool, TEST_CHAIN_ID)).toEqual(tip);
  expect(await readFinalized(pool, TEST_CHAIN_ID)).toEqual(finalized);
  expect(await canonicalBlocks(pool, TEST_CHAIN_ID)).toEqual(blocksBefore);
  expect(await canonicalFacts(pool, TEST_CHAIN_ID)).toEqual(factsBefore);
  const audited = await pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM audit.audit_log WHERE action = 'chain.resumed'",
  );
  expect(audited.rows[0]!.n).toBe(0);
  expect((refused as { accept: string }).accept).toBe(shown);

  // A malformed acceptance is bad input, before anything is read.
  expect(await resume("the one shown")).toBeInstanceOf(ResumeInputError);

  // Accepting what it now shows rolls back to it, once.
  const resumed = await resume(now.found);
  expect(resumed).toMatchObject({
    kind: "resumed",
    rollback: { ancestor: tip.number - 9n, depth: 9 },
  });
  expect(await readHalts(pool)).toEqual([]);
  expect((await readFinalized(pool, TEST_CHAIN_ID))?.number).toBe(tip.number - 9n);
});
