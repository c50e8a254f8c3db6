/**
 * The subgraph's per-network facts agree with the chain registry (chains/registry.ts): every
 * built-in chain has a networks.json entry, and src/networks.ts (AssemblyScript, read here as text)
 * gives it the registry's chain id and listed tokens.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { knownChains } from "../../chains/registry.js";
import { subgraphsRoot } from "../testing/install.js";

/** The Graph's network names for our registry keys (https://thegraph.com/docs/en/supported-networks/). */
const GRAPH_NETWORK: Record<string, string> = {
  ethereum: "mainnet",
  bsc: "bsc",
  polygon: "matic",
  arbitrum: "arbitrum-one",
  base: "base",
  optimism: "optimism",
  "local-a": "local-a",
  "local-b": "local-b",
};

const dir = path.join(subgraphsRoot, "custody");
const networks = JSON.parse(readFileSync(path.join(dir, "networks.json"), "utf8")) as Record<
  string,
  Record<string, { address: string; startBlock: number }>
>;
const table = readFileSync(path.join(dir, "src", "networks.ts"), "utf8");

function chainIdInTable(network: string): number | undefined {
  const m = table.match(new RegExp(`network == "${network}"\\) return (\\d+);`));
  return m ? Number(m[1]) : undefined;
}

function tokensInTable(network: string): string[] {
  const body = table.slice(table.indexOf("export function listedTokensOf"));
  const m = body.match(new RegExp(`network == "${network}"\\)\\s*return \\[([^\\]]*)\\]`));
  return m ? [...m[1]!.matchAll(/"(0x[0-9a-f]{40})"/g)].map((t) => t[1]!) : [];
}

describe("subgraph networks", () => {
  it("has a network for every chain in the registry, and no other", () => {
    expect(Object.keys(GRAPH_NETWORK).sort()).toEqual(Object.keys(knownChains).sort());
    expect(Object.keys(networks).sort()).toEqual(Object.values(GRAPH_NETWORK).sort());
  });

  it.each(Object.entries(GRAPH_NETWORK))(
    "%s (%s): chain id, listed tokens, data sources",
    (key, network) => {
      const chain = knownChains[key]!.definition;
      expect(chainIdInTable(network)).toBe(chain.chainId);
      expect(tokensInTable(network)).toEqual(chain.tokens.map((t) => t.address.toLowerCase()));
      expect(Object.keys(networks[network]!).sort()).toEqual([
        "ForwarderFactory",
        "ReservesAttestor",
      ]);
      for (const source of Object.values(networks[network]!)) {
        expect(source.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
        expect(Number.isSafeInteger(source.startBlock)).toBe(true);
      }
    },
  );

  it("the subgraph's ABIs are the committed contract artifacts' (constructor aside)", async () => {
    const { artifacts } = await import("../../chains/contracts/index.js");
    for (const name of ["ForwarderFactory", "ReservesAttestor"]) {
      const abi = JSON.parse(readFileSync(path.join(dir, "abis", `${name}.json`), "utf8"));
      expect(abi).toEqual(
        (artifacts.contracts[name]!.abi as { type: string }[]).filter(
          (item) => item.type !== "constructor",
        ),
      );
    }
  });
});
