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

  it("gives a listed public chain its L1 data fee model when the file leaves it out, and refuses the other one naming the field", () => {
    const parsed = (fields: Record<string, unknown>) =>
      parseFileConfig(chainSchema, { chains: [{ ...chain, ...fields }] }).chains[0]!;
    expect(parsed({ chainId: 8453 }).l1DataFee).toBe("op-stack");
    expect(parsed({ chainId: 10 }).l1DataFee).toBe("op-stack");
    expect(parsed({ chainId: 1 }).l1DataFee).toBe("none");
    expect(parsed({ chainId: 8453, l1DataFee: "op-stack" }).l1DataFee).toBe("op-stack");
    // A chain the registry does not define keeps what the file says, or nothing.
    expect(parsed({ chainId: 31337 }).l1DataFee).toBeUndefined();
    expect(parsed({ chainId: 7777777, l1DataFee: "op-stack" }).l1DataFee).toBe("op-stack");
    expect(configIssuesOf(() => parsed({ chainId: 8453, l1DataFee: "none" }))).toEqual([
      {
        field: "config.chains.0.l1DataFee",
        message:
          'chain 8453 is an OP-stack chain: it charges an L1 data fee outside gas, so l1DataFee must be "op-stack" (or left out)',
      },
    ]);
    expect(configIssuesOf(() => parsed({ chainId: 42161, l1DataFee: "op-stack" }))).toEqual([
      {
        field: "config.chains.0.l1DataFee",
        message:
          'chain 42161 charges no L1 data fee outside gas (its receipts carry no l1Fee): l1DataFee must be "none" (or left out)',
      },
    ]);
  });

  it("says which chains charge the L1 cost as gas (Arbitrum) and refuses a contradiction, naming the field", () => {
    const parsed = (fields: Record<string, unknown>) =>
      parseFileConfig(chainSchema, { chains: [{ ...chain, ...fields }] }).chains[0]!;
    expect(parsed({ chainId: 42161 }).l1CostInGas).toBe(true);
    expect(parsed({ chainId: 42161, l1CostInGas: true }).l1CostInGas).toBe(true);
    expect(parsed({ chainId: 1 }).l1CostInGas).toBe(false);
    expect(parsed({ chainId: 8453 }).l1CostInGas).toBe(false);
    // A chain the registry does not define: what the file says (an Arbitrum Orbit chain), else false.
    expect(parsed({ chainId: 31337 }).l1CostInGas).toBe(false);
    expect(parsed({ chainId: 31337, l1CostInGas: true }).l1CostInGas).toBe(true);
    expect(configIssuesOf(() => parsed({ chainId: 42161, l1CostInGas: false }))).toEqual([
      {
        field: "config.chains.0.l1CostInGas",
        message: "chain 42161 charges the L1 cost as gas: l1CostInGas must be true (or left out)",
      },
    ]);
    for (const fields of [
      { chainId: 8453, l1CostInGas: true },
      { chainId: 31337, l1DataFee: "op-stack", l1CostInGas: true },
    ])
      expect(configIssuesOf(() => parsed(fields))).toEqual([
        {
          field: "config.chains.0.l1CostInGas",
          message:
            "an OP-stack chain charges the L1 cost outside gas (l1DataFee op-stack): l1CostInGas must be false (or left out)",
        },
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
