/**
 * The node's `finalized` tag is checked against our block at its height, which may be one of the
 * blocks being committed. When that commit fails (here Postgres refuses the batch; in production a
 * lost connection, a TipMovedError), those blocks were never stored, so the check said nothing:
 * the next commit, of another fork's blocks at those heights, must not take the tag from the
 * failed one. A real anvil: a batch on fork A whose commit fails, then fork B (evm_revert) with a
 * deposit above fork B's own finalized block.
 */
import type { Hex } from "viem";
import { afterEach, beforeEach, expect, it } from "vitest";
import { readFinalized } from "./finality.js";
import { freshAddress, sendAndMine, watch } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest, TEST_CHAIN_ID } from "./testing/indexerTest.js";

let t: IndexerTest;

beforeEach(async () => {
  t = await startIndexerTest({
    chain: { config: { confirmations: { kind: "finalized" } } },
    // Ethereum's block time: the tag stays cached for 48 s, longer than this test.
    config: { blockTimeMs: 12_000 },
  });
});

afterEach(async () => {
  await t?.stop();
});

async function refuseBlocks<T>(run: () => Promise<T>): Promise<unknown> {
  await t.ctx.db.pool.query(`
    CREATE FUNCTION chain.refuse_test() RETURNS trigger LANGUAGE plpgsql
      AS $$ BEGIN RAISE EXCEPTION 'database unavailable'; END $$;
    CREATE TRIGGER refuse_test BEFORE INSERT ON chain.blocks
      FOR EACH ROW EXECUTE FUNCTION chain.refuse_test()`);
  try {
    await run();
    return null;
  } catch (error) {
    return error;
  } finally {
    await t.ctx.db.pool.query(
      "DROP TRIGGER refuse_test ON chain.blocks; DROP FUNCTION chain.refuse_test()",
    );
  }
}

it("confirms nothing of a fork from a finalized tag checked against blocks of a commit that failed", async () => {
  const D = freshAddress(1);
  await watch(t.ctx.db.pool, TEST_CHAIN_ID, [{ address: D }]);
  await t.rpc("anvil_mine", ["0x5"]);
  const ingestor = await t.ingestor();
  await ingestor.syncOnce(); // stored: blocks 0..5
  const snapshot = await t.rpc<Hex>("evm_snapshot");

  // Fork A: a transaction at block 6 (so its blocks differ from fork B's), head 80, finalized 16.
  await sendAndMine(t.rpc, { from: t.from, to: freshAddress(2), value: 1n });
  await t.rpc("anvil_mine", ["0x4a"]);
  const finalA = await t.rpc<{ number: Hex }>("eth_getBlockByNumber", ["finalized", false]);
  expect(BigInt(finalA.number)).toBe(16n);
  // Its batch (6..80) is fetched and its tag checked against it, then the commit fails.
  const error = await refuseBlocks(() => ingestor.syncOnce());
  expect(String(error)).toContain("database unavailable");
  expect((await readFinalized(t.ctx.db.pool, TEST_CHAIN_ID))?.number).toBe(0n); // still fork-free

  // Fork B from block 5: a deposit at block 12, head 74, so the node's finalized block is 10.
  await t.rpc("evm_revert", [snapshot]);
  await t.rpc("anvil_mine", ["0x6"]);
  const deposit = await sendAndMine(t.rpc, { from: t.from, to: D, value: 7n });
  expect(BigInt(deposit.blockNumber)).toBe(12n);
  await t.rpc("anvil_mine", ["0x3e"]);
  const finalB = await t.rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", [
    "finalized",
    false,
  ]);
  expect(BigInt(finalB.number)).toBe(10n);

  await ingestor.syncOnce(); // stores fork B's 6..74
  const { rows } = await t.ctx.db.pool.query<{ status: string }>(
    "SELECT status FROM chain.transfers WHERE tx_hash = $1",
    [deposit.transactionHash.toLowerCase()],
  );
  // Above fork B's finalized block: seen, not confirmed (not credited).
  expect(rows[0]?.status).toBe("seen");
  expect(await readFinalized(t.ctx.db.pool, TEST_CHAIN_ID)).toEqual({
    number: 10n,
    hash: finalB.hash.toLowerCase(),
  });
  await ingestor.stop();
});
