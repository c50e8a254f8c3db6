/**
 * Intake reads the oldest pending requests, `batchSize` at a time. On a bad day the oldest are
 * withdrawals the hot wallet cannot pay (drained by a run of them): they wait unsigned, and a
 * batch made only of them must not stop the intake from reading past them, or the sweep queued
 * behind them, which pays only gas and would refill the wallet from its deposit addresses, is
 * never signed and the wallet waits for money from outside however much its deposits hold.
 */
import { parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { RECIPIENT, waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 } } },
  });
});

afterAll(async () => {
  await t?.stop();
});

describe("intake window", () => {
  it("reads past a batch of requests the wallet cannot pay to the sweep behind them", async () => {
    const account = await t.wallet(parseEther("1"));
    const signer = t.run(account, { batchSize: 2 });
    try {
      await t.withdraw(
        [
          { id: "a-unpaid-1", value: parseEther("5") },
          { id: "b-unpaid-2", value: parseEther("5") },
        ],
        { from: account.address },
      );
      await t.withdraw("c-sweep-like", { from: account.address, to: RECIPIENT, value: 0n });
      const swept = await waitFor(
        "the sweep-like send confirmed",
        async () => {
          const r = await getTxRequest(t.ctx.db.pool, "c-sweep-like");
          return r?.status === "confirmed" ? r : undefined;
        },
        { timeoutMs: 10_000 },
      );
      expect(swept.nonce).toBe(0n);
      for (const id of ["a-unpaid-1", "b-unpaid-2"]) {
        const r = (await getTxRequest(t.ctx.db.pool, id))!;
        expect(r.status).toBe("pending");
        expect(r.nonce).toBeNull();
      }
    } finally {
      await signer.stop();
    }
  });
});
