/**
 * The subgraph's per-network facts agree with the chain registry (chains/registry.ts): every
 * built-in chain has a networks.json entry, and src/networks.ts, compiled to WebAssembly with the
 * AssemblyScript compiler graph-cli uses and called here, gives it the registry's chain id and
 * listed tokens, and parses the manifest's context lists as documented.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { knownChains } from "../../chains/registry.js";
import { requireSubgraphsInstall, subgraphsBin, subgraphsRoot } from "../testing/install.js";

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

/** src/networks.ts's exports, run as WebAssembly (strings and string arrays marshalled by the AS loader). */
let mapping: {
  chainIdOf: (network: string) => number;
  listedTokensOf: (network: string) => string[];
  splitAddresses: (list: string) => string[];
  tokensToFollow: (network: string, extra: string) => string[];
};
let scratch: string | undefined;

beforeAll(async () => {
  requireSubgraphsInstall();
  scratch = await mkdtemp(path.join(os.tmpdir(), "custody-networks-"));
  const wasm = path.join(scratch, "networks.wasm");
  await promisify(execFile)(
    subgraphsBin("asc"),
    [path.join(dir, "src", "networks.ts"), "--exportRuntime", "--runtime", "stub", "-o", wasm],
    { timeout: 60_000 },
  );
  const loader = createRequire(path.join(subgraphsRoot, "package.json"))(
    "assemblyscript/lib/loader",
  ) as {
    instantiate: (
      bytes: Buffer,
      imports: object,
    ) => Promise<{ exports: Record<string, (...args: unknown[]) => unknown> }>;
  };
  const { exports: e } = await loader.instantiate(await readFile(wasm), {});
  const str = (s: string) => e.__newString!(s) as number;
  const strings = (ptr: number) =>
    (e.__getArray!(ptr) as number[]).map((p) => e.__getString!(p) as string);
  mapping = {
    chainIdOf: (n) => e.chainIdOf!(str(n)) as number,
    listedTokensOf: (n) => strings(e.listedTokensOf!(str(n)) as number),
    splitAddresses: (l) => strings(e.splitAddresses!(str(l)) as number),
    tokensToFollow: (n, x) => strings(e.tokensToFollow!(str(n), str(x)) as number),
  };
}, 90_000);
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("subgraph networks", () => {
  it("has a network for every chain in the registry, and no other", () => {
    expect(Object.keys(GRAPH_NETWORK).sort()).toEqual(Object.keys(knownChains).sort());
    expect(Object.keys(networks).sort()).toEqual(Object.values(GRAPH_NETWORK).sort());
  });

  it.each(Object.entries(GRAPH_NETWORK))(
    "%s (%s): chain id, listed tokens, data sources",
    (key, network) => {
      const chain = knownChains[key]!.definition;
      expect(mapping.chainIdOf(network)).toBe(chain.chainId);
      expect(mapping.listedTokensOf(network)).toEqual(
        chain.tokens.map((t) => t.address.toLowerCase()),
      );
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

  it("an unknown network has chain id 0 and no listed tokens", () => {
    expect(mapping.chainIdOf("sepolia")).toBe(0);
    expect(mapping.listedTokensOf("sepolia")).toEqual([]);
  });

  it("context lists: comma-separated, any case, blanks ignored; tokens followed once each", () => {
    expect(mapping.splitAddresses("")).toEqual([]);
    expect(mapping.splitAddresses(" 0xAbC0000000000000000000000000000000000001 ,, 0x02,")).toEqual([
      "0xabc0000000000000000000000000000000000001",
      "0x02",
    ]);
    // base lists USDC; the context repeats it (checksummed) and adds one
    expect(
      mapping.tokensToFollow(
        "base",
        "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913,0x00000000000000000000000000000000000000aa",
      ),
    ).toEqual([
      "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
      "0x00000000000000000000000000000000000000aa",
    ]);
    expect(mapping.tokensToFollow("local-a", "")).toEqual([]);
  });

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
