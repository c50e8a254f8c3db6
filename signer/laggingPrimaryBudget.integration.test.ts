/**
 * The intake budget when the endpoints lag (DESIGN: missing data is never evidence). The budget
 * takes the wallet's mined count and balance and counts in flight the sends signed at or above
 * that count. The balance came from the first endpoint, and only sends not yet seen mined were in
 * flight: from a node behind the head, the balance was from before the newest sends mined, while
 * the tracker (reading receipts from a node at the head) had already taken them out of flight, so
 * their cost was in neither. A withdrawal the wallet could not pay then took the next nonce: the
 * node refused its bytes, and every later send of the wallet (the sweep that would refill it among
 * them) waited behind that nonce until someone funded the wallet by hand. Now the count and the
 * balance are one node's pair (one at the best head first), and every send of ours at or above
 * that count is in flight, mined in our rows or not.
 */
import { type Hex, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LyingProxy } from "../chains/testing/lyingChain/index.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";

let t: LyingSignerTest;
let lagging: LyingProxy;
let anvilUrl: string;

beforeAll(async () => {
  t = await startLyingSignerTest(1, { chain: { bumpIntervalMs: 60_000 } });
  lagging = t.proxy!;
  anvilUrl = t.ctx.config.chains[0]!.rpcUrls[0]!;
});

afterAll(async () => {
  await t?.stop();
});

/**
 * A wallet of 1 ETH pays 0.6 (confirmed); then `rpcUrls` and a 5-block lag on the lying proxy (its
 * view is before that payment), and a second 0.6: it fits the balance that node shows, not the 0.4
 * the wallet holds. It must take no nonce, and a 0.1 after it must be signed at nonce 1.
 */
async function afterLag(rpcUrls: string[], prefix: string) {
  const account = await t.wallet(parseEther("1"));
  // The lag below lands after the funding, before the payment.
  await t.rpc("anvil_mine", ["0xa"]);
  const direct = t.chain;
  const signer = t.run(account);
  try {
    await t.withdraw(`${prefix}-first`, { from: account.address, value: parseEther("0.6") });
    await t.confirmedWith(`${prefix}-first`);
    lagging.setLag(5);
    t.chain = { ...direct, rpcUrls };
    await signer.stop();
    const behind = t.run(account);
    try {
      await t.withdraw(`${prefix}-second`, { from: account.address, value: parseEther("0.6") });
      await waitFor(
        "the signer alerted insufficient funds for the second",
        async () => (await t.alertCount("insufficient_funds", account.address)) > 0,
      );
      // old code: expected 1n to be null (signed at nonce 1 with money the wallet no longer has).
      expect((await getTxRequest(t.ctx.db.pool, `${prefix}-second`))!.nonce).toBeNull();
      // The wallet keeps sending what it can pay.
      await t.withdraw(`${prefix}-third`, {
        from: account.address,
        to: "0x000000000000000000000000000000000000e905" as Hex,
        value: parseEther("0.1"),
      });
      await waitFor(
        "the third signed",
        async () => (await getTxRequest(t.ctx.db.pool, `${prefix}-third`))?.nonce ?? undefined,
      );
      lagging.setLag(null);
      const third = await t.confirmedWith(`${prefix}-third`);
      expect(third.nonce).toBe(1n);
      const second = (await getTxRequest(t.ctx.db.pool, `${prefix}-second`))!;
      expect(second.nonce).toBeNull();
      expect(second.status).toBe("pending");
    } finally {
      await behind.stop();
    }
  } finally {
    await signer.stop();
    lagging.setLag(null);
    t.chain = direct;
  }
}

describe("the intake budget with endpoints behind the head", () => {
  it("takes the count and balance from a node at the head when the first endpoint lags", async () => {
    await afterLag([lagging.url, anvilUrl], "first-lags");
  });

  it("with only a node behind, counts the sends it has not seen mined in flight", async () => {
    // old code: expected 1n to be null (its balance of 1 ETH less nothing in flight: the payment
    // it has not seen was already `mined` in our rows).
    await afterLag([lagging.url], "all-lag");
  });
});
