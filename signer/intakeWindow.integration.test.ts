/**
 * Intake reads the oldest pending requests, `batchSize` at a time. On a bad day the oldest are
 * withdrawals the hot wallet cannot pay (drained by a run of them): they wait unsigned, and a
 * batch made only of them must not stop the intake from reading past them, or the sweep queued
 * behind them, which pays only gas and would refill the wallet from its deposit addresses, is
 * never signed and the wallet waits for money from outside however much its deposits hold.
 *
 * The same holds for a token the wallet holds too little of right now (a sweep bringing it is on
 * its way): the transfer's gas estimate reverts, and taken as a request that can never succeed it
 * was failed before a nonce, its hold released and the customer's withdrawal lost, while a native
 * shortfall waits.
 */
import { erc20Abi, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  anvilRpc,
  call,
  DEV_ACCOUNT,
  deployTestToken,
  sendAndMine,
} from "../indexers/testing/chain.js";
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

  it("leaves a token withdrawal the wallet holds too little of unsigned, alerted, until the tokens arrive", () =>
    tokenShort("token-short", 0n, [500n]));

  it("counts the token its sends in flight will take: the one that does not fit waits unsigned", () =>
    tokenShort("token-two", 1_000n, [600n, 600n]));
});

/**
 * The wallet holds `held` of a fresh listed token and is asked to send `amounts` of it, in order:
 * those that fit are paid, the rest wait unsigned (no nonce, no revert on chain, not failed) with
 * an alert until a sweep brings the tokens, and are then paid.
 */
async function tokenShort(p: string, held: bigint, amounts: bigint[]): Promise<void> {
  const rpc = anvilRpc(t.ctx.config.chains[0]!.rpcUrls[0]!);
  const account = await t.wallet(parseEther("1"));
  const token = await deployTestToken(rpc, account.address, held);
  const give = (amount: bigint) =>
    sendAndMine(rpc, {
      from: DEV_ACCOUNT,
      to: token,
      data: call("TestToken", "transfer", [account.address, amount]),
    });
  const signer = t.run(account, {
    chain: { ...t.chain, tokens: [{ address: token, symbol: "TT", decimals: 18 }] },
    settings: { unpaidRetryMs: 300 },
  });
  const alerts = () => t.alertCount("insufficient_funds", account.address);
  const ids = amounts.map((_, i) => `${p}-${i}`);
  const paid = (amount: bigint) => {
    let sum = 0n;
    return amounts.map((a) => {
      sum += a;
      return sum <= amount;
    });
  };
  const requests = () =>
    Promise.all(ids.map(async (id) => (await getTxRequest(t.ctx.db.pool, id))!));
  try {
    await t.withdraw(
      amounts.map((a, i) => ({
        id: ids[i]!,
        to: token,
        value: 0n,
        data: call("TestToken", "transfer", [RECIPIENT, a]),
      })),
      { from: account.address },
    );
    const fits = paid(held);
    const seen = await waitFor(
      "those that fit confirmed, the others decided or alerted",
      async () => {
        const rs = await requests();
        const settled = rs.every((r, i) =>
          fits[i] ? r.status === "confirmed" : r.status !== "pending",
        );
        return settled ||
          (rs.every((r, i) => !fits[i] || r.status === "confirmed") && (await alerts()) >= 2)
          ? rs
          : undefined;
      },
    );
    seen.forEach((r, i) => {
      if (!fits[i]) expect(r).toMatchObject({ status: "pending", nonce: null, errorCode: null });
    });
    // The sweep brings the tokens: every withdrawal is signed and paid, in nonce order.
    await give(amounts.reduce((a, b) => a + b, 0n));
    const done = await waitFor("all confirmed", async () => {
      const rs = await requests();
      return rs.every((r) => r.status === "confirmed") ? rs : undefined;
    });
    expect(done.map((r) => r.nonce).sort()).toEqual(amounts.map((_, i) => BigInt(i)));
    expect(
      await t.client.readContract({
        address: token,
        abi: erc20Abi,
        functionName: "balanceOf",
        args: [RECIPIENT],
      }),
    ).toBe(amounts.reduce((a, b) => a + b, 0n));
  } finally {
    await signer.stop();
  }
}
