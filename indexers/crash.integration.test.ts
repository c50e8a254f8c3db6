/**
 * kill -9: the ingestor runs as a child process (indexers/runIngestor.ts) and is SIGKILLed at 12
 * random points, first during backfill of a seeded chain, then while it follows a chain that keeps
 * growing (and reorging). After a final run to the head, the stored canonical blocks and facts must
 * equal a clean index of the same chain: no duplicate, no missing row.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { repoRoot } from "../ops/config.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { loadTip } from "./store.js";
import {
  anvilRpc,
  call,
  canonicalBlocks,
  canonicalFacts,
  deploy,
  freshAddress,
  freshIndex,
  type Rpc,
  sendTx,
  watch,
} from "./testing/chain.js";

const CHAIN_ID = 31337;
const DEPOSITS = [1, 2, 3, 4].map(freshAddress);
let ctx: TestContext;
let rpc: Rpc;
let accounts: Hex[];
let token: Hex;
let forwarder: Hex;
let chainJson: Record<string, unknown>;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: CHAIN_ID }] });
  rpc = anvilRpc(ctx.anvils[0]!.rpcUrl);
  accounts = (await rpc<Hex[]>("eth_accounts")).map((a) => a.toLowerCase() as Hex);
  token = await deploy(rpc, accounts[0]!, "TestToken", [10n ** 24n]);
  forwarder = await deploy(rpc, accounts[0]!, "Forwarder");
  await sendTx(rpc, {
    from: accounts[0]!,
    to: token,
    data: call("TestToken", "transfer", [accounts[1]!, 10n ** 20n]),
  });
  chainJson = {
    key: "crash",
    chainId: CHAIN_ID,
    name: "crash test chain",
    rpcUrls: [ctx.anvils[0]!.rpcUrl],
    confirmations: { kind: "blocks", blocks: 3 },
    reorgWindow: 8,
    blockTimeMs: 200,
    feeModel: "eip1559",
    traces: true,
    tokens: [{ address: token, symbol: "TT", decimals: 18 }],
  };
  await watch(ctx.db.pool, CHAIN_ID, [
    { address: accounts[1]!, kind: "hot" },
    ...DEPOSITS.map((address) => ({ address })),
  ]);
});

afterAll(async () => {
  await ctx?.cleanup();
});

let step = 0n;
/** One block with a native, an ERC-20, an internal transfer to deposits and a hot-wallet payment. */
async function block(): Promise<void> {
  step++;
  const d = DEPOSITS[Number(step % BigInt(DEPOSITS.length))]!;
  await rpc("evm_setAutomine", [false]);
  await sendTx(rpc, { from: accounts[0]!, to: d, value: step });
  await sendTx(rpc, {
    from: accounts[0]!,
    to: token,
    data: call("TestToken", "transfer", [d, step]),
    gas: 100_000n,
  });
  await sendTx(rpc, {
    from: accounts[0]!,
    to: forwarder,
    value: step,
    data: call("Forwarder", "forward", [d]),
    gas: 100_000n,
  });
  await sendTx(rpc, {
    from: accounts[1]!,
    to: token,
    data: call("TestToken", "transfer", [accounts[5]!, step]),
    gas: 100_000n,
  });
  await rpc("evm_mine");
  await rpc("evm_setAutomine", [true]);
}

function spawnIngestor(): { child: ChildProcess; started: Promise<void>; exited: Promise<void> } {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", path.join(repoRoot, "indexers", "runIngestor.ts")],
    {
      cwd: repoRoot,
      env: {
        ...process.env,
        DATABASE_URL: ctx.db.url,
        INDEXER_CHAIN: JSON.stringify(chainJson),
        INDEXER_BATCH_BLOCKS: "2",
        INDEXER_CONCURRENCY: "2",
        INDEXER_POLL_MS: "30",
        LOG_LEVEL: "silent",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let err = "";
  child.stderr?.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const started = new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (c: Buffer) => {
      if (c.toString().includes("ingestor started")) resolve();
    });
    child.once("exit", (code, signal) =>
      reject(new Error(`ingestor exited early (${code ?? signal}): ${err}`)),
    );
  });
  started.catch(() => {});
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { child, started, exited };
}

async function tipNumber(): Promise<bigint> {
  return (await loadTip(ctx.db.pool, CHAIN_ID))?.number ?? -1n;
}

it("kill -9 at 12 random points during backfill and realtime loses and duplicates nothing", async () => {
  for (let i = 0; i < 150; i++) await block(); // backfill material
  const killedAt: bigint[] = [];
  const lagAtKill: bigint[] = [];
  let producing = true;
  // The chain grows only while an ingestor runs (spawning one takes seconds; the chain should not
  // outrun it), so later kills land while it follows the head.
  let alive = false;
  let reorgs = 0;
  const producer = (async () => {
    let n = 0;
    while (producing) {
      if (!alive) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      await block();
      if (++n % 15 === 0) {
        // A shallow reorg now and then, so some kills land around reorg handling.
        await rpc("anvil_reorg", [
          2,
          [[{ from: accounts[0]!, to: DEPOSITS[0]!, value: `0x${(1000 + n).toString(16)}` }, 1]],
        ]);
        reorgs++;
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  try {
    for (let kill = 0; kill < 12; kill++) {
      const { child, started, exited } = spawnIngestor();
      await started;
      alive = true;
      if (kill < 6) {
        // Random instants of the backfill.
        await new Promise((r) => setTimeout(r, 150 + Math.random() * 700));
      } else {
        // Let it catch up with the head (however loaded the machine is), then a random instant
        // while it follows the growing chain.
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline) {
          const lag = BigInt(await rpc<Hex>("eth_blockNumber")) - (await tipNumber());
          if (lag <= 2n) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        await new Promise((r) => setTimeout(r, Math.random() * 500));
      }
      child.kill("SIGKILL");
      alive = false;
      await exited;
      killedAt.push(await tipNumber());
      lagAtKill.push(BigInt(await rpc<Hex>("eth_blockNumber")) - killedAt.at(-1)!);
    }
  } finally {
    producing = false;
    await producer;
  }
  // The kills hit different points of progress, during backfill and after it.
  expect(new Set(killedAt.map(String)).size).toBeGreaterThanOrEqual(6);
  expect(lagAtKill.some((lag) => lag > 20n)).toBe(true); // during backfill
  expect(lagAtKill.filter((lag) => lag <= 5n).length).toBeGreaterThanOrEqual(3); // following the head
  expect(reorgs).toBeGreaterThan(0);

  // Restart and let it reach the head, then stop it cleanly.
  const final = spawnIngestor();
  await final.started;
  const head = await rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", ["latest", false]);
  for (let i = 0; i < 300; i++) {
    const tip = await loadTip(ctx.db.pool, CHAIN_ID);
    if (tip?.hash === head.hash.toLowerCase()) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  final.child.kill("SIGTERM");
  await final.exited;

  const reference = await freshIndex({
    common: ctx.common,
    chain: {
      ...ctx.config.chains[0]!,
      ...(chainJson as object),
      tokens: [{ address: token, symbol: "TT", decimals: 18 }],
    } as never,
    sourcePool: ctx.db.pool,
  });
  const facts = await canonicalFacts(ctx.db.pool, CHAIN_ID);
  expect(facts.length).toBeGreaterThan(400);
  expect(await canonicalBlocks(ctx.db.pool, CHAIN_ID)).toEqual(reference.blocks);
  expect(facts).toEqual(reference.facts);
  const { rows } = await ctx.db.pool.query(
    `SELECT count(*)::int AS n FROM (SELECT tx_hash, position FROM chain.transfers
      WHERE status <> 'orphaned' GROUP BY tx_hash, position HAVING count(*) > 1) d`,
  );
  expect(rows[0].n).toBe(0);
});
