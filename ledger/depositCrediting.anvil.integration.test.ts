/**
 * Deposit crediting end to end on anvil: the real indexer ingests, confirms and orphans facts and
 * rings the real `chain-facts` doorbell; the ledger's worker credits from it.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEvmAdapter } from "../chains/index.js";
import { createFactsDoorbell, createIngestor, type Ingestor } from "../indexers/index.js";
import {
  anvilRpc,
  freshAddress,
  type Rpc,
  sendAndMine,
  syncToHead,
  watch,
} from "../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { type CreditingWorker, startCreditingWorker } from "./creditingWorker.js";

const CHAIN_ID = 31337;
const ETH = `${CHAIN_ID}:0x0000000000000000000000000000000000000000`;
const D_ALICE = freshAddress(101);
const D_BOB = freshAddress(102);
const D_CAROL = freshAddress(103);
const OUTSIDER = freshAddress(199);

let ctx: TestContext;
let rpc: Rpc;
let from: Hex;
let ingestor: Ingestor;
let ledger: Ledger;
let worker: CreditingWorker;

const mine = async (n: number) => {
  for (let i = 0; i < n; i++) await rpc("evm_mine");
};
const sync = () => syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
const credited = async (owner: string) =>
  (await ledger.getAccount({ assetId: ETH, name: `user:${owner}` }))?.creditsPosted ?? 0n;

/** Poll `read` until `ok` holds; throw (with the last value) after a generous 60 s. */
async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out after 60000 ms; last value ${String(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [{ chainId: CHAIN_ID, config: { confirmations: { kind: "blocks", blocks: 3 } } }],
  });
  rpc = anvilRpc(ctx.anvils[0]?.rpcUrl as string);
  from = ((await rpc<Hex[]>("eth_accounts"))[0] as Hex).toLowerCase() as Hex;
  await watch(ctx.db.pool, CHAIN_ID, [
    { address: D_ALICE, owner: "alice" },
    { address: D_BOB, owner: "bob" },
    { address: D_CAROL, owner: "carol" },
  ]);
  const chain = ctx.config.chains[0];
  if (!chain) throw new Error("no chain");
  ingestor = await createIngestor({
    common: ctx.common,
    pool: ctx.db.pool,
    adapter: createEvmAdapter(chain, { common: ctx.common }),
    doorbell: createFactsDoorbell(ctx.queues),
    options: { batchBlocks: 8 },
  });
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  // A long sweep interval: after the first sweep, only doorbells drive crediting in this test.
  worker = await startCreditingWorker({
    common: ctx.common,
    pool: ctx.db.pool,
    queues: ctx.queues,
    ledger,
    chains: ctx.config.chains,
    sweepIntervalMs: 600_000,
  });
});

afterAll(async () => {
  await worker?.stop();
  await ingestor?.stop();
  await ctx?.cleanup();
});

describe("deposit crediting on anvil with the real indexer", () => {
  it("credits a deposit exactly once after its confirmations", async () => {
    const amount = 10n ** 18n;
    await sendAndMine(rpc, { from, to: D_ALICE, value: amount });
    await sync();
    await worker.sweepOnce();
    expect(await credited("alice")).toBe(0n); // seen, not yet confirmed
    await mine(3);
    await sync(); // confirms the fact and rings the doorbell
    expect(
      await eventually(
        () => credited("alice"),
        (v) => v > 0n,
      ),
    ).toBe(amount);
    await worker.sweepOnce();
    await worker.sweepOnce();
    expect(await credited("alice")).toBe(amount);
    const { rows } = await ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM ledger.transfers WHERE kind = 'deposit' AND tx_hash IN (SELECT tx_hash FROM chain.transfers WHERE to_address = $1)",
      [D_ALICE],
    );
    expect(rows[0].n).toBe(1);
  });

  it("credits nothing for a deposit reorged away before confirmation", async () => {
    await sendAndMine(rpc, { from, to: D_BOB, value: 5n * 10n ** 17n });
    await sync();
    // Replace the block holding Bob's deposit with one paying someone else, then bury it.
    await rpc("anvil_reorg", [1, [[{ from, to: OUTSIDER, value: "0x7b" }, 0]]]);
    await mine(5);
    await sync();
    const facts = await ctx.db.pool.query<{ status: string }>(
      "SELECT status FROM chain.transfers WHERE to_address = $1",
      [D_BOB],
    );
    expect(facts.rows.map((r) => r.status)).toContain("orphaned");
    expect(facts.rows.map((r) => r.status)).not.toContain("confirmed");
    await worker.sweepOnce();
    expect(await credited("bob")).toBe(0n);
  });

  it("places a reorg hold when a credited deposit is reorged away (nothing to suspense)", async () => {
    const amount = 3n * 10n ** 17n;
    const snapshot = await rpc<Hex>("evm_snapshot");
    await sendAndMine(rpc, { from, to: D_CAROL, value: amount });
    await mine(4);
    await sync();
    expect(
      await eventually(
        () => credited("carol"),
        (v) => v > 0n,
      ),
    ).toBe(amount);
    // A longer branch without Carol's deposit: a reorg deeper than the confirmation rule.
    await rpc("evm_revert", [snapshot]);
    for (let i = 0n; i < 7n; i++) await sendAndMine(rpc, { from, to: OUTSIDER, value: 1000n + i });
    await sync();
    const available = await eventually(
      async () => (await ledger.getAccount({ assetId: ETH, name: "user:carol" }))?.available ?? -1n,
      (v) => v === 0n,
    );
    expect(available).toBe(0n); // held: no longer available
    expect(await credited("carol")).toBe(amount); // not clawed back before its block is final
    expect((await ledger.getAccount({ assetId: ETH, name: "suspense" }))?.debitsPosted ?? 0n).toBe(
      0n,
    );
    const events = await ctx.db.pool.query<{ type: string }>(
      "SELECT type FROM ledger.events ORDER BY id",
    );
    expect(events.rows.map((e) => e.type)).toEqual([
      "deposit.credited",
      "deposit.credited",
      "deposit.reorg_held",
    ]);
    expect((await ledger.check()).problems).toEqual([]);
  });
});
