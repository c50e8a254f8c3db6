/**
 * Where a scenario's ingestor runs: in this process (fast), or as a child process
 * (ops/sim/ingestorChild.ts) that can be killed with SIGKILL at any instant. Either way the
 * scenario decides when it syncs (`sync`), so a seed replays the same schedule.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { ChainConfig } from "../../chains/index.js";
import { createEvmAdapter } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { repoRoot } from "../../foundation/config.js";
import type { Pool } from "../../foundation/db.js";
import { createIngestor, type Ingestor } from "../../indexers/index.js";
import { tsNodeArgs } from "../testing/process.js";

export type SyncOutcome = { ok: true } | { ok: false; error: string };

export type IngestorHost = {
  /** One syncOnce pass (errors are an outcome, not a throw: bad days make them). */
  sync: () => Promise<SyncOutcome>;
  /** kill -9 after `afterMs` of a sync pass (child only), then start a fresh process. */
  killDuringSync?: (afterMs: number) => Promise<void>;
  stop: () => Promise<void>;
};

export async function inProcessIngestor(args: {
  common: Common;
  pool: Pool;
  chain: ChainConfig;
  batchBlocks: number;
  rpcTimeoutMs: number;
}): Promise<IngestorHost> {
  const ingestor: Ingestor = await createIngestor({
    common: args.common,
    pool: args.pool,
    adapter: createEvmAdapter(
      args.chain,
      { common: args.common },
      { timeoutMs: args.rpcTimeoutMs },
    ),
    options: { batchBlocks: args.batchBlocks, concurrency: 2 },
  });
  return {
    async sync() {
      try {
        await ingestor.syncOnce();
        return { ok: true };
      } catch (error) {
        return { ok: false, error: (error as Error).message };
      }
    },
    stop: () => ingestor.stop(),
  };
}

type Child = {
  child: ChildProcess;
  lines: string[];
  waiters: ((line: string) => void)[];
  exited: Promise<void>;
  stderr: () => string;
};

function spawnChild(env: Record<string, string>): Child {
  const child = spawn(process.execPath, tsNodeArgs("ops/sim/ingestorChild.ts"), {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const state: Child = {
    child,
    lines: [],
    waiters: [],
    exited: new Promise<void>((resolve) => child.once("exit", () => resolve())),
    stderr: () => err,
  };
  let err = "";
  let buffer = "";
  child.stderr?.on("data", (c: Buffer) => {
    err = (err + c.toString()).slice(-4000);
  });
  child.stdout?.on("data", (c: Buffer) => {
    buffer += c.toString();
    let i = buffer.indexOf("\n");
    while (i >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      // pino logs are JSON lines; protocol lines are plain words.
      if (!line.startsWith("{")) {
        const waiter = state.waiters.shift();
        if (waiter) waiter(line);
        else state.lines.push(line);
      }
      i = buffer.indexOf("\n");
    }
  });
  return state;
}

function nextLine(c: Child, timeoutMs: number): Promise<string> {
  const queued = c.lines.shift();
  if (queued !== undefined) return Promise.resolve(queued);
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      const i = c.waiters.indexOf(waiter);
      if (i >= 0) c.waiters.splice(i, 1);
      reject(new Error(`sim ingestor child did not answer within ${timeoutMs} ms: ${c.stderr()}`));
    }, timeoutMs);
    const waiter = (line: string) => {
      clearTimeout(timer);
      resolve(line);
    };
    c.waiters.push(waiter);
    c.exited.then(() => {
      const i = c.waiters.indexOf(waiter);
      if (i >= 0) {
        c.waiters.splice(i, 1);
        clearTimeout(timer);
        reject(new Error(`sim ingestor child exited: ${c.stderr()}`));
      }
    });
  });
}

/** The ingestor as a killable child process. */
export async function childIngestor(args: {
  databaseUrl: string;
  chain: Record<string, unknown>;
  batchBlocks: number;
  rpcTimeoutMs: number;
  logLevel: string;
}): Promise<IngestorHost & { kills: () => number }> {
  const env = {
    DATABASE_URL: args.databaseUrl,
    SIM_CHAIN: JSON.stringify(args.chain),
    SIM_BATCH_BLOCKS: String(args.batchBlocks),
    SIM_RPC_TIMEOUT_MS: String(args.rpcTimeoutMs),
    LOG_LEVEL: args.logLevel,
  };
  const start = async () => {
    const c = spawnChild(env);
    // Its start-up imports the indexer from source: beside a loaded machine's other work that took
    // over 60 s (deposits seeds 54061, 57054: harness failures, their replays passed).
    const first = await nextLine(c, 180_000);
    if (first !== "ready") throw new Error(`sim ingestor child said ${first}: ${c.stderr()}`);
    return c;
  };
  let current = await start();
  let kills = 0;
  return {
    async sync() {
      current.child.stdin?.write("sync\n");
      const line = await nextLine(current, 120_000);
      return line === "ok" ? { ok: true } : { ok: false, error: line.replace(/^error /, "") };
    },
    async killDuringSync(afterMs) {
      current.child.stdin?.write("sync\n");
      await new Promise((r) => setTimeout(r, afterMs));
      current.child.kill("SIGKILL");
      await current.exited;
      kills++;
      current = await start();
    },
    kills: () => kills,
    async stop() {
      if (current.child.exitCode !== null || current.child.signalCode !== null) return;
      current.child.stdin?.write("stop\n");
      const timer = setTimeout(() => current.child.kill("SIGKILL"), 10_000);
      await current.exited;
      clearTimeout(timer);
    },
  };
}
