/**
 * Ingestion against a real anvil and Postgres: native (EOA and internal via a contract), ERC-20 in
 * and out, failed transactions, several transfers in one block, unwatched and unlisted transfers;
 * each stored exactly once, with fees, confirmations and the chain-facts doorbell.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCommon } from "../foundation/common.js";
import { createPool } from "../foundation/db.js";
import { createMetrics } from "../foundation/metrics.js";
import { capturedLogger } from "../ops/testing/logs.js";
import { startTcpProxy } from "../ops/testing/tcpProxy.js";
import { waitFor } from "../ops/testing/wait.js";
import type { Ingestor } from "./createIngestor.js";
import { CHAIN_FACTS_QUEUE, type ChainFactsJob, createFactsDoorbell } from "./doorbell.js";
import { NATIVE_ASSET } from "./extractFacts.js";
import { INDEXER_LEASE_NAMESPACE } from "./sync/loop.js";
import {
  call,
  canonicalFacts,
  deploy,
  freshAddress,
  type Receipt,
  receipt,
  type StoredFact,
  sendAndMine,
  sendTx,
  syncToHead,
  watch,
} from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
let t: IndexerTest;
let ingestor: Ingestor;
let accounts: Hex[];
let token: Hex;
let unlisted: Hex;
let forwarder: Hex;

const D1 = freshAddress(1);
const D2 = freshAddress(2);
const D3 = freshAddress(3);
const D4 = freshAddress(4);
const D5 = freshAddress(5);
const OUTSIDER = freshAddress(99);

beforeAll(async () => {
  t = await startIndexerTest({
    token: true,
    config: { confirmations: { kind: "blocks", blocks: 3 } },
  });
  accounts = t.accounts.map((a) => a.toLowerCase() as Hex);
  token = t.token!;
  unlisted = await deploy(t.rpc, accounts[0]!, "TestToken", [10n ** 24n]);
  forwarder = await deploy(t.rpc, accounts[0]!, "Forwarder");
  // accounts[1] is a hot wallet (it sends, so its fees are facts); D1..D5 are deposit addresses.
  await watch(t.ctx.db.pool, CHAIN_ID, [
    { address: accounts[1]!, kind: "hot" },
    ...[D1, D2, D3, D4, D5].map((address) => ({ address })),
  ]);
  ingestor = await t.ingestor({
    doorbell: createFactsDoorbell(t.ctx.queues),
    options: { batchBlocks: 4 },
  });
});

afterAll(async () => {
  await t?.stop();
});

type Expected = Omit<StoredFact, "block_number" | "block_hash" | "status">;

function fee(r: Receipt): bigint {
  return BigInt(r.gasUsed) * BigInt(r.effectiveGasPrice);
}

describe("ingestion", () => {
  const expected: Expected[] = [];
  const [a0, a1] = [() => accounts[0]!, () => accounts[1]!];

  it("stores every custody fact exactly once and nothing else", async () => {
    // This test's blocks: everything after the current head (other tests add their own blocks).
    const first = BigInt(await t.rpc<Hex>("eth_blockNumber")) + 1n;
    // Native from an EOA to a deposit address.
    let r = await sendAndMine(t.rpc, { from: a0(), to: D1, value: 10n ** 18n });
    expected.push({
      tx_hash: r.transactionHash,
      position: "tx",
      kind: "native",
      asset: NATIVE_ASSET,
      from_address: a0(),
      to_address: D1,
      amount: 10n ** 18n,
    });
    // Native out of the hot wallet: value and fee.
    r = await sendAndMine(t.rpc, { from: a1(), to: OUTSIDER, value: 5n });
    expected.push({
      tx_hash: r.transactionHash,
      position: "tx",
      kind: "native",
      asset: NATIVE_ASSET,
      from_address: a1(),
      to_address: OUTSIDER,
      amount: 5n,
    });
    expected.push({
      tx_hash: r.transactionHash,
      position: "fee",
      kind: "fee",
      asset: NATIVE_ASSET,
      from_address: a1(),
      to_address: NATIVE_ASSET,
      amount: fee(r),
    });
    // A failed transaction from the hot wallet: its inner payment to D2 never happened; only the fee.
    r = await sendAndMine(t.rpc, {
      from: a1(),
      to: forwarder,
      value: 7n,
      data: call("Forwarder", "forwardThenRevert", [D2]),
      gas: 200_000n,
    });
    expect(r.status).toBe("0x0");
    expected.push({
      tx_hash: r.transactionHash,
      position: "fee",
      kind: "fee",
      asset: NATIVE_ASSET,
      from_address: a1(),
      to_address: NATIVE_ASSET,
      amount: fee(r),
    });
    // Internal: an unwatched EOA pays a contract that pays D3.
    r = await sendAndMine(t.rpc, {
      from: a0(),
      to: forwarder,
      value: 11n,
      data: call("Forwarder", "forward", [D3]),
    });
    expected.push({
      tx_hash: r.transactionHash,
      position: "trace:0",
      kind: "internal",
      asset: NATIVE_ASSET,
      from_address: forwarder,
      to_address: D3,
      amount: 11n,
    });
    // Internal with a reverted branch: D4 is paid, D5's payment is inside a reverted frame.
    r = await sendAndMine(t.rpc, {
      from: a0(),
      to: forwarder,
      value: 20n,
      data: call("Forwarder", "split", [D4, D5]),
      gas: 300_000n,
    });
    expect(r.status).toBe("0x1");
    expected.push({
      tx_hash: r.transactionHash,
      position: "trace:0",
      kind: "internal",
      asset: NATIVE_ASSET,
      from_address: forwarder,
      to_address: D4,
      amount: 10n,
    });
    // ERC-20 in to a deposit address and to the hot wallet, then out of the hot wallet.
    r = await sendAndMine(t.rpc, {
      from: a0(),
      to: token,
      data: call("TestToken", "transfer", [D1, 1000n]),
    });
    expected.push({
      tx_hash: r.transactionHash,
      position: "transfer:0",
      kind: "erc20",
      asset: token,
      from_address: a0(),
      to_address: D1,
      amount: 1000n,
    });
    r = await sendAndMine(t.rpc, {
      from: a0(),
      to: token,
      data: call("TestToken", "transfer", [a1(), 500n]),
    });
    expected.push({
      tx_hash: r.transactionHash,
      position: "transfer:0",
      kind: "erc20",
      asset: token,
      from_address: a0(),
      to_address: a1(),
      amount: 500n,
    });
    r = await sendAndMine(t.rpc, {
      from: a1(),
      to: token,
      data: call("TestToken", "transfer", [OUTSIDER, 200n]),
    });
    expected.push({
      tx_hash: r.transactionHash,
      position: "transfer:0",
      kind: "erc20",
      asset: token,
      from_address: a1(),
      to_address: OUTSIDER,
      amount: 200n,
    });
    expected.push({
      tx_hash: r.transactionHash,
      position: "fee",
      kind: "fee",
      asset: NATIVE_ASSET,
      from_address: a1(),
      to_address: NATIVE_ASSET,
      amount: fee(r),
    });
    // Not custody facts: unwatched native, an unlisted token to a deposit address.
    await sendAndMine(t.rpc, { from: a0(), to: OUTSIDER, value: 3n });
    await sendAndMine(t.rpc, {
      from: a0(),
      to: unlisted,
      data: call("TestToken", "transfer", [D1, 9n]),
    });
    // Several transfers in one block.
    await t.rpc("evm_setAutomine", [false]);
    const hashes = [
      await sendTx(t.rpc, { from: a0(), to: D2, value: 21n }),
      await sendTx(t.rpc, {
        from: a0(),
        to: token,
        data: call("TestToken", "transfer", [D2, 22n]),
        gas: 100_000n,
      }),
      await sendTx(t.rpc, {
        from: a0(),
        to: token,
        data: call("TestToken", "transfer", [D3, 23n]),
        gas: 100_000n,
      }),
      await sendTx(t.rpc, {
        from: a0(),
        to: forwarder,
        value: 24n,
        data: call("Forwarder", "forward", [D5]),
        gas: 100_000n,
      }),
    ];
    await t.rpc("evm_mine");
    await t.rpc("evm_setAutomine", [true]);
    const rs = await Promise.all(hashes.map((h) => receipt(t.rpc, h)));
    expect(new Set(rs.map((x) => x.blockNumber)).size).toBe(1);
    expected.push({
      tx_hash: rs[0]!.transactionHash,
      position: "tx",
      kind: "native",
      asset: NATIVE_ASSET,
      from_address: a0(),
      to_address: D2,
      amount: 21n,
    });
    expected.push({
      tx_hash: rs[1]!.transactionHash,
      position: "transfer:0",
      kind: "erc20",
      asset: token,
      from_address: a0(),
      to_address: D2,
      amount: 22n,
    });
    expected.push({
      tx_hash: rs[2]!.transactionHash,
      position: "transfer:0", // the second Transfer of the block, the first of its tx
      kind: "erc20",
      asset: token,
      from_address: a0(),
      to_address: D3,
      amount: 23n,
    });
    expected.push({
      tx_hash: rs[3]!.transactionHash,
      position: "trace:0",
      kind: "internal",
      asset: NATIVE_ASSET,
      from_address: forwarder,
      to_address: D5,
      amount: 24n,
    });

    const last = BigInt(await t.rpc<Hex>("eth_blockNumber"));
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    await ingestor.syncOnce(); // a second pass at the head changes nothing
    const inRange = (n: string | number) => first <= BigInt(n) && BigInt(n) <= last;
    const stored = (await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).filter((f) =>
      inRange(f.block_number),
    );
    const strip = (f: Expected) => ({ ...f, tx_hash: f.tx_hash.toLowerCase() });
    const key = (f: Expected) => `${f.tx_hash}/${f.position}`;
    const got = stored.map((s) =>
      strip({
        tx_hash: s.tx_hash,
        position: s.position,
        kind: s.kind,
        asset: s.asset,
        from_address: s.from_address,
        to_address: s.to_address,
        amount: s.amount,
      }),
    );
    expect(got.sort((x, y) => key(x).localeCompare(key(y)))).toEqual(
      expected.map(strip).sort((x, y) => key(x).localeCompare(key(y))),
    );
    // Nothing else, orphaned rows included.
    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM chain.transfers WHERE block_number BETWEEN $1 AND $2",
      [first.toString(), last.toString()],
    );
    expect(rows[0].n).toBe(expected.length);
  });

  it("confirms facts once the rule is met and rings the doorbell", async () => {
    // Its own facts, the last of them at the head: some blocks are past the rule, some not yet.
    for (const value of [31n, 32n, 33n]) await sendAndMine(t.rpc, { from: a0(), to: D1, value });
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    const head = BigInt(await t.rpc<Hex>("eth_blockNumber"));
    let stored = await canonicalFacts(t.ctx.db.pool, CHAIN_ID);
    // 3 confirmations: blocks up to head-2 are confirmed, the last two are still `seen`.
    for (const f of stored)
      expect(f.status).toBe(BigInt(f.block_number) <= head - 2n ? "confirmed" : "seen");
    expect(stored.some((f) => f.status === "seen")).toBe(true);
    await t.rpc("anvil_mine", ["0x3"]);
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    stored = await canonicalFacts(t.ctx.db.pool, CHAIN_ID);
    expect(stored.every((f) => f.status === "confirmed")).toBe(true);
    // Every confirmed fact's block is covered by a `chain-facts` doorbell job on the real queue.
    const jobs = await t.ctx.queues.queue<ChainFactsJob>(CHAIN_FACTS_QUEUE).getJobs(["waiting"]);
    expect(jobs.every((j) => j.name === "facts" && j.data.chainId === CHAIN_ID)).toBe(true);
    for (const f of stored) {
      const b = Number(f.block_number);
      expect(jobs.some((j) => j.data.fromBlock <= b && b <= j.data.toBlock)).toBe(true);
    }
  });

  it("picks up an address added while running (LISTEN/NOTIFY)", async () => {
    const late = freshAddress(50);
    const client = await t.ctx.db.pool.connect();
    try {
      await client.query("BEGIN");
      await watch(client as never, CHAIN_ID, [{ address: late }]);
      const { notifyWatchedAddress } = await import("./index.js");
      await notifyWatchedAddress(client, CHAIN_ID);
      await client.query("COMMIT");
    } finally {
      client.release();
    }
    // The ingestor is not polling (no start()): only the notification can add the address.
    await waitFor("the NOTIFY to reach the watched set", () => ingestor.watched.has(late));
    const r = await sendAndMine(t.rpc, { from: accounts[0]!, to: late, value: 77n });
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    const { rows } = await t.ctx.db.pool.query(
      "SELECT amount FROM chain.transfers WHERE tx_hash = $1",
      [r.transactionHash.toLowerCase()],
    );
    expect(rows).toEqual([{ amount: 77n }]);
  });
});

describe("the chain's lease", () => {
  it("passes to a standby when the writer's connection goes silent (no FIN, no RST)", async () => {
    const target = new URL(t.ctx.db.url);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const cutPool = createPool(proxy.urlFor(t.ctx.db.url), { applicationName: "indexer-cut" });
    const options = { leaseLostAfterMs: 1_000, pollIntervalMs: 100 };
    const cut = await t.ingestor({ pool: cutPool, options });
    try {
      cut.start();
      await waitFor("the writer behind the proxy to hold the lease", async () =>
        cut.status().leaseHeld ? true : undefined,
      );
      const standby = await t.ingestor({ options });
      standby.start();
      await waitFor("the other to stand by", async () =>
        standby.status().standby ? true : undefined,
      );
      proxy.blackhole();
      await waitFor(
        "the standby to take the chain over",
        async () => (standby.status().leaseHeld ? true : undefined),
        { timeoutMs: 30_000 },
      );
      // Postgres freed the lock only after the cut writer had counted its lease lost.
      expect(cut.status().leaseHeld).toBe(false);
      const r = await sendAndMine(t.rpc, { from: accounts[0]!, to: D2, value: 91n });
      await waitFor("the new writer to store a deposit", async () => {
        const { rows } = await t.ctx.db.pool.query(
          "SELECT 1 FROM chain.transfers WHERE tx_hash = $1",
          [r.transactionHash.toLowerCase()],
        );
        return rows.length > 0 ? true : undefined;
      });
      await standby.stop();
    } finally {
      await proxy.close(); // the cut writer's hung queries fail, so it can stop
      await cut.stop();
      // Not awaited: a client the cut writer's last pass held on the dead connection is never
      // given back (its connection is closed; nothing is left open).
      void cutPool.end();
    }
  });

  it("stops within the lease's lost-after time when the lease connection has gone silent", async () => {
    // An ECS stop: the unlock on a silent connection must not wait for TCP keepalive (minutes);
    // Postgres frees the lock when it ends the silent session.
    const target = new URL(t.ctx.db.url);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const cutPool = createPool(proxy.urlFor(t.ctx.db.url), { applicationName: "indexer-stop" });
    const cut = await t.ingestor({
      pool: cutPool,
      options: { leaseLostAfterMs: 1_000, pollIntervalMs: 100 },
    });
    let stopping: Promise<void> | undefined;
    try {
      cut.start();
      await waitFor("the writer behind the proxy to hold the lease", async () =>
        cut.status().leaseHeld ? true : undefined,
      );
      const { rows } = await t.ctx.db.pool.query<{ client_port: number }>(
        `SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1
            AND l.objid::bigint = $2 AND a.datname = current_database()`,
        [INDEXER_LEASE_NAMESPACE, CHAIN_ID],
      );
      expect(rows).toHaveLength(1);
      // Only the lease's connection goes silent: the passes' connections still answer.
      proxy.blackholeClientPort(rows[0]!.client_port);
      const started = Date.now();
      stopping = cut.stop();
      const stopped = await Promise.race([
        stopping.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), 8_000)),
      ]);
      expect(stopped).toBe(true);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await proxy.close();
      await (stopping ?? cut.stop());
      void cutPool.end();
    }
  });
});

describe("stopping", () => {
  it("a process stop during ingest ends the loop quietly: no failure logged, no retry", async () => {
    // `custody-node start` stops by aborting the process's shutdown signal first: every RPC call
    // in flight or made after it fails with the abort's reason ("stop"), before the role's stop
    // callback stops the loop. That is the stop, not a failure to retry and log.
    const { logger, lines: logged } = capturedLogger();
    const common = createCommon(t.ctx.config, {
      logger,
      metrics: createMetrics({ defaults: false }),
    });
    const stopped = await t.ingestor({ common, options: { pollIntervalMs: 100 } });
    try {
      stopped.start();
      await waitFor("the ingestor to hold the chain's lease", () =>
        stopped.status().leaseHeld ? true : undefined,
      );
      await common.shutdown.kill("stop");
      await waitFor("the loop to end (its lease given back) or a failure logged", () =>
        !stopped.status().leaseHeld || logged.some((l) => l.level >= 40) ? true : undefined,
      );
      expect(logged.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([]);
      expect(stopped.status().lastError).toBeNull();
    } finally {
      await stopped.stop();
    }
  });
});
