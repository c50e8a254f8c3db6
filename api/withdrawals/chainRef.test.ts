import { pad, toHex } from "viem";
import { describe, expect, it } from "vitest";
import { TRANSFER_TOPIC, withdrawalPosition } from "./chainRef.js";

const token = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
const hot = "0x00000000000000000000000000000000000000aa";
const dest = "0x00000000000000000000000000000000000000bb";
const log = (over: Partial<{ address: string; t1: string; t2: string; v: bigint; i: number }>) => ({
  address: (over.address ?? token) as `0x${string}`,
  topics: [
    TRANSFER_TOPIC,
    pad((over.t1 ?? hot) as `0x${string}`),
    pad((over.t2 ?? dest) as `0x${string}`),
  ] as [`0x${string}`, ...`0x${string}`[]],
  data: pad(toHex(over.v ?? 500n)),
  logIndex: over.i ?? 0,
});

describe("withdrawalPosition", () => {
  const w = { asset: token, fromAddress: hot, to: dest, amount: 500n };
  it("is `tx` for native value", () => {
    expect(withdrawalPosition({ ...w, asset: `0x${"0".repeat(40)}` }, [])).toBe("tx");
  });
  it("finds the token's Transfer from the hot wallet to the destination for the amount", () => {
    const logs = [
      log({ address: "0x00000000000000000000000000000000000000cc", i: 0 }),
      log({ t1: dest, t2: hot, i: 1 }),
      log({ v: 499n, i: 2 }),
      log({ i: 3 }),
    ];
    // The ordinal among the tx's listed-token Transfer logs (the indexer's fact position).
    expect(withdrawalPosition(w, logs)).toBe("transfer:2");
    expect(withdrawalPosition(w, logs, [token, "0x00000000000000000000000000000000000000cc"])).toBe(
      "transfer:3",
    );
  });
  it("is undefined when the receipt has no such Transfer", () => {
    expect(withdrawalPosition(w, [log({ v: 1n })])).toBeUndefined();
  });
});
