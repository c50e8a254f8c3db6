/**
 * On-chain balance reads of a run (issue 15): hot wallets every run, deposit addresses only when
 * they had activity since the previous run or their turn in the rotation came; the others count at
 * the balance read last. Reads go through Multicall3 (deployed on anvil) in batches of
 * `recon.batchSize`, or JSON-RPC batches where the chain has none.
 */

import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain, createEvmAdapter, type EvmAdapter } from "../../chains/index.js";
import {
  anvilRpc,
  call,
  deploy,
  freshAddress,
  type Rpc,
  sendAndMine,
  watch,
} from "../../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { type RpcCallIn, type RpcProxy, startRpcProxy } from "../../signer/testing/rpcProxy.js";
import { BalanceUnreadableError } from "./errors.js";
import { BALANCE_OF, readCustodyBalances } from "./onchain.js";
import { createReconciler } from "./reconcile.js";
import { deployMulticall3 } from "./testing/multicall3.js";

const CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const ETH = `${CHAIN_ID}:${ZERO}`;
const DEPOSITS = [1, 2, 3, 4, 5, 6].map((i) => freshAddress(400 + i).toLowerCase());
const HOT = freshAddress(499).toLowerCase();

let ctx: TestContext;
let rpc: Rpc;
let multicall3: Hex;
let head = 0;
let factCounter = 0;

async function setBalance(address: string, wei: bigint) {
  await rpc("anvil_setBalance", [address, `0x${wei.toString(16)}`]);
}

/** Mine a block, and record it as indexed and final (confirmations 0). */
async function mineAndIndex(): Promise<number> {
  await rpc("evm_mine");
  head = Number(BigInt(await rpc<Hex>("eth_blockNumber")));
  await ctx.db.pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES ($1, $2, $3)
     ON CONFLICT (chain_id) DO UPDATE SET block_number = excluded.block_number`,
    [CHAIN_ID, head, `0x${head.toString(16).padStart(64, "0")}`],
  );
  return head;
}

/** A deposit fact at the newest block, as the indexer writes it. */
async function fact(to: string, amount: bigint) {
  const tx = `0x${(++factCounter).toString(16).padStart(64, "0")}`;
  await ctx.db.pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
       kind, asset, from_address, to_address, amount, status)
     VALUES ($1, $2, $3, $4, 0, 'tx', 'native', $5, $6, $7, $8, 'confirmed')`,
    [
      CHAIN_ID,
      head,
      `0x${head.toString(16).padStart(64, "0")}`,
      tx,
      ZERO,
      `0x${"ee".repeat(20)}`,
      to,
      amount,
    ],
  );
}

/**
 * Counts the JSON-RPC calls of one adapter (a batch counts each call) after its endpoint told its
 * chain id (asked once, before the endpoint's first read).
 */
async function counted(chain: ChainConfig): Promise<{ adapter: EvmAdapter; calls: () => number }> {
  const adapter = createEvmAdapter(chain, { common: ctx.common });
  await adapter.rpc.request("eth_chainId");
  const before = adapter.rpc.callCount();
  return { adapter, calls: () => adapter.rpc.callCount() - before };
}

type ReconSettings = NonNullable<ChainConfig["recon"]>;
function chainWith(
  recon: (Omit<ReconSettings, "inFlight"> & Partial<Pick<ReconSettings, "inFlight">>) | undefined,
): ChainConfig {
  const base = { ...ctx.config.chains[0]!, confirmations: { kind: "blocks" as const, blocks: 0 } };
  return recon ? { ...base, recon: { inFlight: 4, ...recon } } : base;
}

/** Balance loops of 4 addresses a call, as the tests through a refusing or reverting node read. */
const LOOPS_OF_4 = { rotation: 2, batchSize: 4, requestsPerSecond: 1000, balanceLoop: true };

/** An adapter of the test's chain with these recon settings, its RPC through `proxy`. */
const proxiedAdapter = (proxy: RpcProxy, recon: Parameters<typeof chainWith>[0]): EvmAdapter =>
  createEvmAdapter({ ...chainWith(recon), rpcUrls: [proxy.url] }, { common: ctx.common });

const depositsCheck = (run: { checks: { scope: string; assetId: string; chain: bigint }[] }) =>
  run.checks.find((c) => c.scope === "deposits" && c.assetId === ETH)?.chain;

const readCount = async (runId: number) =>
  (
    await ctx.db.pool.query<{ n: number }>(
      "SELECT (inputs->>'balance_addresses_read')::int AS n FROM recon.runs WHERE id = $1",
      [runId],
    )
  ).rows[0]!.n;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: CHAIN_ID }] });
  rpc = anvilRpc(ctx.anvils[0]!.rpcUrl);
  multicall3 = await deployMulticall3(ctx.anvils[0]!.rpcUrl);
  await watch(ctx.db.pool, CHAIN_ID, [
    { address: HOT, kind: "hot", owner: "hot-1" },
    ...DEPOSITS.map((address, i) => ({ address, owner: `c${i}` })),
  ]);
  for (const [i, d] of DEPOSITS.entries()) await setBalance(d, BigInt(1000 * (i + 1)));
  await setBalance(HOT, 7n);
  await mineAndIndex();
  // Facts explain the deposit balances (no unattributed inflow, whose address every run re-reads).
  for (const [i, d] of DEPOSITS.entries()) await fact(d, BigInt(1000 * (i + 1)));
});

afterAll(async () => {
  await ctx?.cleanup();
});

describe("balance reads", () => {
  it("a full run reads every custody address through Multicall3, batchSize reads per call", async () => {
    const chain = chainWith({
      rotation: 2,
      batchSize: 3,
      requestsPerSecond: 1000,
      multicall3,
      balanceLoop: false,
    });
    const { adapter, calls } = await counted(chain);
    const run = await createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common, () => adapter),
    }).run({ chain, full: true });
    // 7 addresses × 1 asset in batches of 3: three eth_calls to Multicall3, nothing else.
    expect(calls()).toBe(3);
    expect(await readCount(run.runId)).toBe(7);
    expect(depositsCheck(run)).toBe(21_000n);
    expect(run.checks.find((c) => c.scope === "hot")?.chain).toBe(7n);
  });

  it("an incremental run reads the hot wallet, active deposit addresses and a rotation slice; the rest count at their last read", async () => {
    const chain = chainWith({
      rotation: 2,
      batchSize: 500,
      requestsPerSecond: 1000,
      multicall3,
      balanceLoop: true,
    });
    const { adapter, calls } = await counted(chain);
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common, () => adapter),
    });
    // DEPOSITS[5] gets value with no fact (read only when the rotation reaches it); DEPOSITS[2]
    // gets a deposit with a fact (read now).
    await setBalance(DEPOSITS[5]!, 6000n + 500n);
    await setBalance(DEPOSITS[2]!, 3000n + 40n);
    await mineAndIndex();
    await fact(DEPOSITS[2]!, 40n);
    const first = await reconciler.run({ chain });
    expect(first.mode).toBe("incremental");
    // hot + DEPOSITS[2] + the rotation's first slice (DEPOSITS[0], DEPOSITS[1]): one balance loop.
    expect(await readCount(first.runId)).toBe(4);
    expect(calls()).toBe(1);
    expect(depositsCheck(first)).toBe(21_040n);
    // Two more slices: [2], [3] and then [4], [5] — which reads the value that came without a fact.
    await mineAndIndex();
    const second = await reconciler.run({ chain });
    expect(await readCount(second.runId)).toBe(3);
    expect(depositsCheck(second)).toBe(21_040n);
    await mineAndIndex();
    const third = await reconciler.run({ chain });
    expect(await readCount(third.runId)).toBe(3);
    expect(depositsCheck(third)).toBe(21_540n);
    expect(third.breaks.map((b) => `${b.type} ${b.key}`)).toContain(
      `unattributed_inflow inflow:${DEPOSITS[5]}`,
    );
    // A full run reads everything again and finds the same total.
    const full = await reconciler.run({ chain, full: true });
    expect(depositsCheck(full)).toBe(21_540n);
  });

  it("without Multicall3 the reads go out as JSON-RPC batches of eth_getBalance", async () => {
    const chain = chainWith({
      rotation: 2,
      batchSize: 4,
      requestsPerSecond: 1000,
      balanceLoop: false,
    });
    const { adapter, calls } = await counted(chain);
    const run = await createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common, () => adapter),
    }).run({ chain, full: true });
    expect(calls()).toBe(7);
    expect(depositsCheck(run)).toBe(21_540n);
  });

  it("requestsPerSecond spaces the requests of a run", async () => {
    // 7 reads, one per request, at most 4 requests a second: the last starts >= 1.5 s after the first.
    // (Through the balance loop, the default: one address a call at batchSize 1.)
    const chain = chainWith({
      rotation: 2,
      batchSize: 1,
      requestsPerSecond: 4,
      multicall3,
      balanceLoop: true,
    });
    const { adapter, calls } = await counted(chain);
    const t0 = performance.now();
    await createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common, () => adapter),
    }).run({ chain, full: true });
    expect(calls()).toBe(7);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1_500);
  });
  it("a token with no contract at its address is unreadable, never a balance of 0 (both read paths)", async () => {
    const noCode = freshAddress(498).toLowerCase();
    expect(await rpc<Hex>("eth_getCode", [noCode, "latest"])).toBe("0x");
    for (const via of [multicall3, undefined]) {
      const chain = chainWith({
        rotation: 2,
        batchSize: 10,
        requestsPerSecond: 1000,
        balanceLoop: true,
      });
      const read = readCustodyBalances(createEvmAdapter(chain, { common: ctx.common }), {
        addresses: new Map([[HOT, "hot" as const]]),
        tokens: [ZERO, noCode],
        block: head,
        options: { batchSize: 10, requestsPerSecond: 1000, multicall3: via },
      });
      await expect(read).rejects.toBeInstanceOf(BalanceUnreadableError);
      await expect(read).rejects.toMatchObject({
        code: "RECON_BALANCE_UNREADABLE",
        meta: { address: HOT, token: noCode },
      });
    }
  });

  /** Deposit addresses' balances at `block` through the balance loops, and the calls it took. */
  async function readThroughLoops(addresses: string[], tokens: string[], block: number) {
    const chain = chainWith({
      rotation: 2,
      batchSize: 5000,
      requestsPerSecond: 1000,
      balanceLoop: true,
    });
    const { adapter, calls } = await counted(chain);
    const read = await readCustodyBalances(adapter, {
      addresses: new Map(addresses.map((a) => [a, "deposit" as const])),
      tokens,
      block,
      options: { batchSize: 5000, requestsPerSecond: 1000, multicall3, balanceLoop: true },
    });
    return { read, calls };
  }

  it("native balances through creation code equal eth_getBalance at the run's block, 768 a call at most", async () => {
    const many = Array.from({ length: 1000 }, (_, i) => freshAddress(2000 + i).toLowerCase());
    for (let i = 0; i < many.length; i += 7) await setBalance(many[i]!, BigInt(i + 1) * 10n ** 15n);
    const at = await mineAndIndex();
    // Changed in a later block (anvil applies anvil_setBalance to the newest block's state, so one
    // block goes by first): the read must not see it.
    await mineAndIndex();
    await setBalance(many[0]!, 1n);
    await mineAndIndex();
    expect(await rpc<Hex>("eth_getBalance", [many[0], "latest"])).toBe("0x1");
    const { read, calls } = await readThroughLoops(many, [ZERO], at);
    expect(calls()).toBe(2); // 768 + 232
    expect(read.map((b) => b.address)).toEqual([...many].sort());
    const want = await Promise.all(
      read.map(async (b) =>
        BigInt(await rpc<Hex>("eth_getBalance", [b.address, `0x${at.toString(16)}`])),
      ),
    );
    expect(read.map((b) => b.balance)).toEqual(want);
    expect(read.find((b) => b.address === many[0])!.balance).toBe(10n ** 15n);
    expect(read.filter((b) => b.balance > 0n).length).toBe(Math.ceil(1000 / 7));
  });

  it("ERC-20 balances through creation code equal balanceOf at the run's block, one token and 768 addresses a call", async () => {
    const [from] = await rpc<Hex[]>("eth_accounts");
    const token = (await deploy(rpc, from!, "TestToken", [10n ** 24n])).toLowerCase();
    const many = Array.from({ length: 1000 }, (_, i) => freshAddress(4000 + i).toLowerCase());
    for (let i = 0; i < many.length; i += 9)
      await sendAndMine(rpc, {
        from: from!,
        to: token as Hex,
        data: call("TestToken", "transfer", [many[i], BigInt(i + 1) * 10n ** 12n]),
      });
    const at = await mineAndIndex();
    // Moved in a later block: the read must not see it.
    await sendAndMine(rpc, {
      from: from!,
      to: token as Hex,
      data: call("TestToken", "transfer", [many[0], 5n]),
    });
    await mineAndIndex();
    const { read, calls } = await readThroughLoops(many, [ZERO, token], at);
    expect(calls()).toBe(4); // natives 768 + 232, the token's 768 + 232
    const tokenReads = read.filter((b) => b.assetId === `${CHAIN_ID}:${token}`);
    expect(tokenReads.map((b) => b.address)).toEqual([...many].sort());
    const want = await Promise.all(
      tokenReads.map(async (b) =>
        BigInt(
          await rpc<Hex>("eth_call", [
            { to: token, data: `0x${BALANCE_OF}${b.address.slice(2).padStart(64, "0")}` },
            `0x${at.toString(16)}`,
          ]),
        ),
      ),
    );
    expect(tokenReads.map((b) => b.balance)).toEqual(want);
    expect(tokenReads.find((b) => b.address === many[0])!.balance).toBe(10n ** 12n);
    expect(tokenReads.filter((b) => b.balance > 0n).length).toBe(Math.ceil(1000 / 9));
  });

  /** An eth_call without `to`: creation code, the balance loop's. */
  const isCreationCall = (call: RpcCallIn) =>
    call.method === "eth_call" && !((call.params?.[0] ?? {}) as { to?: string }).to;

  it("a node that refuses creation code in eth_call is read through Multicall3 instead", async () => {
    const proxy = await startRpcProxy(ctx.anvils[0]!.rpcUrl);
    try {
      proxy.setIntercept((call) =>
        isCreationCall(call)
          ? { error: { code: -32000, message: "contract creation not supported in eth_call" } }
          : undefined,
      );
      const adapter = proxiedAdapter(proxy, LOOPS_OF_4);
      const read = await readCustodyBalances(adapter, {
        addresses: new Map([
          ...DEPOSITS.map((a) => [a, "deposit"] as const),
          [HOT, "hot" as const],
        ]),
        tokens: [ZERO],
        block: head,
        options: { batchSize: 4, requestsPerSecond: 1000, multicall3, balanceLoop: true },
      });
      // One refused loop call, then 7 reads through Multicall3 in calls of 4.
      expect(proxy.calls("eth_call")).toBe(3);
      for (const b of read)
        expect(b.balance).toBe(
          BigInt(await rpc<Hex>("eth_getBalance", [b.address, `0x${head.toString(16)}`])),
        );
      // An answer of the wrong length is not a refusal: the read fails, nothing falls back.
      proxy.setIntercept((call) => (isCreationCall(call) ? { result: "0x1234" } : undefined));
      const before = proxy.calls("eth_call");
      await expect(
        readCustodyBalances(adapter, {
          addresses: new Map([[HOT, "hot" as const]]),
          tokens: [ZERO],
          block: head,
          options: { batchSize: 4, requestsPerSecond: 1000, multicall3, balanceLoop: true },
        }),
      ).rejects.toThrow(/balance loop returned 2 bytes for 1 addresses/);
      expect(proxy.calls("eth_call")).toBe(before + 1);
    } finally {
      await proxy.close();
    }
  });

  it("keeps up to inFlight balance requests in flight, never more (requestsPerSecond still spaces their starts, above)", async () => {
    const proxy = await startRpcProxy(ctx.anvils[0]!.rpcUrl);
    try {
      proxy.setDelay(250); // a distant node: an answer takes 250 ms (overlaps are certain)
      const addresses = new Map([
        ...DEPOSITS.map((a) => [a, "deposit"] as const),
        [HOT, "hot" as const],
      ]);
      const read = (options: { inFlight: number; balanceLoop: boolean }) =>
        readCustodyBalances(
          proxiedAdapter(proxy, { rotation: 2, batchSize: 1, requestsPerSecond: 1000, ...options }),
          {
            addresses,
            tokens: [ZERO],
            block: head,
            options: { batchSize: 1, requestsPerSecond: 1000, multicall3, ...options },
          },
        );
      // 7 loop calls of one address: the first alone, then 3 at a time.
      const loops = await read({ inFlight: 3, balanceLoop: true });
      expect(proxy.mostInFlight()).toBe(3);
      expect(proxy.calls("eth_call")).toBe(7);
      for (const b of loops)
        expect(b.balance).toBe(
          BigInt(await rpc<Hex>("eth_getBalance", [b.address, `0x${head.toString(16)}`])),
        );
      // Through Multicall3 (7 calls of one read) the same bound.
      const viaMulticall3 = await read({ inFlight: 3, balanceLoop: false });
      expect(proxy.mostInFlight()).toBe(3);
      expect(viaMulticall3).toEqual(loops);
    } finally {
      await proxy.close();
    }
    const one = await startRpcProxy(ctx.anvils[0]!.rpcUrl);
    try {
      one.setDelay(20);
      await readCustodyBalances(
        proxiedAdapter(one, {
          rotation: 2,
          batchSize: 1,
          requestsPerSecond: 1000,
          inFlight: 1,
          balanceLoop: true,
        }),
        {
          addresses: new Map(DEPOSITS.map((a) => [a, "deposit"] as const)),
          tokens: [ZERO],
          block: head,
          options: { batchSize: 1, requestsPerSecond: 1000, multicall3, inFlight: 1 },
        },
      );
      expect(one.mostInFlight()).toBe(1);
      expect(one.calls("eth_call")).toBe(DEPOSITS.length);
    } finally {
      await one.close();
    }
  });

  it("a token whose loop call reverts is read through Multicall3; the other loops go on", async () => {
    const [from] = await rpc<Hex[]>("eth_accounts");
    const token = (await deploy(rpc, from!, "TestToken", [10n ** 24n])).toLowerCase();
    for (const [i, d] of DEPOSITS.entries())
      await sendAndMine(rpc, {
        from: from!,
        to: token as Hex,
        data: call("TestToken", "transfer", [d, BigInt(i + 1) * 100n]),
      });
    const at = await mineAndIndex();
    const proxy = await startRpcProxy(ctx.anvils[0]!.rpcUrl);
    try {
      // As a node answers a loop whose balanceOf reverted (e.g. one that writes, under STATICCALL).
      const tokenLoop = (call: RpcCallIn) =>
        isCreationCall(call) &&
        String(((call.params?.[0] ?? {}) as { data?: string }).data).includes(token.slice(2));
      proxy.setIntercept((call) =>
        tokenLoop(call) ? { error: { code: 3, message: "execution reverted" } } : undefined,
      );
      const adapter = proxiedAdapter(proxy, LOOPS_OF_4);
      const read = await readCustodyBalances(adapter, {
        addresses: new Map([
          ...DEPOSITS.map((a) => [a, "deposit"] as const),
          [HOT, "hot" as const],
        ]),
        tokens: [ZERO, token],
        block: at,
        options: { batchSize: 4, requestsPerSecond: 1000, multicall3, balanceLoop: true },
      });
      // Natives: 2 loop calls (4 + 3). The token: 2 refused loop calls (each tried), then its 7
      // reads through Multicall3 in calls of 4.
      expect(proxy.calls("eth_call")).toBe(6);
      const blockTag = `0x${at.toString(16)}`;
      for (const b of read)
        expect(b.balance).toBe(
          b.assetId === ETH
            ? BigInt(await rpc<Hex>("eth_getBalance", [b.address, blockTag]))
            : BigInt(
                await rpc<Hex>("eth_call", [
                  { to: token, data: `0x${BALANCE_OF}${b.address.slice(2).padStart(64, "0")}` },
                  blockTag,
                ]),
              ),
        );
      expect(read.filter((b) => b.assetId !== ETH && b.balance > 0n)).toHaveLength(6);
    } finally {
      await proxy.close();
    }
  });
});
