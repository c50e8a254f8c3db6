import type { Hex } from "viem";
import { describe, expect, it } from "vitest";
import { TRANSFER_TOPIC } from "./createEvmAdapter.js";
import { transferPosition, transferPositions } from "./transferPosition.js";

const A = "0x00000000000000000000000000000000000000aA";
const B = "0x00000000000000000000000000000000000000bb";
const t = (a: string) => `0x${"0".repeat(24)}${a.slice(2)}` as Hex;
const transfer = (address: string, logIndex: number | Hex) => ({
  address,
  topics: [TRANSFER_TOPIC, t(A), t(B)],
  logIndex,
});

describe("transferPosition", () => {
  it("numbers listed-token ERC-20 Transfers of a receipt in logIndex order (viem or raw shapes)", () => {
    const logs = [
      transfer(B, 9), // unlisted
      transfer(A.toLowerCase(), 12),
      { address: A, topics: [TRANSFER_TOPIC, t(A), t(B), t(B)], logIndex: 10 }, // ERC-721
      transfer(A, "0xb"),
    ];
    expect([...transferPositions(logs, [A]).entries()]).toEqual([
      [11, "transfer:0"],
      [12, "transfer:1"],
    ]);
    expect(transferPosition(logs, 12, [A])).toBe("transfer:1");
    expect(transferPosition(logs, 9, [A])).toBeUndefined();
    expect(transferPosition(logs, 9, [A, B])).toBe("transfer:0");
  });
});
