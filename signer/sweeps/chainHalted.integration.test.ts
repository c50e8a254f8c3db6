/**
 * Sweeps on a halted chain (docs/chain-halts.md): the ledger's balances there may count deposits
 * the chain no longer has, so no sweep (or cold move) is planned, and one planned before the halt
 * is not sent by the signer (it waits, pending); after the resume both go out, each once, and are
 * booked. The halt is opened and closed with the indexer's own functions (indexers/halts.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "../requests.js";
import { haltChain, heldGauge, resumeChain } from "../testing/chainHalt.js";
import { waitFor } from "../testing/harness.js";
import { CHAIN_ID, type SweepStack, startSweepStack } from "./testing/stack.js";

let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({ nativeSweepThreshold: "1000" });
});

afterAll(async () => {
  await s?.close();
});

const held = () => heldGauge(s.ctx.common.metrics.registry, s.hot);

const halt = (reason: string) => haltChain(s.ctx.db.pool, CHAIN_ID, reason);
const resume = () => resumeChain(s.ctx.db.pool, CHAIN_ID);

describe("a halted chain", () => {
  it("logs the halt once, however many ticks it lasts, and its end once", async () => {
    const { sweeper, lines } = s.loggedSweeper();
    const said = (start: string) => lines.filter((l) => l.msg.startsWith(start)).length;
    await sweeper.tick(CHAIN_ID);
    await halt("test: deep reorg");
    try {
      for (let i = 0; i < 3; i++) expect((await sweeper.tick(CHAIN_ID)).started).toEqual([]);
      expect(said("chain halted")).toBe(1);
      expect(said("chain resumed")).toBe(0);
      await resume();
      await sweeper.tick(CHAIN_ID);
      await sweeper.tick(CHAIN_ID);
      expect(said("chain halted")).toBe(1);
      expect(said("chain resumed")).toBe(1);
      // Another halt is another line.
      await halt("test: deep reorg again");
      await sweeper.tick(CHAIN_ID);
      expect(said("chain halted")).toBe(2);
    } finally {
      await resume();
    }
  });

  it("plans no sweep, holds the one planned before the halt, and sends both once after the resume", async () => {
    const sentByHot = () => s.h.client.getTransactionCount({ address: s.hot, blockTag: "pending" });
    await s.creditedDeposit("halt-before", 9n * 10n ** 17n);
    const before = await s.sweeper.tick(CHAIN_ID);
    expect(before.started).toHaveLength(1);
    const first = before.started[0]!.id;
    await s.creditedDeposit("halt-during", 9n * 10n ** 17n);
    const nonce = await sentByHot();

    await halt("test: deep reorg");
    const halted = await s.sweeper.tick(CHAIN_ID);
    expect(halted.started).toEqual([]);
    expect(halted.coldStarted).toEqual([]);
    s.startSigner();
    await waitFor("the signer holding the sweep", async () => (await held()) === 1);
    await new Promise((r) => setTimeout(r, 1_000)); // ~20 more ticks
    expect((await getTxRequest(s.ctx.db.pool, first))!.status).toBe("pending");
    expect(await sentByHot()).toBe(nonce);
    expect((await s.sweeper.tick(CHAIN_ID)).started).toEqual([]);

    await resume();
    const resumed = await s.sweeper.tick(CHAIN_ID);
    expect(resumed.started).toHaveLength(1);
    const second = resumed.started[0]!.id;
    await s.settleAll([first, second]);
    const { rows } = await s.ctx.db.pool.query<{ id: string; status: string }>(
      "SELECT id, status FROM custody.sweeps WHERE id = ANY($1) ORDER BY id",
      [[first, second]],
    );
    expect(rows.map((r) => r.status)).toEqual(["booked", "booked"]);
    expect(await sentByHot()).toBe(nonce + 2);
  });
});
