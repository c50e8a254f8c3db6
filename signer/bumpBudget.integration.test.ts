/**
 * Fee bumps and the hot wallet's budget, on anvil with automine off: intake signed two sends the
 * wallet can pay together at their fees, then the base fee spikes and the bump stage wants both
 * at the market, many times dearer. A replacement is valid on its own (the node takes it: the
 * balance covers it alone), but the wallet cannot pay both at the new max fee: once the lower
 * nonce mines, the higher one's bytes ask more than is left, and its nonce holds every later send
 * (the refilling sweep among them) until someone funds the wallet from outside. Its old bytes,
 * which the wallet can pay, are gone from the pool. A bump the wallet cannot cover with what is in
 * flight is not signed: the old bytes stay and mine when the fee falls back.
 */
import { type Hex, parseEther, parseGwei, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { bumpIntervalMs: 500, confirmations: { kind: "blocks", blocks: 1 } } },
  });
  await t.rpc("evm_setAutomine", [false]);
});

afterAll(async () => {
  await t?.stop();
});

async function sent(id: string): Promise<void> {
  await waitFor(
    `${id} sent`,
    async () => (await getTxRequest(t.ctx.db.pool, id))?.status === "broadcast",
  );
}

/**
 * Two sends in flight from `wallet` (1 ETH): `a` of 0.5 ETH, then `b` of what is left after both
 * at a's max fee (`b` with `bGas`), but for `spare(a's gas x max fee)`.
 */
async function twoSends(
  wallet: Hex,
  spare: (gasAtFirstFee: bigint) => bigint,
  bGas?: bigint,
): Promise<void> {
  const a = `a-${wallet}`;
  await t.withdraw(a, { from: wallet, value: parseEther("0.5") });
  await sent(a);
  const { rows } = await t.ctx.db.pool.query<{ gas_limit: bigint; max_fee_per_gas: bigint }>(
    "SELECT gas_limit, max_fee_per_gas FROM custody.tx_attempts WHERE request_id = $1",
    [a],
  );
  const fee = BigInt(rows[0]!.max_fee_per_gas);
  const aGas = BigInt(rows[0]!.gas_limit) * fee;
  const b = `b-${wallet}`;
  const value = parseEther("0.5") - aGas - (bGas ?? 21_000n) * fee - spare(aGas);
  await t.withdraw(b, { from: wallet, value, ...(bGas ? { gasLimit: bGas } : {}) });
  await sent(b);
}

/** The base fee spikes to 20 gwei (far above both max fees) for a few bump intervals. */
async function spike(): Promise<void> {
  await t.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(parseGwei("20"))]);
  await t.rpc("evm_mine");
  await new Promise((r) => setTimeout(r, 2_500));
}

describe("bumps within the budget", () => {
  it("signs no bump the wallet cannot pay with the rest in flight: the higher nonce is not left unpayable", async () => {
    // before the fix: 'b' never mined (nonce count stuck at 1): its bump to the spiked market
    // was taken by the node, and after 'a' mined the wallet could not pay its max fee.
    const account = await t.wallet(parseEther("1"));
    const signer = t.run(account, { settings: { unpaidRetryMs: 300 } });
    try {
      // Both fit at their fees with half a send's gas to spare.
      await twoSends(account.address, (gasAtFirstFee) => gasAtFirstFee / 2n);
      await spike();
      // The fee falls back: every max fee the wallet can pay is included again.
      await t.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(1n)]);
      await t.rpc("evm_mine");
      await waitFor(
        "both nonces used",
        async () => {
          await t.rpc("evm_mine");
          return (await t.client.getTransactionCount({ address: account.address })) === 2;
        },
        { timeoutMs: 10_000 },
      );
      expect(await t.alertCount("insufficient_funds", account.address)).toBeGreaterThan(0);
    } finally {
      await signer.stop();
    }
  });

  it("a bump the balance cannot cover is owed first: a new send does not take what it needs", async () => {
    // A bump not signed must not free its raise for new sends (the old code counted it signed).
    // before the fix: timed out waiting for c signed once b mined (b's bump wedged its nonce);
    // with the bump held but not owed in intake: expected 2n to be null (c signed behind the
    // stuck nonce with the balance b's bump needs).
    const account = await t.wallet(parseEther("1"));
    const signer = t.run(account, { settings: { unpaidRetryMs: 300 } });
    try {
      // 'b' has a 1,000,000 gas limit: at the spiked fee its bump needs ~0.035 ETH, a's ~0.001
      // (signed: 0.01 ETH spare), and a plain send of 1 wei ~0.0007 (fits what a's bumps leave).
      await twoSends(account.address, () => parseEther("0.01"), 1_000_000n);
      await spike();
      await t.withdraw("c", { from: account.address, value: 1n });
      await new Promise((r) => setTimeout(r, 1_500));
      const c = (await getTxRequest(t.ctx.db.pool, "c"))!;
      expect(c.nonce).toBeNull();
      expect(c.status).toBe("pending");
      // The fee falls back: b's own bytes mine, and then 'c' is signed.
      await t.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(1n)]);
      await waitFor(
        "c signed once b mined",
        async () => {
          await t.rpc("evm_mine");
          return (await getTxRequest(t.ctx.db.pool, "c"))?.nonce === 2n;
        },
        { timeoutMs: 10_000 },
      );
    } finally {
      await signer.stop();
    }
  });
});
