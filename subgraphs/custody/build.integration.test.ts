/**
 * `graph codegen && graph build` for the subgraph, offline (`--network` rewrites the manifest, so
 * each build runs in a scratch copy of the subgraph sharing subgraphs/node_modules). Asserts the compiled output, not only the exit code.
 */
import { execFile } from "node:child_process";
import { cp, mkdtemp, readdir, readFile, rm, stat, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireSubgraphsInstall, subgraphsBin, subgraphsRoot } from "../testing/install.js";

const run = promisify(execFile);
/**
 * `graph build` compiles AssemblyScript on the CPU: 15 s beside a simulation run, past 90 s beside
 * CPU hogs and another test worker. The limit is for a hang, not for speed; the tests' vitest
 * timeout is above it, so a hung build fails with graph's output.
 */
const GRAPH_TIMEOUT_MS = 300_000;
const source = path.join(subgraphsRoot, "custody");
const scratch: string[] = [];

async function copyOfSubgraph(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "custody-subgraph-"));
  scratch.push(dir);
  for (const entry of ["abis", "src", "schema.graphql", "subgraph.yaml", "networks.json"])
    await cp(path.join(source, entry), path.join(dir, entry), { recursive: true });
  await symlink(path.join(subgraphsRoot, "node_modules"), path.join(dir, "node_modules"));
  return dir;
}

async function graph(dir: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run(subgraphsBin("graph"), args, {
      cwd: dir,
      timeout: GRAPH_TIMEOUT_MS,
      env: { ...process.env, NO_COLOR: "1" },
    });
    return stdout + stderr;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`graph ${args.join(" ")} failed: ${e.message}\n${e.stdout}\n${e.stderr}`);
  }
}

beforeAll(() => requireSubgraphsInstall());
afterAll(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

describe("subgraph build", { timeout: GRAPH_TIMEOUT_MS + 60_000 }, () => {
  let dir: string;

  it("codegen writes the entity and event classes", async () => {
    dir = await copyOfSubgraph();
    const out = await graph(dir, ["codegen"]);
    expect(out).toContain("Types generated successfully");
    const entities = await readFile(path.join(dir, "generated", "schema.ts"), "utf8");
    for (const entity of ["Attestation", "Sweep", "CustodyWallet", "WalletTransfer"])
      expect(entities).toContain(`export class ${entity} extends Entity`);
    const events = await readFile(
      path.join(dir, "generated", "ReservesAttestor", "ReservesAttestor.ts"),
      "utf8",
    );
    expect(events).toContain("export class Attested extends ethereum.Event");
  });

  // The mappings are the same for every network (--network only swaps addresses and start blocks
  // from networks.json; networks.test.ts checks every entry), so one public network is built.
  it("builds WebAssembly for a network from networks.json (mainnet)", async () => {
    const out = await graph(dir, ["build", "--network", "mainnet"]);
    expect(out).toContain("Build completed");
    const manifest = await readFile(path.join(dir, "build", "subgraph.yaml"), "utf8");
    expect(manifest.match(/network: (\S+)/g)).toEqual([
      "network: mainnet",
      "network: mainnet",
      "network: mainnet",
    ]);
    for (const wasm of [
      "ForwarderFactory/ForwarderFactory.wasm",
      "ReservesAttestor/ReservesAttestor.wasm",
      "templates/Token/Token.wasm",
    ]) {
      const bytes = await readFile(path.join(dir, "build", wasm));
      // a WebAssembly module starts with "\0asm"
      expect(bytes.subarray(0, 4).toString("latin1")).toBe("\0asm");
      expect((await stat(path.join(dir, "build", wasm))).size).toBeGreaterThan(1000);
    }
    expect((await readdir(path.join(dir, "build"))).sort()).toEqual([
      "ForwarderFactory",
      "ReservesAttestor",
      "Token",
      "schema.graphql",
      "subgraph.yaml",
      "templates",
    ]);
  });
});
