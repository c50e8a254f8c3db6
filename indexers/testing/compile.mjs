// Compiles contracts.sol with solc-js into contracts.compiled.json (run: node indexers/testing/compile.mjs).
import { readFileSync, writeFileSync } from "node:fs";
import solc from "solc";

const dir = new URL(".", import.meta.url);
const source = readFileSync(new URL("contracts.sol", dir), "utf8");
const input = {
  language: "Solidity",
  sources: { "contracts.sol": { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "paris",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors ?? []).filter((e) => e.severity === "error");
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(1);
}
const result = {};
for (const [name, c] of Object.entries(out.contracts["contracts.sol"]))
  result[name] = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
writeFileSync(new URL("contracts.compiled.json", dir), JSON.stringify(result));
console.log("compiled", Object.keys(result).join(", "), "with solc", solc.version());
