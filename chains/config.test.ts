import { describe, expect, it } from "vitest";
import { parseFileConfig } from "../foundation/config.js";
import { configIssuesOf, minimalChain } from "../ops/testing/configFile.js";
import { chainSchema, finalityRule } from "./config.js";

const chain = { ...minimalChain, confirmations: { kind: "blocks", blocks: 12 } };

describe("chainSchema in the config file", () => {
  it("applies the chain defaults and checksums addresses", () => {
    const file = parseFileConfig(chainSchema, {
      chains: [{ ...chain, coldAddress: "0x000000000000000000000000000000000000dead" }],
    });
    const parsed = file.chains[0]!;
    expect(parsed.maxFeePerGas).toBe(500_000_000_000n);
    expect(parsed.traces).toBe(false);
    expect(parsed.coldAddress).toBe("0x000000000000000000000000000000000000dEaD");
    expect(finalityRule(parsed)).toEqual({ kind: "blocks", blocks: 12 });
  });

  it("reports a finality shallower than confirmations at the chain's field, with the file's other issues", () => {
    const issues = configIssuesOf(() =>
      parseFileConfig(chainSchema, {
        chains: [{ ...chain, finality: { kind: "blocks", blocks: 3 } }],
        webhooks: [{ url: "not a url", secretEnv: "HOOK" }],
      }),
    );
    expect(issues).toEqual([
      {
        field: "config.chains.0.finality",
        message: "finality (3 blocks) is shallower than confirmations (12 blocks)",
      },
      { field: "config.webhooks.0.url", message: "must be a URL" },
    ]);
  });

  it("refuses a native hot ceiling below one transfer's gas at the fee cap, naming the field", () => {
    const ceiling = (nativeHotCeiling: string, maxFeePerGas?: string) => () =>
      parseFileConfig(chainSchema, {
        chains: [{ ...chain, nativeHotCeiling, ...(maxFeePerGas ? { maxFeePerGas } : {}) }],
      }).chains[0]!.nativeHotCeiling;
    // 21000 x the default cap (500 gwei) = 0.0105 ETH.
    expect(configIssuesOf(ceiling("10000000000000000"))).toEqual([
      {
        field: "config.chains.0.nativeHotCeiling",
        message:
          "below one transfer's gas at the fee cap (21000 x maxFeePerGas = 10500000000000000 wei): a cold move of everything above it could not pay its own gas",
      },
    ]);
    expect(ceiling("10500000000000000")()).toBe(10_500_000_000_000_000n);
    expect(ceiling("21000", "1")()).toBe(21_000n);
  });
});
