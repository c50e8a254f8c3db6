/**
 * Configs that validate but lose money or wedge a wallet are refused at load, naming the field:
 * a fee cap of 0 (every attempt signed at 0 and never replaceable: the wallet's lowest nonce waits
 * forever behind it), a token listed twice on a chain (the asset keeps the first entry's decimals
 * while sweeps and cold moves take the last entry's threshold and ceiling), a token at the zero
 * address (it is the native asset's id: its ceiling and threshold replace the native ones, in the
 * token's units), and a hot wallet listed twice (two signers of one key in one process).
 */
import { zeroAddress } from "viem";
import { describe, expect, it } from "vitest";
import { parseFileConfig } from "../foundation/config.js";
import { configIssuesOf, minimalChain } from "../ops/testing/configFile.js";
import { chainSchema } from "./config.js";

const chain = { ...minimalChain, feeModel: "eip1559" };
const USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";

describe("unsafe configs are refused", () => {
  it("a fee cap of 0", () => {
    const issues = configIssuesOf(() =>
      parseFileConfig(chainSchema, { chains: [{ ...chain, maxFeePerGas: "0" }] }),
    );
    expect(issues.map((i) => i.field)).toEqual(["config.chains.0.maxFeePerGas"]);
  });

  it("a token listed twice on a chain (different decimals)", () => {
    const issues = configIssuesOf(() =>
      parseFileConfig(chainSchema, {
        chains: [
          {
            ...chain,
            tokens: [
              { address: USDC, symbol: "USDC", decimals: 6, hotCeiling: "1000000000" },
              { address: USDC.toLowerCase(), symbol: "USDC2", decimals: 18, hotCeiling: "1" },
            ],
          },
        ],
      }),
    );
    expect(issues.map((i) => i.field)).toEqual(["config.chains.0.tokens.1.address"]);
  });

  it("a token at the zero address (the native asset's id)", () => {
    const issues = configIssuesOf(() =>
      parseFileConfig(chainSchema, {
        chains: [
          {
            ...chain,
            nativeHotCeiling: "100000000000000000000",
            tokens: [{ address: zeroAddress, symbol: "Z", decimals: 6, hotCeiling: "1000000" }],
          },
        ],
      }),
    );
    expect(issues.map((i) => i.field)).toEqual(["config.chains.0.tokens.0.address"]);
  });

  it("a hot wallet listed twice", () => {
    const issues = configIssuesOf(() =>
      parseFileConfig(chainSchema, {
        chains: [chain],
        hotWallets: [
          { chain: "a", kmsKeyId: "alias/hot-a" },
          { chain: "a", kmsKeyId: "alias/hot-a" },
        ],
      }),
    );
    expect(issues.map((i) => i.field)).toEqual(["config.hotWallets.1.kmsKeyId"]);
  });
});
