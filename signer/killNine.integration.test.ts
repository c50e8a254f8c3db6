/**
 * 500 transfers from one hot wallet through two signer processes while the active one is killed
 * with SIGKILL again and again, at random instants and at deterministic crash points (before
 * sign, between sign and commit, between commit and send, after send). Afterwards the chain must
 * hold exactly 500 transactions from the wallet, one per request, with no nonce gap.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { repoRoot } from "../ops/config.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import {
  createSignerHarness,
  RECIPIENT,
  type SignerHarness,
  statusCounts,
  waitFor,
} from "./testing/harness.js";

const TOTAL = 500;
const WAVE = 25;
const script = path.join(repoRoot, "signer", "testing", "walletSignerProcess.ts");

let ctx: TestContext;
let h: SignerHarness;
let dir: string;
const live = new Map<string, { child: ChildProcess; out: string[] }>();
let seq = 0;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: 31337 }] });
  h = await createSignerHarness(ctx);
  dir = mkdtempSync(path.join(tmpdir(), "signer-kill-"));
});

afterAll(async () => {
  for (const { child } of live.values()) child.kill("SIGKILL");
  await h?.close();
  await ctx?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function spawnSigner(crashAt?: string): string {
  const tag = `p${++seq}`;
  const chain = ctx.config.chains[0]!;
  const configFile = path.join(dir, "config.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      chains: [
        {
          key: chain.key,
          chainId: chain.chainId,
          name: chain.name,
          rpcUrls: chain.rpcUrls,
          confirmations: { kind: "blocks", blocks: 2 },
          reorgWindow: 8,
          blockTimeMs: 1000,
          feeModel: "eip1559",
          bumpIntervalMs: 60_000,
        },
      ],
      hotWallets: [{ chain: chain.key, kmsKeyId: h.keyId }],
    }),
  );
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: repoRoot,
    env: {
      ...process.env,
      CUSTODY_CONFIG: configFile,
      DATABASE_URL: ctx.db.url,
      REDIS_URL: ctx.config.env.REDIS_URL,
      REDIS_PREFIX: ctx.config.env.REDIS_PREFIX,
      AWS_ENDPOINT_URL_KMS: h.kmsUrl,
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
  live.set(tag, { child, out });
  child.once("exit", () => live.delete(tag));
  return tag;
}

async function leaseHolder(): Promise<string | undefined> {
  const { rows } = await ctx.db.pool.query(
    `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'signer-%'`,
  );
  return rows[0]?.application_name.slice("signer-".length);
}

const CRASH_POINTS = ["before_sign", "after_sign", "after_commit", "after_send"];

it("survives kill -9 at any point: 500 requests, each mined once, no nonce gap", async () => {
  const wallet = h.account.address;
  const startNonce = await h.client.getTransactionCount({ address: wallet });
  const startBlock = await h.client.getBlockNumber();
  const exits: { tag: string; signal: string | null }[] = [];
  const watchExit = (tag: string) =>
    live.get(tag)?.child.once("exit", (_code, signal) => exits.push({ tag, signal }));
  watchExit(spawnSigner());
  watchExit(spawnSigner());

  let inserted = 0;
  let wave = 0;
  const killedByTest = new Set<string>();
  const crashTags = new Map<string, string>();
  const sigkilled = () => exits.filter((e) => e.signal === "SIGKILL");
  const crashed = () => sigkilled().filter((e) => !killedByTest.has(e.tag));
  const crashedPoints = () =>
    new Set(crashed().map((e) => crashTags.get(e.tag)?.split(":")[0])).size;
  const deadline = Date.now() + 120_000;
  while (
    (inserted < TOTAL || killedByTest.size < 10 || crashedPoints() < 4) &&
    Date.now() < deadline
  ) {
    if (inserted < TOTAL) {
      await h.request(WAVE, { prefix: `k${wave++}`, valueBase: 1000n + BigInt(inserted) });
      inserted += WAVE;
    }
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
    const holder = await leaseHolder();
    const victim = holder ? live.get(holder) : undefined;
    // A signer with a crash point is left to kill itself at that point.
    if (holder && victim && !crashTags.has(holder) && killedByTest.size < 14) {
      killedByTest.add(holder);
      victim.child.kill("SIGKILL");
    }
    // Keep two signers: every other replacement gets a deterministic crash point.
    while (live.size < 2) {
      const crash =
        seq % 2 === 0
          ? `${CRASH_POINTS[(seq / 2) % CRASH_POINTS.length]}:${1 + Math.floor(Math.random() * 3)}`
          : undefined;
      const tag = spawnSigner(crash);
      if (crash) crashTags.set(tag, crash);
      watchExit(tag);
    }
  }
  const sigkills = sigkilled().length;
  const crashPoints = crashed().map((e) => crashTags.get(e.tag));
  // Let it finish with two healthy signers; blocks confirm the tail.
  for (const { child } of live.values()) child.kill("SIGKILL");
  await waitFor("old signers gone", async () => live.size === 0);
  watchExit(spawnSigner());
  watchExit(spawnSigner());
  await waitFor(
    "all confirmed",
    async () => {
      await h.rpc("anvil_mine", ["0x1"]);
      return (await statusCounts(ctx)).confirmed === TOTAL;
    },
    { timeoutMs: 120_000, everyMs: 500 },
  );

  expect(killedByTest.size).toBeGreaterThanOrEqual(10);
  // The deterministic points: before sign, sign-to-commit, commit-to-send, after send.
  expect(new Set(crashPoints.map((p) => p?.split(":")[0])).size).toBe(4);

  // On chain: nonce advanced by exactly 500.
  expect(await h.client.getTransactionCount({ address: wallet })).toBe(startNonce + TOTAL);
  // Every request has its own nonce, start..start+499 with no gap.
  const { rows } = await ctx.db.pool.query(
    "SELECT id, nonce::int, value::text, tx_hash FROM custody.tx_requests ORDER BY nonce",
  );
  expect(rows.map((r) => r.nonce)).toEqual(Array.from({ length: TOTAL }, (_, i) => startNonce + i));
  // Every transaction from the wallet on chain, each request's value exactly once.
  const head = await h.client.getBlockNumber();
  const seen = new Map<string, number>();
  const hashes = new Set<string>();
  for (let b = startBlock + 1n; b <= head; b++) {
    const block = await h.client.getBlock({ blockNumber: b, includeTransactions: true });
    for (const tx of block.transactions) {
      if (tx.from.toLowerCase() !== wallet.toLowerCase()) continue;
      expect(tx.to?.toLowerCase()).toBe(RECIPIENT.toLowerCase());
      seen.set(tx.value.toString(), (seen.get(tx.value.toString()) ?? 0) + 1);
      hashes.add(tx.hash);
    }
  }
  expect(seen.size).toBe(TOTAL);
  expect([...seen.values()].every((n) => n === 1)).toBe(true);
  for (const r of rows) {
    expect(seen.get(r.value)).toBe(1);
    expect(hashes.has(r.tx_hash as Hex)).toBe(true);
  }
  console.log(
    `kill -9: ${sigkills} SIGKILLs while processing: ${killedByTest.size} of the lease holder at random instants, ${crashPoints.length} at crash points (${crashPoints.join(", ")})`,
  );
}, 240_000);
