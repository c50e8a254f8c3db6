import { parseTransaction, serializeTransaction } from "viem";
import { describe, expect, it } from "vitest";
import { bumpFees, type Fees, feesOf, withFees } from "./fees.js";

const gwei = (n: number) => BigInt(Math.round(n * 1e9));
const e = (fee: bigint, tip: bigint): Fees => ({
  type: "eip1559",
  maxFeePerGas: fee,
  maxPriorityFeePerGas: tip,
});

describe("bumpFees", () => {
  it("raises both fields by more than 10% when the market is flat", () => {
    const r = bumpFees(e(gwei(10), gwei(1)), e(gwei(10), gwei(1)), gwei(100));
    expect(r.replace).toBe(true);
    if (!r.replace || r.fees.type !== "eip1559") throw new Error("unreachable");
    expect(r.fees.maxFeePerGas * 100n).toBeGreaterThan(gwei(10) * 110n);
    expect(r.fees.maxPriorityFeePerGas * 100n).toBeGreaterThan(gwei(1) * 110n);
    expect(r.capped).toBe(false);
  });

  it("jumps to the market when it is higher than +10%", () => {
    const r = bumpFees(e(gwei(10), gwei(1)), e(gwei(50), gwei(3)), gwei(100));
    expect(r).toEqual({ replace: true, fees: e(gwei(50), gwei(3)), capped: false });
  });

  it("clamps to the cap and flags it", () => {
    const r = bumpFees(e(gwei(10), gwei(1)), e(gwei(500), gwei(3)), gwei(20));
    expect(r).toEqual({ replace: true, fees: e(gwei(20), gwei(3)), capped: true });
  });

  it("refuses a replacement the cap would make invalid", () => {
    expect(bumpFees(e(gwei(19), gwei(1)), e(gwei(30), gwei(1)), gwei(20))).toEqual({
      replace: false,
      capped: true,
    });
  });

  it("keeps the tip at or below the max fee", () => {
    // Tip equal to the fee: both rise by more than 10%, the tip no higher than the fee.
    const r = bumpFees(e(gwei(10), gwei(10)), e(gwei(10), gwei(10)), gwei(100));
    if (!r.replace || r.fees.type !== "eip1559") throw new Error("expected a replacement");
    expect(r.fees.maxPriorityFeePerGas <= r.fees.maxFeePerGas).toBe(true);
    expect(r.fees.maxPriorityFeePerGas * 100n).toBeGreaterThan(gwei(10) * 110n);
    // The market's tip is above the capped fee: the tip is clamped to the fee, not above it.
    expect(bumpFees(e(gwei(10), gwei(1)), e(gwei(500), gwei(30)), gwei(20))).toEqual({
      replace: true,
      fees: e(gwei(20), gwei(20)),
      capped: true,
    });
  });

  it("bumps legacy gas price the same way", () => {
    const r = bumpFees(
      { type: "legacy", gasPrice: gwei(10) },
      { type: "legacy", gasPrice: gwei(5) },
      gwei(100),
    );
    if (!r.replace || r.fees.type !== "legacy") throw new Error("expected a replacement");
    expect(r.fees.gasPrice * 100n).toBeGreaterThan(gwei(10) * 110n);
    expect(r.capped).toBe(false);
    // Up to the market, clamped at the cap and flagged.
    expect(
      bumpFees(
        { type: "legacy", gasPrice: gwei(10) },
        { type: "legacy", gasPrice: gwei(50) },
        gwei(100),
      ),
    ).toEqual({ replace: true, fees: { type: "legacy", gasPrice: gwei(50) }, capped: false });
    expect(
      bumpFees(
        { type: "legacy", gasPrice: gwei(10) },
        { type: "legacy", gasPrice: gwei(500) },
        gwei(20),
      ),
    ).toEqual({ replace: true, fees: { type: "legacy", gasPrice: gwei(20) }, capped: true });
    expect(
      bumpFees({ type: "legacy", gasPrice: gwei(95) }, { type: "legacy", gasPrice: 0n }, gwei(100)),
    ).toEqual({
      replace: false,
      capped: true,
    });
  });
});

describe("withFees and feesOf", () => {
  const creation = { chainId: 31337, nonce: 7, value: 5n, data: "0x6000" as const, gas: 60_000n };

  it("signs each fee model's payload and reads the same fees back from its bytes", () => {
    for (const fees of [e(gwei(30), gwei(2)), { type: "legacy", gasPrice: gwei(30) } as Fees]) {
      const bytes = serializeTransaction(withFees(creation, fees));
      const parsed = parseTransaction(bytes);
      expect(parsed).toMatchObject({ ...creation, type: fees.type });
      expect(parsed.to ?? null).toBeNull(); // no `to`: still a contract creation
      expect(feesOf(parsed)).toEqual(fees);
    }
  });

  it("reads no fees from a kind of transaction nothing here signs", () => {
    expect(
      feesOf({ ...creation, type: "eip2930", gasPrice: gwei(30), accessList: [] }),
    ).toBeUndefined();
  });
});
