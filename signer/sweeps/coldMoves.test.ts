import { zeroAddress } from "viem";
import { describe, expect, it } from "vitest";
import { chainSchema } from "../../chains/index.js";
import { excessOverCeiling, hotCeilings } from "./coldMoves.js";

describe("hot ceilings", () => {
  it("reads native and token ceilings; assets without one have none", () => {
    const chain = chainSchema.parse({
      key: "a",
      chainId: 1,
      name: "a",
      rpcUrls: ["http://127.0.0.1:1"],
      confirmations: { kind: "finalized" },
      reorgWindow: 4,
      blockTimeMs: 1000,
      feeModel: "eip1559",
      nativeHotCeiling: "50000000000000000000",
      tokens: [
        {
          address: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
          symbol: "T",
          decimals: 6,
          hotCeiling: "7",
        },
        { address: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", symbol: "O", decimals: 6 },
      ],
    });
    expect([...hotCeilings(chain)]).toEqual([
      [zeroAddress, 50n * 10n ** 18n],
      ["0x5fbdb2315678afecb367f032d93f642f64180aa3", 7n],
    ]);
  });

  it("moves only what both the ledger and the chain show above the ceiling", () => {
    expect(excessOverCeiling({ ledgerAvailable: 900n, onChain: 1000n, ceiling: 500n })).toBe(400n);
    expect(excessOverCeiling({ ledgerAvailable: 900n, onChain: 600n, ceiling: 500n })).toBe(100n);
    expect(excessOverCeiling({ ledgerAvailable: 500n, onChain: 10_000n, ceiling: 500n })).toBe(0n);
    expect(excessOverCeiling({ ledgerAvailable: -5n, onChain: 10_000n, ceiling: 0n })).toBe(0n);
  });
});
