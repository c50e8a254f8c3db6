import { getAddress } from "viem";
import { arbitrum, base, bsc, mainnet, optimism, polygon } from "viem/chains";
import { describe, expect, it } from "vitest";
import { KNOWN_L1_DATA_FEE } from "./config.js";
import { knownChains, MULTICALL3_ADDRESS, multicall3For } from "./registry.js";

describe("knownChains", () => {
  it("defines the six public chains and the two local anvils, each valid and unique", () => {
    expect(Object.keys(knownChains).sort()).toEqual(
      ["arbitrum", "base", "bsc", "ethereum", "local-a", "local-b", "optimism", "polygon"].sort(),
    );
    const ids = Object.values(knownChains).map((c) => c.definition.chainId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const [key, c] of Object.entries(knownChains)) expect(c.definition.key).toBe(key);
    expect(knownChains.bsc!.definition.feeModel).toBe("legacy");
    expect(knownChains.ethereum!.definition.confirmations).toEqual({ kind: "finalized" });
  });
  it("knows multicall3 on public chains only", () => {
    expect(multicall3For(1)).toBe(MULTICALL3_ADDRESS);
    expect(multicall3For(31337)).toBeUndefined();
  });
  it("takes public chains' facts from viem/chains and keeps our placeholder RPCs", () => {
    const viem = { ethereum: mainnet, bsc, polygon, arbitrum, base, optimism };
    for (const [key, v] of Object.entries(viem)) {
      const c = knownChains[key]!;
      expect(c.viemChain, key).toBe(v);
      expect(c.definition, key).toMatchObject({
        chainId: v.id,
        name: v.name,
        nativeSymbol: v.nativeCurrency.symbol,
        nativeDecimals: v.nativeCurrency.decimals,
      });
      expect(c.multicall3, key).toBe(getAddress(v.contracts.multicall3.address));
      expect(c.viemChain?.contracts?.multicall3?.blockCreated, key).toBeGreaterThan(0);
      expect(c.viemChain?.blockExplorers?.default.url, key).toMatch(/^https:\/\//);
      expect(c.definition.rpcUrls, key).toEqual([expect.stringMatching(/publicnode\.com$/)]);
      // viem's OP-stack chains carry the GasPriceOracle: the L1 data fee model config.ts assumes.
      const l1DataFee = v.contracts && "gasPriceOracle" in v.contracts ? "op-stack" : "none";
      expect(KNOWN_L1_DATA_FEE.get(v.id), key).toBe(l1DataFee);
      expect(c.definition.l1DataFee, key).toBe(l1DataFee);
      // Arbitrum charges the L1 cost as gas (signer/broadcaster/regas.ts re-estimates for it).
      expect(c.definition.l1CostInGas, key).toBe(key === "arbitrum");
    }
    expect(knownChains["local-a"]!.viemChain).toBeUndefined();
  });
});

describe("traces per built-in chain", () => {
  it("says honestly whether traces are on, and which method a deployment can switch to", () => {
    for (const [key, c] of Object.entries(knownChains)) {
      const { traces } = c.definition;
      expect(c.traceSupport.methods.length, key).toBeGreaterThan(0);
      expect(c.traceSupport.note, key).toMatch(traces ? /^traces on/ : /^traces off/);
      // Public chains: the placeholder RPC is not known to trace, so off, and the gap is named.
      if (c.multicall3) {
        expect(traces, key).toBe(false);
        expect(c.traceSupport.note, key).toContain("unattributed_inflow");
      }
    }
    expect(knownChains["local-a"]!.definition.traces).toBe(true);
    expect(knownChains.arbitrum!.traceSupport.methods).toEqual(["debug_traceBlockByHash"]);
  });
});
