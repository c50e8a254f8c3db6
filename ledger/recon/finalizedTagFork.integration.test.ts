/**
 * A run's block is the node's `finalized` block (on chains whose rule is the tag): that tag counts
 * only when its block is our canonical block at that height, the rule the indexer applies
 * (indexers/sync/commitRange.ts). Two real anvils with the same chain id on different chains: the
 * indexer stored ours (head 100, its own finalized tag 36); the endpoint recon asks answers the tag
 * from the other (finalized 80). Taken as is, the run was made at block 80, which our chain has not
 * finalized: balances, breaks and an attestation "at a final block" that a reorg can still change.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import { createIngestor, type Ingestor } from "../../indexers/index.js";
import { anvilRpc, type Rpc, syncToHead } from "../../indexers/testing/chain.js";
import { type Anvil, startAnvil } from "../../ops/devstack/anvil.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { type RpcProxy, startRpcProxy } from "../../signer/testing/rpcProxy.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { createReconciler, type Reconciler } from "./reconcile.js";

const CHAIN_ID = 31337;

let ctx: TestContext;
let chain: ChainConfig;
let rpc: Rpc;
let other: Anvil;
let proxy: RpcProxy;
let ingestor: Ingestor;
let ledger: Ledger;
let reconciler: Reconciler;

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      { chainId: CHAIN_ID, config: { traces: false, confirmations: { kind: "finalized" } } },
    ],
  });
  chain = ctx.config.chains[0]!;
  rpc = anvilRpc(chain.rpcUrls[0]!);
  other = await startAnvil({ chainId: CHAIN_ID, port: 0 });
  proxy = await startRpcProxy(chain.rpcUrls[0]!);
  const adapter = createEvmAdapter(chain, { common: ctx.common });
  ingestor = await createIngestor({ common: ctx.common, pool: ctx.db.pool, adapter });
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig([chain]);
  const reconChain = { ...chain, rpcUrls: [proxy.url] };
  reconciler = createReconciler({
    sweeps: sweepReader,
    common: ctx.common,
    pool: ctx.db.pool,
    chains: adapterPerChain(ctx.common, () => createEvmAdapter(reconChain, { common: ctx.common })),
  });
});

afterAll(async () => {
  await ingestor?.stop();
  await ledger?.close();
  await proxy?.close();
  await other?.stop();
  await ctx?.cleanup();
});

describe("a finalized tag from another fork", () => {
  it("is not the block a run is made at", async () => {
    // A transaction in block 1 makes our chain another chain than theirs (empty blocks mined in
    // the same second by two anvils of one chain id are the same blocks).
    const [sender] = await rpc<Hex[]>("eth_accounts");
    await rpc("eth_sendTransaction", [{ from: sender, to: sender, value: "0x1" }]);
    await rpc("anvil_mine", ["0x63"]);
    await syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
    const otherRpc = anvilRpc(other.rpcUrl);
    await otherRpc("anvil_mine", ["0x90"]);
    const theirs = await otherRpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", [
      "finalized",
      false,
    ]);
    const ours = await rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", [
      "finalized",
      false,
    ]);
    expect([BigInt(ours.number), BigInt(theirs.number)]).toEqual([36n, 80n]);
    const ourBlock = await rpc<{ hash: Hex }>("eth_getBlockByNumber", [theirs.number, false]);
    expect(ourBlock.hash).not.toBe(theirs.hash);
    proxy.setIntercept((call) =>
      call.method === "eth_getBlockByNumber" && (call.params as unknown[])[0] === "finalized"
        ? { result: theirs }
        : undefined,
    );
    await expect(reconciler.run({ chain })).rejects.toMatchObject({
      code: "RECON_NO_FINAL_BLOCK",
    });
    // Our own node's tag: the run is made at our finalized block.
    proxy.setIntercept(undefined);
    expect((await reconciler.run({ chain })).block).toBe(36);
  });
});
