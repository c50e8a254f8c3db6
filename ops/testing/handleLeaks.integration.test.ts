/**
 * The integration project's handle-leak check (ops/testing/handleLeaks.ts, its setup file) run by
 * vitest itself on two files of its own (ops/testing/fixtures/leaks): the file that leaves a
 * timer and a server open fails, naming them; the file that closes what it opens passes.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../foundation/config.js";

const run = promisify(execFile);
const vitest = path.join(repoRoot, "node_modules", "vitest", "vitest.mjs");
const config = path.join(repoRoot, "ops", "testing", "fixtures", "leaks", "vitest.config.ts");

type Report = {
  numFailedTestSuites: number;
  testResults: { name: string; status: string; message: string }[];
};

describe("the integration project's handle-leak check", () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("fails a file that leaves a timer and a server open, and passes one that closes them", async () => {
    dir = await mkdtemp(path.join(tmpdir(), "handle-leaks-"));
    const out = path.join(dir, "report.json");
    const exit = await run(
      process.execPath,
      [vitest, "run", "--config", config, "--reporter=json", `--outputFile=${out}`],
      { cwd: repoRoot },
    ).then(
      () => 0,
      (error: { code?: number }) => error.code ?? -1,
    );
    const report = JSON.parse(await readFile(out, "utf8")) as Report;
    const byFile = Object.fromEntries(
      report.testResults.map((r) => [
        path.basename(r.name),
        { status: r.status, message: r.message },
      ]),
    );
    expect(exit).toBe(1);
    expect(report.numFailedTestSuites).toBe(1);
    expect(byFile["tidy.fixture.ts"]).toEqual({ status: "passed", message: "" });
    expect(byFile["leaky.fixture.ts"]?.status).toBe("failed");
    expect(byFile["leaky.fixture.ts"]?.message).toContain(
      "this file left open TCPServerWrap ×1, Timeout ×1",
    );
  });
});
