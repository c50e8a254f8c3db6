import { defineConfig } from "vitest/config";
import { TEST_RUN_PID_ENV } from "./ops/testing/run.js";
import SlowFirstSequencer from "./ops/testing/sequencer.js";

// Two projects: unit (pure logic, fast) and integration (real Postgres, Redis, anvil, KMS emulator).
// Each test file gets its own database, Redis prefix and anvil ports, so files run in parallel.
export default defineConfig({
  test: {
    reporters: ["default", "./ops/testing/summary-reporter.ts"],
    // Installs subgraphs/ (its own npm package) when a fresh clone has only run the root `npm ci`.
    globalSetup: ["./ops/testing/globalSetup.ts"],
    // The run's test databases are named for this process, whose globalSetup drops them once their
    // files have closed them, and the rest at the end (ops/testing/database.ts).
    env: { [TEST_RUN_PID_ENV]: String(process.pid) },
    // Without recorded durations (CI's fresh clone), the files known to be slow start first.
    sequence: { sequencer: SlowFirstSequencer },
    projects: [
      {
        test: {
          name: "unit",
          sequence: { groupOrder: 0 },
          include: ["{api,chains,foundation,indexers,ledger,ops,signer,subgraphs}/**/*.test.ts"],
          exclude: ["**/*.integration.test.ts", "ops/e2e/**", "**/node_modules/**"],
          testTimeout: 10_000,
          // A unit file's beforeAll may import heavy modules (graphql, drizzle, Ponder's schema):
          // 12 s on a loaded CI machine, past vitest's 10 s default.
          hookTimeout: 60_000,
          // Vitest's default for `run` is one worker fewer than the cores: one worker on CI's two,
          // leaving a core idle while the heavy imports (CDK, Ponder, solc) run one file at a time.
          maxWorkers: "100%",
          // One module cache per worker, as the integration project (below): isolated, each of the
          // ~80 files re-imported viem, zod, our modules in a fresh process, most of the unit
          // phase's time. No test file changes the process for the next (ops/testing/isolation.test.ts).
          isolate: false,
          // vi.stubEnv is undone after each test, so a stubbed variable never reaches the next file.
          unstubEnvs: true,
        },
      },
      {
        test: {
          name: "integration",
          sequence: { groupOrder: 1 },
          include: [
            "{api,chains,foundation,indexers,ledger,ops,signer,subgraphs}/**/*.integration.test.ts",
            "ops/e2e/**/*.test.ts",
          ],
          exclude: ["**/node_modules/**"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          pool: "forks",
          // Four on CI's two cores: the files mostly wait on anvil, Postgres and timers. On three
          // the cores sat a third idle (vmstat) and a fresh clone's suite took 925 s; on four, 5%
          // idle and 802 s (7 December 2026). The files that flaked beside load on fixed waits now
          // wait for conditions (sessions 29, 44: ledger/attest's wait for a confirmed block, the
          // RPC client's one-second belief in a lagging head).
          maxWorkers: 4,
          // Each worker process runs its files one after another on one module cache. Isolated,
          // every file re-imported viem, pg, fastify, the AWS SDK and our modules in a fresh
          // process: 221 s of the integration files' 1,412 s on CI's two cores, 732 s wall against
          // 565 s without (session 16). Nothing here relies on a fresh process: every file makes its
          // own database, Redis prefix, anvil, pools and `common` (ops/testing/context.ts) and
          // closes them in afterAll; no integration file mocks a module or sets process.env
          // (ops/testing/isolation.test.ts), and a file that leaves a socket, server, child process
          // or timer open fails (ops/testing/handleLeaks.ts).
          isolate: false,
          unstubEnvs: true,
          setupFiles: ["./ops/testing/handleLeaks.ts"],
        },
      },
    ],
  },
});
