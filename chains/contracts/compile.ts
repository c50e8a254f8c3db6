/**
 * Compiles the custody's Solidity sources with solc-js (the npm package, no native solc) into
 * `artifacts.json`: ABI and bytecode per contract. The artifacts are committed so the service
 * never compiles at run time; `artifacts.test.ts` recompiles and fails if they drifted.
 *
 * Run: `npm run contracts:compile`.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

export const contractsDir = path.dirname(fileURLToPath(import.meta.url));
export const artifactsPath = path.join(contractsDir, "artifacts.json");

/** Production sources, then test-only ones (kept apart so no one deploys a test token by mistake). */
const SOURCE_DIRS = ["", "testing"] as const;

export type ContractArtifact = { source: string; abi: unknown[]; bytecode: `0x${string}` };
export type Artifacts = {
  compiler: string;
  settings: { evmVersion: string; optimizer: { enabled: boolean; runs: number } };
  contracts: Record<string, ContractArtifact>;
};

const SETTINGS = { evmVersion: "cancun", optimizer: { enabled: true, runs: 200 } } as const;

function readSources(): Record<string, { content: string }> {
  const sources: Record<string, { content: string }> = {};
  for (const dir of SOURCE_DIRS) {
    const abs = path.join(contractsDir, dir);
    for (const file of readdirSync(abs).sort()) {
      if (!file.endsWith(".sol")) continue;
      sources[path.posix.join(dir, file)] = {
        content: readFileSync(path.join(abs, file), "utf8"),
      };
    }
  }
  return sources;
}

type SolcOutput = {
  errors?: { severity: string; formattedMessage: string }[];
  contracts: Record<
    string,
    Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>
  >;
};

export function compileContracts(): Artifacts {
  const input = {
    language: "Solidity",
    sources: readSources(),
    settings: {
      ...SETTINGS,
      // No metadata hash: the bytecode (and so every deposit address) must not change when only
      // comments or file paths change.
      metadata: { bytecodeHash: "none", appendCBOR: false },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) {
    throw new Error(`solc failed:\n${errors.map((e) => e.formattedMessage).join("\n")}`);
  }
  const contracts: Record<string, ContractArtifact> = {};
  for (const [source, byName] of Object.entries(output.contracts)) {
    for (const [name, c] of Object.entries(byName)) {
      if (c.evm.bytecode.object.length === 0) continue; // interfaces
      contracts[name] = { source, abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
    }
  }
  return { compiler: solc.version(), settings: SETTINGS, contracts };
}

export function serializeArtifacts(artifacts: Artifacts): string {
  return `${JSON.stringify(artifacts, null, 2)}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const artifacts = compileContracts();
  writeFileSync(artifactsPath, serializeArtifacts(artifacts));
  console.log(
    `compiled ${Object.keys(artifacts.contracts).join(", ")} with solc ${artifacts.compiler}`,
  );
}
