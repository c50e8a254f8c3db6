/**
 * The lying chain against a real anvil: each lie (lagging, syncing, withheld receipts, disagreeing
 * backends, seeded transport faults, hangs) and each reorg fate (re-mined, dropped, replaced).
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { anvilRpc, type Rpc } from "../../../indexers/testing/chain.js";
import { type Anvil, startAnvil } from "../../../ops/devstack/anvil.js";
import { createRandom } from "../../../ops/sim/random.js";
import { type LyingProxy, startLyingProxy } from "./proxy.js";
import { injectReorg } from "./reorg.js";

let anvil: Anvil;
let rpc: Rpc;
let proxy: LyingProxy;
let via: Rpc;
let accounts: Hex[];

const mine = async (n: number) => {
  for (let i = 0; i < n; i++) await rpc("evm_mine");
};
const send = (from: Hex, to: Hex, value: bigint) =>
  rpc<Hex>("eth_sendTransaction", [{ from, to, value: `0x${value.toString(16)}` }]);

beforeAll(async () => {
  anvil = await startAnvil({ chainId: 31337, port: 0 });
  rpc = anvilRpc(anvil.rpcUrl);
  accounts = (await rpc<Hex[]>("eth_accounts")).map((a) => a.toLowerCase() as Hex);
  await rpc("evm_setAutomine", [false]);
  proxy = await startLyingProxy(anvil.rpcUrl);
  via = anvilRpc(proxy.url);
});

afterAll(async () => {
  await proxy?.close();
  await anvil?.stop();
});

describe("lagging and syncing views", () => {
  it("a lagging node answers as if its head were head - N", async () => {
    await mine(5);
    const tx = await send(accounts[1]!, accounts[2]!, 7n);
    await mine(1);
    const head = BigInt(await rpc<Hex>("eth_blockNumber"));
    proxy.setLag(3);
    expect(BigInt(await via<Hex>("eth_blockNumber"))).toBe(head - 3n);
    const latest = await via<{ number: Hex }>("eth_getBlockByNumber", ["latest", false]);
    expect(BigInt(latest.number)).toBe(head - 3n);
    expect(await via("eth_getBlockByNumber", [`0x${head.toString(16)}`, false])).toBeNull();
    expect(await via("eth_getTransactionReceipt", [tx])).toBeNull();
    expect(await via("eth_getBlockReceipts", [`0x${head.toString(16)}`])).toBeNull();
    const pending = await via<{ blockNumber: Hex | null }>("eth_getTransactionByHash", [tx]);
    expect(pending.blockNumber).toBeNull();
    await expect(via("eth_getBalance", [accounts[2], `0x${head.toString(16)}`])).rejects.toThrow(
      /header not found/,
    );
    // The balance at "latest" is the balance at the view head: before the transfer.
    const before = await rpc<Hex>("eth_getBalance", [accounts[2], `0x${(head - 3n).toString(16)}`]);
    expect(await via<Hex>("eth_getBalance", [accounts[2], "latest"])).toBe(before);
    // Its fee history ends at its head, with the base fee of the block after it (anvil's own
    // answer ends with the base fee of its next block whatever the newest block asked).
    const history = await via<{ oldestBlock: Hex; baseFeePerGas: Hex[] }>("eth_feeHistory", [
      "0x2",
      "latest",
      [],
    ]);
    expect(BigInt(history.oldestBlock)).toBe(head - 4n);
    const after = await rpc<{ baseFeePerGas: Hex }>("eth_getBlockByNumber", [
      `0x${(head - 2n).toString(16)}`,
      false,
    ]);
    expect(history.baseFeePerGas.at(-1)).toBe(after.baseFeePerGas);
    proxy.setLag(null);
    expect(BigInt(await via<Hex>("eth_blockNumber"))).toBe(head);
    expect(await via("eth_getTransactionReceipt", [tx])).not.toBeNull();
  });

  it("a syncing node reports head 0 and no blocks", async () => {
    proxy.setLag("syncing");
    expect(await via<Hex>("eth_blockNumber")).toBe("0x0");
    expect(await via("eth_getBlockByNumber", ["0x1", false])).toBeNull();
    const syncing = await via<{ currentBlock: Hex; highestBlock: Hex }>("eth_syncing");
    expect(syncing.currentBlock).toBe("0x0");
    expect(BigInt(syncing.highestBlock)).toBeGreaterThan(0n);
    proxy.setLag(null);
    expect(await via("eth_syncing")).toBe(false);
  });

  it("withholds receipts while asked to, then answers again", async () => {
    const tx = await send(accounts[1]!, accounts[3]!, 9n);
    await mine(1);
    proxy.setNullReceipts(true);
    expect(await via("eth_getTransactionReceipt", [tx])).toBeNull();
    expect(await via("eth_getBlockReceipts", ["latest"])).toBeNull();
    expect(proxy.stats().null_receipts).toBeGreaterThan(0);
    proxy.setNullReceipts(false);
    expect(await via("eth_getTransactionReceipt", [tx])).not.toBeNull();
    proxy.setNullReceipts(true, 60_000);
    expect(await via("eth_getTransactionReceipt", [tx])).toBeNull();
    proxy.setNullReceipts(false, 0);
    expect(await via("eth_getTransactionReceipt", [tx])).not.toBeNull();
  });

  it("load-balanced backends that disagree alternate answers", async () => {
    proxy.setBackends([{ url: anvil.rpcUrl }, { url: anvil.rpcUrl, lag: 2 }]);
    const heads = new Set<string>();
    for (let i = 0; i < 4; i++) heads.add(await via<Hex>("eth_blockNumber"));
    expect(heads.size).toBe(2);
    proxy.setBackends([{ url: anvil.rpcUrl }]);
  });

  it("lags inside JSON-RPC batches too", async () => {
    proxy.setLag(1);
    const head = BigInt(await rpc<Hex>("eth_blockNumber"));
    const response = await fetch(proxy.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([
        { jsonrpc: "2.0", id: 1, method: "eth_blockNumber", params: [] },
        {
          jsonrpc: "2.0",
          id: 2,
          method: "eth_getBlockByNumber",
          params: [`0x${head.toString(16)}`, false],
        },
      ]),
    });
    const body = (await response.json()) as { id: number; result: unknown }[];
    expect(body.map((b) => b.id)).toEqual([1, 2]);
    expect(BigInt(body[0]!.result as Hex)).toBe(head - 1n);
    expect(body[1]!.result).toBeNull();
    proxy.setLag(null);
  });
});

describe("transport faults", () => {
  it("seeded fault rates replay the same faults", async () => {
    const run = async () => {
      const p = await startLyingProxy(anvil.rpcUrl);
      p.setFaultRates({ http500: 0.3, http429: 0.2 }, createRandom(11).fork("faults").next);
      const outcomes: number[] = [];
      for (let i = 0; i < 30; i++) {
        const r = await fetch(p.url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: i, method: "eth_chainId", params: [] }),
        });
        await r.text();
        outcomes.push(r.status);
      }
      await p.close();
      return outcomes;
    };
    const first = await run();
    expect(first).toEqual(await run());
    expect(first).toContain(500);
    expect(first).toContain(429);
    expect(first).toContain(200);
  });

  it("a hang outlasting the client's timeout closes the connection after hangMs", async () => {
    proxy.setHangMs(200);
    proxy.setFault("hang");
    const started = Date.now();
    await expect(via("eth_chainId")).rejects.toThrow();
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    proxy.setFault("none");
    proxy.setHangMs(null);
    expect(await via("eth_chainId")).toBe("0x7a69");
  });
});

describe("refused sends", () => {
  it("rejects a raw transaction, or rejects it after the node accepted it", async () => {
    const [, a] = accounts as [Hex, Hex];
    const target = "0x00000000000000000000000000000000000beef3" as Hex;
    const sign = async (value: bigint) =>
      rpc<Hex>("eth_signTransaction", [
        {
          from: a,
          to: target,
          value: `0x${value.toString(16)}`,
          gas: "0x5208",
          nonce: await rpc<Hex>("eth_getTransactionCount", [a, "pending"]),
        },
      ]);
    proxy.setSendFault({ rate: 1, forward: false, message: "internal error" });
    await expect(via("eth_sendRawTransaction", [await sign(1n)])).rejects.toThrow(/internal error/);
    await mine(1);
    expect(BigInt(await rpc<Hex>("eth_getBalance", [target, "latest"]))).toBe(0n);
    proxy.setSendFault({ rate: 1, forward: true, message: "transaction underpriced" });
    await expect(via("eth_sendRawTransaction", [await sign(2n)])).rejects.toThrow(/underpriced/);
    await mine(1);
    expect(BigInt(await rpc<Hex>("eth_getBalance", [target, "latest"]))).toBe(2n);
    expect(proxy.stats().send_rejected).toBe(1);
    expect(proxy.stats().send_rejected_but_forwarded).toBe(1);
    proxy.setSendFault(null);
  });
});

describe("reorg injection", () => {
  it("re-mines, drops and replaces transactions in a new branch", async () => {
    const [, a, b, c, , , , , marker, sink] = accounts as [
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
    ];
    const target = "0x00000000000000000000000000000000000beef1" as Hex;
    const kept = await send(a, target, 100n);
    await mine(1);
    const dropped = await send(b, target, 200n);
    await mine(1);
    const replacedTx = await send(c, target, 300n);
    await mine(2);
    const oldHead = await rpc<{ hash: Hex; number: Hex }>("eth_getBlockByNumber", [
      "latest",
      false,
    ]);
    const outcome = await injectReorg(rpc, {
      depth: 4,
      extend: 1,
      fate: (tx) => (tx.hash === kept ? "same" : tx.hash === dropped ? "drop" : "replace"),
      replacement: (tx) => ({
        to: tx.to as Hex,
        value: `0x${(tx.value * 2n).toString(16)}` as Hex,
      }),
      marker: { from: marker, to: sink },
    });
    expect(outcome.kept).toEqual([kept]);
    expect(outcome.dropped.map((t) => t.hash)).toEqual([dropped]);
    expect(outcome.replaced.map((r) => r.old.hash)).toEqual([replacedTx]);
    expect(outcome.newHead).toBe(BigInt(oldHead.number) + 1n);
    const sameHeight = await rpc<{ hash: Hex }>("eth_getBlockByNumber", [oldHead.number, false]);
    expect(sameHeight.hash).not.toBe(oldHead.hash);
    expect(await rpc("eth_getTransactionReceipt", [kept])).not.toBeNull();
    expect(await rpc("eth_getTransactionReceipt", [dropped])).toBeNull();
    expect(await rpc("eth_getTransactionReceipt", [replacedTx])).toBeNull();
    const replacement = outcome.replaced[0]!.replacement as Hex;
    const r = await rpc<{ status: Hex }>("eth_getTransactionReceipt", [replacement]);
    expect(r.status).toBe("0x1");
    expect(BigInt(await rpc<Hex>("eth_getBalance", [target, "latest"]))).toBe(100n + 600n);
  });

  it("a rollback re-mines the kept transactions too", async () => {
    const [, a, , , , , , , marker, sink] = accounts as [
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
      Hex,
    ];
    const target = "0x00000000000000000000000000000000000beef2" as Hex;
    const tx = await send(a, target, 5n);
    await mine(2);
    const outcome = await injectReorg(rpc, {
      depth: 2,
      method: "rollback",
      fate: () => "same",
      shift: () => 1,
      marker: { from: marker, to: sink },
    });
    expect(outcome.kept).toEqual([tx]);
    const r = await rpc<{ blockNumber: Hex }>("eth_getTransactionReceipt", [tx]);
    expect(BigInt(r.blockNumber)).toBe(outcome.fromBlock + 1n);
  });
});
