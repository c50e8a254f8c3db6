/**
 * Runs once before the test projects: `npm test` on a fresh clone needs subgraphs/ installed (its
 * own npm package: graph-cli and Ponder stay out of the root node_modules). `.ci/run` installs it
 * explicitly; here a missing install is done the same way, so the README's `npm ci` then `npm test`
 * holds. A failed install fails the run with npm's output.
 *
 * Two test runs started at once in one fresh clone would both run `npm ci` into the same folder:
 * the first takes a lock (a directory made atomically, naming its pid); the other waits for it to
 * finish, and takes over a lock whose process is gone.
 *
 * It also drops the test and simulation databases that runs killed before their clean-up left on
 * a local server (their owner pid is gone and nobody is connected), and the test databases this
 * run's files have closed, every few seconds and the rest at the end (ops/testing/database.ts).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../../foundation/config.js";
import { dropOrphanedTestDatabases, dropTestDatabasesOf, processAlive } from "./database.js";

const LOCK = path.join(repoRoot, "subgraphs", ".install-lock");
const WAIT_MS = 15 * 60_000;
/** How often the run drops the test databases its files have closed. */
const DROP_EVERY_MS = 5_000;

const bin = (name: string) => path.join(repoRoot, "subgraphs", "node_modules", ".bin", name);
const installed = () => ["graph", "ponder"].every((name) => existsSync(bin(name)));

function tryLock(): boolean {
  try {
    mkdirSync(LOCK);
    writeFileSync(path.join(LOCK, "pid"), String(process.pid));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    let holder = Number.NaN;
    try {
      holder = Number(readFileSync(path.join(LOCK, "pid"), "utf8"));
    } catch {
      // The holder made the directory and has not written its pid yet.
      return false;
    }
    if (Number.isInteger(holder) && !processAlive(holder))
      rmSync(LOCK, { recursive: true, force: true });
    return false;
  }
}

export default async function setup(): Promise<() => Promise<void>> {
  // Databases of runs that were killed (their pid is gone): a long-lived machine stays tidy.
  const dropped = await dropOrphanedTestDatabases().catch((error: unknown) => {
    console.warn(`could not look for leftover test databases: ${String(error)}`);
    return [];
  });
  if (dropped.length > 0)
    console.log(
      `dropped ${dropped.length} test database(s) left by runs that died: ${dropped.join(", ")}`,
    );
  installSubgraphs();
  // The databases files closed, dropped here rather than on the workers' time; at the end, all of
  // the run's. vitest.config.ts names this process's pid as the run's in every worker.
  let dropping = Promise.resolve();
  const timer = setInterval(() => {
    // A failure is left for the next round, or the end's drop, which reports it.
    dropping = dropping
      .then(() => dropTestDatabasesOf(process.pid, { closed: true }))
      .then(
        () => {},
        () => {},
      );
  }, DROP_EVERY_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await dropping;
    await dropTestDatabasesOf(process.pid);
  };
}

function installSubgraphs(): void {
  if (installed()) return;
  const deadline = Date.now() + WAIT_MS;
  while (!tryLock()) {
    if (installed()) return;
    if (Date.now() > deadline)
      throw new Error(
        `waited ${WAIT_MS / 60_000} min for another run's install of subgraphs/ (${LOCK})`,
      );
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
  }
  try {
    if (installed()) return;
    console.log("subgraphs/ is not installed: running npm ci --prefix subgraphs (once)");
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const result = spawnSync(npm, ["ci", "--prefix", "subgraphs", "--no-audit", "--no-fund"], {
      cwd: repoRoot,
      stdio: "inherit",
    });
    if (result.status !== 0)
      throw new Error(`npm ci --prefix subgraphs failed (exit ${result.status ?? result.signal})`);
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}
