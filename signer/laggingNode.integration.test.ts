/**
 * A lagging node is missing data, never a reorg (DESIGN: missing data is never evidence). A
 * withdrawal is mined, or confirmed, on anvil and nothing ever reorgs; the only endpoint then lags
 * 10 blocks (it answers as if its head were 10 blocks back, as a provider's backend that fell
 * behind does). Its mined count then says the nonce is free and no endpoint has the transaction's
 * height: the tracker must wait for the node, not return the transaction to `broadcast` (which
 * callers take for a reorg: the posting reverted, `withdrawal.reorged` sent, the bytes sent again).
 */
import { type Hex, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";

let t: LyingSignerTest;
const DEST = "0x000000000000000000000000000000000000d0d0" as Hex;

beforeAll(async () => {
  t = await startLyingSignerTest(3, { chain: { reorgWindow: 64 }, signer: {} });
});
afterAll(async () => {
  await t?.stop();
});

/** Every status (the signer's own, with its block) the request shows while the node lags for `ms`. */
async function whileLagging(id: string, ms: number): Promise<string[]> {
  t.proxy!.setLag(10);
  const seen = new Set<string>();
  try {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const r = (await getTxRequest(t.ctx.db.pool, id))!;
      seen.add(`${r.status} in ${r.blockNumber}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    t.proxy!.setLag(null);
  }
  return [...seen];
}

const events = async (id: string) =>
  (
    await t.ctx.db.pool.query(
      "SELECT event FROM custody.tx_request_events WHERE request_id = $1 ORDER BY id",
      [id],
    )
  ).rows.map((r) => r.event as string);

describe("the only node lags behind a withdrawal's block", () => {
  it("a mined withdrawal stays mined (it was returned to broadcast at once) and confirms once the node is back", async () => {
    await t.withdraw("lag-mined", { to: DEST, value: parseEther("1") });
    const mined = await waitFor("mined", async () => {
      const r = (await getTxRequest(t.ctx.db.pool, "lag-mined"))!;
      return r.status === "mined" ? await t.outcome("lag-mined") : undefined;
    });
    expect(await whileLagging("lag-mined", 3_000)).toEqual([`mined in ${mined.blockNumber}`]);
    expect(await events("lag-mined")).toEqual([]);
    await t.rpc("anvil_mine", ["0x3"]);
    const done = await waitFor("confirmed", async () => {
      const o = await t.outcome("lag-mined");
      return o.status === "confirmed" ? o : undefined;
    });
    expect([done.txHash, done.blockHash, done.reorgs]).toEqual([mined.txHash, mined.blockHash, 0]);
  });

  it("a confirmed withdrawal is not declared reorged out while the node lags (10 s and more)", async () => {
    await t.withdraw("lag-confirmed", { to: DEST, value: parseEther("1") });
    const mined = await waitFor("mined", async () => {
      const o = await t.outcome("lag-confirmed");
      return o.blockNumber !== null ? o : undefined;
    });
    await t.rpc("anvil_mine", ["0x3"]);
    await waitFor(
      "confirmed",
      async () => (await t.outcome("lag-confirmed")).status === "confirmed",
    );
    // The tracker gives a confirmed transaction 10 s before it takes a short chain for a reorg.
    expect(await whileLagging("lag-confirmed", 12_000)).toEqual([
      `confirmed in ${mined.blockNumber}`,
    ]);
    expect(await events("lag-confirmed")).toEqual([]);
    // Its block was canonical all along.
    const block = await t.client.getBlock({ blockNumber: mined.blockNumber! });
    expect(block.hash.toLowerCase()).toBe(mined.blockHash);
  });
});
