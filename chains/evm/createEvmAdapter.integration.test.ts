/**
 * The EVM adapter against a real anvil: heads, blocks, receipts, balances (native and ERC-20 at a
 * block), the viem client over the fallback transport (fee history, typed node errors), and
 * sendRawTransaction of bytes signed elsewhere (here: by anvil's unlocked dev account).
 */
import { type Hex, parseTransaction, TransactionRejectedRpcError } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  anvilRpc,
  call,
  deploy,
  freshAddress,
  type Rpc,
  receipt,
  sendAndMine,
} from "../../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { createEvmAdapter, type EvmAdapter } from "../index.js";
import { startLyingProxy } from "../testing/lyingChain/index.js";

let ctx: TestContext;
let rpc: Rpc;
let adapter: EvmAdapter;
let accounts: Hex[];

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: 31337 }] });
  rpc = anvilRpc(ctx.anvils[0]!.rpcUrl);
  accounts = await rpc<Hex[]>("eth_accounts");
  adapter = createEvmAdapter(ctx.config.chains[0]!, { common: ctx.common });
});

afterAll(async () => {
  await ctx?.cleanup();
});

it("reads balances at a block, natively and for many ERC-20 holders in one batch", async () => {
  const token = await deploy(rpc, accounts[0]!, "TestToken", [1_000_000n]);
  const holders = [freshAddress(1), freshAddress(2), freshAddress(3)];
  await sendAndMine(rpc, { from: accounts[0]!, to: holders[0]!, value: 123n });
  const r1 = await sendAndMine(rpc, {
    from: accounts[0]!,
    to: token,
    data: call("TestToken", "transfer", [holders[1], 40n]),
  });
  await sendAndMine(rpc, {
    from: accounts[0]!,
    to: token,
    data: call("TestToken", "transfer", [holders[1], 2n]),
  });
  expect(await adapter.getNativeBalance(holders[0]!)).toBe(123n);
  expect(await adapter.getTokenBalances({ token, holders })).toEqual([0n, 42n, 0n]);
  expect(
    await adapter.getTokenBalances({ token, holders, blockNumber: BigInt(r1.blockNumber) }),
  ).toEqual([0n, 40n, 0n]);
});

it("refuses to read ERC-20 balances where the token has no code: unknown, never 0", async () => {
  const before = BigInt(await rpc<Hex>("eth_blockNumber"));
  const token = await deploy(rpc, accounts[0]!, "TestToken", [1_000_000n]);
  const holders = [accounts[0]! as Hex, freshAddress(8)];
  expect(await adapter.getTokenBalances({ token, holders })).toEqual([1_000_000n, 0n]);
  // Before its deployment (what a lagging, pruned or forked node sees) eth_call answers "0x".
  await expect(
    adapter.getTokenBalances({ token, holders, blockNumber: before }),
  ).rejects.toMatchObject({ code: "CHAIN_BALANCE_UNKNOWN" });
  await expect(
    adapter.getTokenBalances({ token: freshAddress(10), holders }),
  ).rejects.toMatchObject({ code: "CHAIN_BALANCE_UNKNOWN" });
});

it("serves blocks, receipts, head and the viem client over the same transport", async () => {
  // A head block with a transaction of its own, so receipts are really compared.
  const sent = await sendAndMine(rpc, { from: accounts[0]!, to: freshAddress(7), value: 7n });
  const head = await adapter.getHead();
  expect(head).toBe(BigInt(sent.blockNumber));
  const [block] = await adapter.getBlocks([head]);
  expect(BigInt(block!.number)).toBe(head);
  expect(block!.transactions.map((t) => t.hash)).toEqual([sent.transactionHash]);
  const [receipts] = await adapter.getBlockReceipts([
    {
      number: head,
      hash: block!.hash,
      txCount: block!.transactions.length,
      txHashes: block!.transactions.map((t) => t.hash),
    },
  ]);
  expect(receipts!.map((r) => [r.transactionHash, r.blockHash])).toEqual([
    [sent.transactionHash, block!.hash],
  ]);
  const fees = await adapter.client.getFeeHistory({ blockCount: 2, rewardPercentiles: [50] });
  expect(fees.baseFeePerGas.length).toBe(3);
  expect(await adapter.client.getBlockNumber({ cacheTime: 0 })).toBe(head);
});

it("takes no logs by block hash as an answer only from a node that has the block", async () => {
  const token = await deploy(rpc, accounts[0]!, "TestToken", [1_000_000n]);
  const r = await sendAndMine(rpc, {
    from: accounts[0]!,
    to: token,
    data: call("TestToken", "transfer", [freshAddress(11), 5n]),
  });
  const empty = await sendAndMine(rpc, { from: accounts[0]!, to: freshAddress(12), value: 1n });
  const proxy = await startLyingProxy(ctx.anvils[0]!.rpcUrl);
  try {
    const one = createEvmAdapter(
      { ...ctx.config.chains[0]!, rpcUrls: [proxy.url] },
      { common: ctx.common },
    );
    const at = (q: { blockHash: Hex; blockNumber: Hex }) => ({
      blockHash: q.blockHash,
      number: BigInt(q.blockNumber),
      tokens: [token],
    });
    // Truthful: the Transfer, and no logs for a block without one (asked again beside its block).
    const [logs, none] = await one.getTransferLogsAtBlock([at(r), at(empty)]);
    expect(logs!.map((l) => l.transactionHash)).toEqual([r.transactionHash]);
    expect(none).toEqual([]);
    // A node that does not know the hash and answers no logs: not an answer; with no other
    // endpoint the read waits (never "no Transfer in the block").
    proxy.setMethodLie("eth_getLogs", () => ({ result: [] }));
    proxy.setMethodLie("eth_getBlockByHash", () => ({ result: null }));
    await expect(one.getTransferLogsAtBlock([at(r)])).rejects.toMatchObject({
      code: "CHAIN_NO_HEALTHY_ENDPOINT",
    });
  } finally {
    await proxy.close();
  }
});

it("sends signed bytes, and a repeat surfaces as a typed node error", async () => {
  const raw = await rpc<Hex>("eth_signTransaction", [
    {
      from: accounts[2],
      to: freshAddress(9),
      value: "0x5",
      gas: "0x5208",
      maxFeePerGas: "0x77359400",
      maxPriorityFeePerGas: "0x1",
      nonce: "0x0",
      chainId: "0x7a69",
      type: "0x2",
    },
  ]);
  const hash = await adapter.sendRawTransaction(raw);
  expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
  expect(parseTransaction(raw).to).toBe(freshAddress(9));
  // anvil answers eth_sendRawTransaction once the transaction is in its pool and mines it just
  // after (automine), so the balance is read once its receipt is there.
  expect((await receipt(rpc, hash)).status).toBe("0x1");
  expect(await adapter.getNativeBalance(freshAddress(9))).toBe(5n);
  // Same nonce again, via the viem client: viem maps the node's error code to its own error
  // class, and the node's words (what the signer classifies) are kept in it.
  const repeat = adapter.client.sendRawTransaction({ serializedTransaction: raw });
  await expect(repeat).rejects.toBeInstanceOf(TransactionRejectedRpcError);
  await expect(repeat).rejects.toThrow(/nonce too low|already/i);
});

/** An adapter reading traces with trace_block, and one with debug_traceBlockByHash (callTracer). */
const tracingAdapters = () => {
  const withMethod = (traceMethod: "trace_block" | "debug") =>
    createEvmAdapter(ctx.config.chains[0]!, { common: ctx.common }, { traceMethod });
  return { parity: withMethod("trace_block"), geth: withMethod("debug") };
};

it("reads the same value-carrying frames from trace_block and debug_traceBlockByHash", async () => {
  const forwarder = await deploy(rpc, accounts[0]!, "Forwarder");
  const r = await sendAndMine(rpc, {
    from: accounts[0]!,
    to: forwarder,
    value: 20n,
    data: call("Forwarder", "split", [freshAddress(4), freshAddress(5)]),
    gas: 300_000n,
  });
  const block = { number: BigInt(r.blockNumber), hash: r.blockHash, txHashes: [r.transactionHash] };
  const { parity, geth } = tracingAdapters();
  const simplify = (frames: Awaited<ReturnType<EvmAdapter["getCallFrames"]>>) =>
    frames[0]!.map((f) => ({
      path: f.path.join("."),
      to: f.to.toLowerCase(),
      value: f.value,
      reverted: f.reverted,
    }));
  const a = simplify(await parity.getCallFrames([block]));
  const b = simplify(await geth.getCallFrames([block]));
  expect(a).toEqual(b);
  // split: 10 to D4 at path 0; the other 10 goes into a frame (path 1, a call back into the
  // forwarder) that reverts, with its payment to D5 (path 1.0).
  expect(a).toEqual([
    { path: "", to: forwarder.toLowerCase(), value: 20n, reverted: false },
    { path: "0", to: freshAddress(4), value: 10n, reverted: false },
    { path: "1", to: forwarder.toLowerCase(), value: 10n, reverted: true },
    { path: "1.0", to: freshAddress(5), value: 10n, reverted: true },
  ]);
});

it("refuses the frames of a block at that height that is not the one asked for (a sibling block)", async () => {
  const r = await sendAndMine(rpc, { from: accounts[0]!, to: freshAddress(6), value: 3n });
  // Our block at this height has another hash: the endpoint's block is a sibling of ours.
  const ours = {
    number: BigInt(r.blockNumber),
    hash: `0x${"5a".repeat(32)}` as Hex,
    txHashes: [`0x${"a1".repeat(32)}` as Hex],
  };
  const { parity, geth } = tracingAdapters();
  // trace_block is asked by number and names the endpoint's block: by its hash that endpoint
  // lacks ours, and with no other endpoint the read waits for one that has it.
  await expect(parity.getCallFrames([ours])).rejects.toMatchObject({
    code: "CHAIN_NO_HEALTHY_ENDPOINT",
  });
  // callTracer answers name no block: asked by our hash, the endpoint has no such block.
  await expect(geth.getCallFrames([ours])).rejects.toThrow(/debug_traceBlockByHash/);
  // The endpoint's own block is read by both (new adapters: the first took that endpoint for one
  // lacking the block, and asks it again only after a head probe interval).
  const theirs = { number: ours.number, hash: r.blockHash, txHashes: [r.transactionHash] };
  const again = tracingAdapters();
  expect((await again.parity.getCallFrames([theirs]))[0]).toHaveLength(1);
  expect((await again.geth.getCallFrames([theirs]))[0]).toHaveLength(1);
});

it("asks a state read at a block (through the viem client) of a node that has the block, past one that refuses", async () => {
  // old code: "header not found" (the first endpoint, lagging, asked every time; its refusal was
  // the answer) and "missing trie node" (a pruned node's).
  const holder = freshAddress(1898);
  const sent = await sendAndMine(rpc, { from: accounts[0]!, to: holder, value: 77n });
  const at = BigInt(sent.blockNumber);
  await rpc("anvil_mine", ["0x3"]);
  const behind = await startLyingProxy(ctx.anvils[0]!.rpcUrl);
  const pruned = await startLyingProxy(ctx.anvils[0]!.rpcUrl);
  try {
    behind.setLag(10);
    pruned.setMethodLie("eth_getBalance", (answer, params) =>
      params[1] === "latest"
        ? (answer as { result: unknown })
        : { error: { code: -32000, message: "missing trie node 7e2a… (path )" } },
    );
    const adapter2 = createEvmAdapter(
      { ...ctx.config.chains[0]!, rpcUrls: [behind.url, pruned.url, ctx.anvils[0]!.rpcUrl] },
      { common: ctx.common },
    );
    expect(await adapter2.client.getBalance({ address: holder, blockNumber: at })).toBe(77n);
    expect(await adapter2.client.getBalance({ address: holder, blockNumber: at - 1n })).toBe(0n);
  } finally {
    await behind.close();
    await pruned.close();
  }
});
