import { type Hex, keccak256, parseEther, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { MAX_REGAS } from "../../signer/broadcaster/regas.js";
import { createL1Price, drawL1Price, L1_GAS_MAX, type L1PricePlan } from "./l1Price.js";
import { createRandom } from "./random.js";

const hot = privateKeyToAccount(keccak256(toHex("l1-price-test")));
const sign = (tx: { nonce: number; gas: bigint; to?: Hex | null; value?: bigint; data?: Hex }) =>
  hot.signTransaction({
    chainId: 31337,
    // null: a contract creation.
    ...(tx.to === null ? {} : { to: tx.to ?? "0x00000000000000000000000000000000000000d1" }),
    value: tx.value ?? parseEther("0.1"),
    nonce: tx.nonce,
    gas: tx.gas,
    ...(tx.data ? { data: tx.data } : {}),
    maxFeePerGas: 2_000_000_000n,
    maxPriorityFeePerGas: 1_000_000_000n,
  });
const plan = (byStep: number[], surgeStep: number | null = null): L1PricePlan => ({
  byStep,
  settled: byStep.at(-1)!,
  surgeStep,
});

describe("the L1 price", () => {
  it("draws a replayable schedule within its bounds, in a share of seeds", () => {
    let drawn = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const a = drawL1Price(createRandom(seed).fork("l1-price"), 25);
      expect(a).toEqual(drawL1Price(createRandom(seed).fork("l1-price"), 25));
      if (!a) continue;
      drawn++;
      expect(a.byStep).toHaveLength(25);
      for (const p of [...a.byStep, a.settled]) {
        expect(p).toBeGreaterThanOrEqual(0);
        expect(p).toBeLessThanOrEqual(L1_GAS_MAX);
      }
    }
    expect(drawn).toBeGreaterThan(50);
    expect(drawn).toBeLessThan(110);
  });

  it("adds the price to estimates and refuses a payment or cancel below intrinsic + price", async () => {
    const l1 = createL1Price(plan([10_000, 30_000]), hot.address);
    expect(l1.estimate({ result: toHex(21_000n) }, [])).toEqual({ result: toHex(31_000n) });
    const err = { error: { code: 3, message: "execution reverted" } };
    expect(l1.estimate(err, [])).toEqual(err);
    const ok = await sign({ nonce: 0, gas: 31_000n });
    expect(l1.intercept(ok)).toBeUndefined();
    expect(l1.accepted.get(keccak256(ok))).toEqual({ need: 31_000n, l1Gas: 10_000n });
    expect(l1.intercept(await sign({ nonce: 0, gas: 30_999n }))).toMatch(/intrinsic gas too low/);
    l1.atStep(1);
    // A cancel (0 to itself) is held to the price too, and so is a contract creation, with a
    // creation's intrinsic gas: 21,000 + 32,000 + calldata + 2 per word of init code.
    const cancel = await sign({ nonce: 0, gas: 40_000n, to: hot.address, value: 0n });
    expect(l1.intercept(cancel)).toMatch(/minimum needed 51000/);
    const init = "0x600a600c600039600a6000f3602a60005260206000f3" as Hex; // 22 bytes, 4 of them zero
    const creationNeed = 53_000n + 18n * 16n + 4n * 4n + 2n + 30_000n;
    const creation = (gas: bigint) => sign({ nonce: 1, gas, to: null, value: 0n, data: init });
    expect(l1.intercept(await creation(creationNeed - 1n))).toMatch(
      new RegExp(`minimum needed ${creationNeed}`),
    );
    expect(l1.intercept(await creation(creationNeed))).toBeUndefined();
    expect(l1.intercept("0xnot-a-transaction")).toBeUndefined();
    expect(l1.stats()).toMatchObject({
      refusedPayments: 1,
      refusedCancels: 1,
      refusedCreations: 1,
      peak: 30_000n,
    });
  });

  it("surges past every payment until one nonce had MAX_REGAS + 1 refused, then settles", async () => {
    const l1 = createL1Price(plan([5_000, 6_000, 7_000], 1), hot.address);
    l1.atStep(0);
    l1.atStep(1);
    expect(l1.stats().surge).toBe("running");
    let gas = 40_000n;
    for (let i = 0; i <= MAX_REGAS; i++) {
      // Each re-estimate: the price then, plus the margin; refused all the same.
      expect(l1.intercept(await sign({ nonce: 3, gas }))).toMatch(/intrinsic gas too low/);
      gas = ((21_000n + l1.now()) * 12n) / 10n;
    }
    expect(l1.stats().surge).toBe("exhausted");
    expect(l1.now()).toBe(6_000n);
    expect(l1.stats().peak).toBeGreaterThan(40_000n);
    // The cancel, estimated at the settled price, and other nonces' payments go through.
    expect(
      l1.intercept(await sign({ nonce: 3, gas: 32_400n, to: hot.address, value: 0n })),
    ).toBeUndefined();
    expect(l1.intercept(await sign({ nonce: 4, gas: 32_400n }))).toBeUndefined();
    l1.atStep(2);
    expect(l1.now()).toBe(7_000n);
  });

  it("ends a surge with no refusals at its step bound, and on settle", async () => {
    const l1 = createL1Price(
      plan([1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000], 1),
      hot.address,
    );
    for (let s = 0; s <= 4; s++) l1.atStep(s);
    expect(l1.stats().surge).toBe("running");
    l1.atStep(5);
    expect(l1.stats().surge).toBe("steps");
    expect(l1.now()).toBe(6_000n);
    const other = createL1Price(plan([1_000, 2_000, 3_000], 1), hot.address);
    other.atStep(1);
    other.settle();
    expect(other.stats().surge).toBe("settled");
    expect(other.now()).toBe(3_000n);
  });
});
