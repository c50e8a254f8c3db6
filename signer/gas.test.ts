import { encodeFunctionData, erc20Abi, type Hex, pad } from "viem";
import { describe, expect, it } from "vitest";
import { forwarderFactory } from "../chains/contracts/index.js";
import {
  affordable,
  assertIntrinsicGas,
  gasLimitFor,
  IntrinsicGasTooLowError,
  intrinsicGas,
  MAX_TX_GAS,
  maxCost,
  SWEEP_HEADROOM,
  stateHeadroom,
  TOKEN_TRANSFER_HEADROOM,
  withHeadroom,
} from "./gas.js";

describe("intrinsicGas", () => {
  it("is 21000 for a plain transfer and adds 4 per zero byte, 16 per other byte", () => {
    expect(intrinsicGas()).toBe(21_000n);
    expect(intrinsicGas("0x")).toBe(21_000n);
    expect(intrinsicGas("0x00")).toBe(21_004n);
    expect(intrinsicGas("0x01")).toBe(21_016n);
    expect(intrinsicGas("0x0100ff10")).toBe(21_000n + 16n + 4n + 16n + 16n);
    // An ERC-20 transfer(address,uint256): 4-byte selector + 2 words.
    const transfer = `0xa9059cbb${"00".repeat(12)}${"11".repeat(20)}${"00".repeat(31)}01` as const;
    expect(intrinsicGas(transfer)).toBe(21_000n + 4n * 16n + 12n * 4n + 20n * 16n + 31n * 4n + 16n);
  });

  it("refuses data that is not whole bytes of hex", () => {
    expect(() => intrinsicGas("0x1" as `0x${string}`)).toThrow(TypeError);
  });
});

describe("assertIntrinsicGas", () => {
  it("accepts a limit at the intrinsic gas and refuses one below with a stable code", () => {
    expect(() => assertIntrinsicGas({ gasLimit: 21_016n, data: "0x01" })).not.toThrow();
    let error: unknown;
    try {
      assertIntrinsicGas({ gasLimit: 21_000n, data: "0x01", requestId: "w-1" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(IntrinsicGasTooLowError);
    expect((error as IntrinsicGasTooLowError).code).toBe("SIGNER_INTRINSIC_GAS_TOO_LOW");
    expect((error as IntrinsicGasTooLowError).meta).toEqual({
      gas_limit: "21000",
      intrinsic_gas: "21016",
      request_id: "w-1",
    });
  });
});

describe("gasLimitFor", () => {
  const chain = { chainId: 1 };
  it("adds the default 20% margin, rounded up", () => {
    expect(gasLimitFor(50_000n, chain)).toBe(60_000n);
    expect(gasLimitFor(50_001n, chain)).toBe(60_002n);
  });
  it("uses the chain's margin and floor", () => {
    expect(gasLimitFor(100_000n, { chainId: 1, gasLimitMarginBps: 500 })).toBe(105_000n);
    expect(gasLimitFor(100_000n, { chainId: 1, gasLimitMarginBps: 0 })).toBe(100_000n);
    expect(gasLimitFor(21_000n, { chainId: 1, gasLimitFloor: 30_000n })).toBe(30_000n);
  });
  it("never returns a constant: an L2 estimate above 21000 for a plain transfer is kept", () => {
    // Arbitrum charges the L1 data cost as gas: a plain transfer estimates far above 21000.
    expect(gasLimitFor(95_000n, { chainId: 42161, gasLimitMarginBps: 1_000 })).toBe(104_500n);
  });
  it("never goes below intrinsic gas, even with no margin and a low floor", () => {
    expect(
      gasLimitFor(21_000n, { chainId: 1, gasLimitMarginBps: 0, gasLimitFloor: 0n }, "0xffff"),
    ).toBe(21_032n);
  });
});

describe("stateHeadroom", () => {
  const token = "0x00000000000000000000000000000000000000aa" as Hex;
  it("gives an ERC-20 transfer room to write its recipient's balance from 0", () => {
    const data = encodeFunctionData({
      abi: erc20Abi,
      functionName: "transfer",
      args: [token, 1n],
    });
    expect(stateHeadroom(data)).toBe(TOKEN_TRANSFER_HEADROOM);
    expect(stateHeadroom(data.toUpperCase().replace("0X", "0x") as Hex)).toBe(
      TOKEN_TRANSFER_HEADROOM,
    );
  });
  it("gives a sweep room for every address's native value and every listed token it may hold", () => {
    const salts = [pad("0x01"), pad("0x02"), pad("0x03")];
    const data = encodeFunctionData({
      abi: forwarderFactory.abi,
      functionName: "sweep",
      args: [salts, [token, "0x00000000000000000000000000000000000000bb"]],
    });
    expect(stateHeadroom(data)).toBe(
      3n * SWEEP_HEADROOM.perAddress +
        3n * 2n * SWEEP_HEADROOM.perAddressToken +
        2n * SWEEP_HEADROOM.perToken,
    );
    const nativeOnly = encodeFunctionData({
      abi: forwarderFactory.abi,
      functionName: "sweep",
      args: [salts, []],
    });
    expect(stateHeadroom(nativeOnly)).toBe(3n * SWEEP_HEADROOM.perAddress);
  });
  it("is 0 for a plain transfer, another call, or a sweep selector with data that does not decode", () => {
    expect(stateHeadroom("0x")).toBe(0n);
    expect(stateHeadroom("0x095ea7b3")).toBe(0n);
    const selector = encodeFunctionData({
      abi: forwarderFactory.abi,
      functionName: "sweep",
      args: [[], []],
    }).slice(0, 10) as Hex;
    expect(stateHeadroom(`${selector}ff`)).toBe(0n);
  });
});

describe("withHeadroom", () => {
  it("adds the headroom, never past EIP-7825's cap, and leaves a limit already past it alone", () => {
    expect(withHeadroom(60_000n, 20_000n)).toBe(80_000n);
    expect(withHeadroom(MAX_TX_GAS - 5n, 20_000n)).toBe(MAX_TX_GAS);
    expect(withHeadroom(MAX_TX_GAS + 5n, 20_000n)).toBe(MAX_TX_GAS + 5n);
    expect(withHeadroom(60_000n, 0n)).toBe(60_000n);
  });
});

describe("maxCost", () => {
  it("budgets value + gas x max fee + L1 fee + operator fee", () => {
    const fees = { type: "eip1559", maxFeePerGas: 10n, maxPriorityFeePerGas: 1n } as const;
    expect(maxCost({ value: 5n, gasLimit: 21_000n, fees, l1Fee: 7n, operatorFee: 11n })).toBe(
      5n + 210_000n + 7n + 11n,
    );
    expect(
      maxCost({
        value: 0n,
        gasLimit: 100n,
        fees: { type: "legacy", gasPrice: 3n },
        l1Fee: 0n,
        operatorFee: 0n,
      }),
    ).toBe(300n);
  });
});

describe("affordable", () => {
  it("takes the requests, in nonce order, whose cost fits what the ones taken before leave", () => {
    expect(affordable([], 0n)).toEqual([]);
    expect(affordable([10n, 20n, 30n], 60n)).toEqual([true, true, true]);
    expect(affordable([10n, 20n, 30n], 59n)).toEqual([true, true, false]);
    expect(affordable([10n, 20n, 30n], 9n)).toEqual([false, false, false]);
    expect(affordable([10n], -5n)).toEqual([false]);
    // A cheap request after an unaffordable one goes: the unaffordable one takes no nonce.
    expect(affordable([10n, 100n, 1n], 50n)).toEqual([true, false, true]);
  });
});
