/**
 * The scale bench (`npm run bench -- scale`, issue 15's evidence) at 1/100 (SCALE_SMOKE) in a
 * database of this run's: every measurement that needs a node, the database and our code prints
 * its figure, none is "not measured". Nothing else runs the bench between the sessions that read
 * its figures: the RPC client's chain-id and block-hash checks once made both reconciliation lines
 * fail unnoticed. The following measurement (60 s of blocks) is left to the bench itself.
 */
import { randomBytes } from "node:crypto";
import { afterAll, expect, it } from "vitest";
import { admin } from "../testing/database.js";
import { spawnScript } from "../testing/process.js";
import { testRunPid } from "../testing/run.js";

// Named as a test database of this run (ops/testing/database.ts testDatabaseOwner): dropped by the
// run's teardown should this file be killed before its afterAll.
const database = `custody_test_scale_${testRunPid() ?? process.pid}_${randomBytes(4).toString("hex")}`;

afterAll(async () => {
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
});

const FIGURES = [
  "crediting a new block of 1,000 deposits (median of 5)",
  "crediting floor: a block's rows written alone (median of 5)",
  "sweep planning pass (median of 5)",
  "full reconciliation of 100,002 facts (6 chains, one after another)",
  "full reconciliation peak RSS",
  "incremental reconciliation of one block of 10,000 transfers (median of 3)",
  "incremental reconciliation: the on-chain read of the block's balances alone (median of 3)",
  "incremental reconciliation floor: a block's rows read and written alone, on-chain read not included (median of 3)",
  "allocating 1,000 addresses while the indexer runs (indexer stall), block time 250 ms",
];

it("prints every figure at 1/100, none left unmeasured", async () => {
  const bench = spawnScript("ops/bench/scale.ts", [], {
    SCALE_SMOKE: "1",
    SCALE_DATABASE: database,
    SCALE_ONLY: "crediting,sweep-planning,recon-full,recon-incremental,indexer-stall",
  });
  const { code } = await bench.exited;
  const out = bench.output();
  expect(code, out).toBe(0);
  expect(out).not.toMatch(/not measured/);
  for (const label of FIGURES)
    expect(out, label).toMatch(
      new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: [0-9][0-9,.]* [a-zA-Z]+$`, "m"),
    );
}, 300_000);
