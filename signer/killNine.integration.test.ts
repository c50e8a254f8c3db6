/**
 * 500 transfers from one hot wallet through signer processes while the active one is killed with
 * SIGKILL again and again: first the lease holder at 10 points of progress picked in advance (when
 * the count of requests holding a nonce passes each target), then a signer that kills itself at each
 * deterministic crash point (before sign, between sign and commit, between commit and send, after
 * send) while work is pending. Afterwards the chain must hold exactly 500 transactions from the
 * wallet, one per request, with no nonce gap.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { repoRoot } from "../foundation/config.js";
import { tsNodeArgs, writeChainConfig } from "../ops/testing/process.js";
import { waitFor, within } from "../ops/testing/wait.js";
import { RECIPIENT, statusCounts } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

const TOTAL = 500;
const WAVE = 25;
const PROGRESS_KILLS = 10;
const CRASH_POINTS = ["before_sign", "after_sign", "after_commit", "after_send"];
const script = path.join(repoRoot, "signer", "testing", "walletSignerProcess.ts");

type Signer = {
  tag: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
};

let t: SignerTest;
let dir: string;
const live = new Map<string, Signer>();
let seq = 0;
let inserted = 0;

beforeAll(async () => {
  t = await startSignerTest();
  dir = mkdtempSync(path.join(tmpdir(), "signer-kill-"));
});

afterAll(async () => {
  for (const { child } of live.values()) child.kill("SIGKILL");
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function spawnSigner(crashAt?: string): Signer {
  const tag = `p${++seq}`;
  const configFile = writeChainConfig(
    path.join(dir, "config.json"),
    t.ctx.config.chains[0]!,
    {
      confirmations: { kind: "blocks", blocks: 2 },
      reorgWindow: 8,
      blockTimeMs: 1000,
      feeModel: "eip1559",
      bumpIntervalMs: 60_000,
    },
    t.keyId,
  );
  const child = spawn(process.execPath, tsNodeArgs(script), {
    cwd: repoRoot,
    env: {
      ...process.env,
      CUSTODY_CONFIG: configFile,
      DATABASE_URL: t.ctx.db.url,
      REDIS_URL: t.ctx.config.env.REDIS_URL,
      REDIS_PREFIX: t.ctx.config.env.REDIS_PREFIX,
      AWS_ENDPOINT_URL_KMS: t.kmsUrl,
      LOG_LEVEL: "warn",
      SIGNER_PROCESS_TAG: tag,
      SIGNER_CRASH_AT: crashAt ?? "",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: string[] = [];
  const keep = (c: Buffer) => {
    out.push(c.toString());
    if (out.length > 50) out.shift();
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    // "close", not "exit": the output is complete only once the pipes have closed.
    child.once("close", (code, signal) => {
      live.delete(tag);
      resolve({ code, signal });
    }),
  );
  const signer = { tag, child, output: () => out.join(""), exited };
  live.set(tag, signer);
  return signer;
}

/** The process holding the wallet's lease, from this test's own database only. */
async function leaseHolder(): Promise<string | undefined> {
  const { rows } = await t.ctx.db.pool.query(
    `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND a.datname = current_database() AND a.application_name LIKE 'signer-%'`,
  );
  return rows[0]?.application_name.slice("signer-".length);
}

async function counts(): Promise<{ withNonce: number; waiting: number }> {
  const { rows } = await t.ctx.db.pool.query(
    `SELECT count(*) FILTER (WHERE nonce IS NOT NULL)::int AS with_nonce,
            count(*) FILTER (WHERE nonce IS NULL)::int AS waiting
       FROM custody.tx_requests`,
  );
  return { withNonce: rows[0].with_nonce, waiting: rows[0].waiting };
}

async function insert(n: number): Promise<void> {
  await t.request(n, { prefix: `k${inserted}`, valueBase: 1000n + BigInt(inserted) });
  inserted += n;
}

async function sigkill(signer: Signer): Promise<void> {
  signer.child.kill("SIGKILL");
  await within(`signer ${signer.tag} to exit`, signer.exited, 30_000);
}

it("survives kill -9 at any point: 500 requests, each mined once, no nonce gap", async () => {
  const wallet = t.account.address;
  const startNonce = await t.client.getTransactionCount({ address: wallet });
  const startBlock = await t.client.getBlockNumber();

  // 1. Kill the lease holder each time the requests holding a nonce pass a target picked now,
  // with a standby beside it; work is kept arriving ahead of the signers.
  const targets = Array.from(
    { length: PROGRESS_KILLS },
    (_, i) => 10 + i * 28 + Math.floor(Math.random() * 20),
  );
  const killed: { tag: string; at: number }[] = [];
  spawnSigner();
  spawnSigner();
  for (const target of targets) {
    const last = killed.at(-1)?.at ?? -1;
    await waitFor(
      `requests holding a nonce to reach ${target}`,
      async () => {
        const { withNonce } = await counts();
        if (inserted < TOTAL && inserted - withNonce < 2 * WAVE) await insert(WAVE);
        // Past the target, and the holder since the last kill has done some work.
        return withNonce >= target && withNonce > last;
      },
      { timeoutMs: 120_000, everyMs: 20 },
    );
    const holder = await waitFor("a signer to hold the lease", leaseHolder, { everyMs: 20 });
    const victim = live.get(holder);
    expect(victim, `lease holder ${holder} is one of this test's signers`).toBeDefined();
    await sigkill(victim!);
    killed.push({ tag: holder, at: (await counts()).withNonce });
    spawnSigner();
  }

  // 2. Each crash point: a signer that kills itself at the n-th pass of that point. It runs alone
  // (so it takes the lease), with requests waiting whenever it looks for work.
  for (const signer of [...live.values()]) await sigkill(signer);
  const crashes: { point: string; signal: string | null; said: boolean }[] = [];
  for (const point of CRASH_POINTS) {
    const crasher = spawnSigner(`${point}:${1 + Math.floor(Math.random() * 2)}`);
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    void crasher.exited.then((e) => {
      exit = e;
    });
    await waitFor(
      `the signer with crash point ${point} to kill itself`,
      async () => {
        if (exit) return true;
        if ((await counts()).waiting === 0) await insert(5);
        return false;
      },
      { timeoutMs: 120_000, everyMs: 20 },
    );
    crashes.push({
      point,
      signal: exit!.signal,
      said: crasher.output().includes("crash point reached"),
    });
  }

  // 3. The rest of the requests, and two signers that are left alone to finish.
  if (inserted < TOTAL) await insert(TOTAL - inserted);
  spawnSigner();
  spawnSigner();
  await waitFor(
    "all confirmed",
    async () => {
      await t.rpc("anvil_mine", ["0x1"]);
      return (await statusCounts(t.ctx)).confirmed === TOTAL;
    },
    { timeoutMs: 180_000, everyMs: 500 },
  );

  // Every crash point was reached and killed its process there (not something else).
  expect(crashes).toEqual(CRASH_POINTS.map((point) => ({ point, signal: "SIGKILL", said: true })));

  // On chain: nonce advanced by exactly 500.
  expect(inserted).toBe(TOTAL);
  expect(await t.client.getTransactionCount({ address: wallet })).toBe(startNonce + TOTAL);
  // Every request has its own nonce, start..start+499 with no gap.
  const { rows } = await t.ctx.db.pool.query<{
    id: string;
    nonce: number;
    value: bigint;
    tx_hash: string;
  }>("SELECT id, nonce::int, value, tx_hash FROM custody.tx_requests ORDER BY nonce");
  expect(rows.map((r) => r.nonce)).toEqual(Array.from({ length: TOTAL }, (_, i) => startNonce + i));
  // Every transaction from the wallet on chain, each request's value exactly once.
  const head = await t.client.getBlockNumber();
  const seen = new Map<bigint, number>();
  const hashes = new Set<string>();
  for (let b = startBlock + 1n; b <= head; b++) {
    const block = await t.client.getBlock({ blockNumber: b, includeTransactions: true });
    for (const tx of block.transactions) {
      if (tx.from.toLowerCase() !== wallet.toLowerCase()) continue;
      expect(tx.to?.toLowerCase()).toBe(RECIPIENT.toLowerCase());
      seen.set(tx.value, (seen.get(tx.value) ?? 0) + 1);
      hashes.add(tx.hash);
    }
  }
  expect(seen.size).toBe(TOTAL);
  expect([...seen.values()].every((n) => n === 1)).toBe(true);
  for (const r of rows) {
    expect(seen.get(r.value)).toBe(1);
    expect(hashes.has(r.tx_hash as Hex)).toBe(true);
  }
}, 600_000);
