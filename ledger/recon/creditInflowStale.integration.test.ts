/**
 * An unattributed inflow break is evidence only until a later run measures the address again. Here
 * the fact behind the inflow is written late (a late writer into an old block, as the crediting
 * catch-up pass expects), crediting books it as a deposit, and the next run no longer finds the
 * break (it is resolved: "not found by run N"). Crediting the old run's break then paid the same
 * money a second time; it is refused, and nothing is booked.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import { createIngestor, type Ingestor } from "../../indexers/index.js";
import {
  anvilRpc,
  call,
  deploy,
  freshAddress,
  type Rpc,
  sendAndMine,
  syncToHead,
  watch,
} from "../../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { createDepositCrediting, type DepositCrediting } from "../depositCrediting.js";
import { creditInflow } from "./creditInflow.js";
import { createReconciler, type Reconciler } from "./reconcile.js";

const CHAIN_ID = 31337;
const ETH = `${CHAIN_ID}:0x0000000000000000000000000000000000000000`;
const E17 = 10n ** 17n;
const D_GIL = freshAddress(601);

let ctx: TestContext;
let chain: ChainConfig;
let rpc: Rpc;
let sender: Hex;
let forwarder: Hex;
let ingestor: Ingestor;
let ledger: Ledger;
let crediting: DepositCrediting;
let reconciler: Reconciler;

const settle = async () => {
  for (let i = 0; i < 3; i++) await rpc("evm_mine");
  await syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
  await crediting.sweep({ chainId: CHAIN_ID });
};

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      {
        chainId: CHAIN_ID,
        config: { traces: false, confirmations: { kind: "blocks", blocks: 2 } },
      },
    ],
  });
  chain = ctx.config.chains[0]!;
  rpc = anvilRpc(chain.rpcUrls[0]!);
  sender = ((await rpc<Hex[]>("eth_accounts"))[0] as Hex).toLowerCase() as Hex;
  forwarder = await deploy(rpc, sender, "Forwarder");
  await watch(ctx.db.pool, CHAIN_ID, [{ address: D_GIL, owner: "gil" }]);
  const adapter = createEvmAdapter(chain, { common: ctx.common });
  ingestor = await createIngestor({ common: ctx.common, pool: ctx.db.pool, adapter });
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig([chain]);
  crediting = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });
  reconciler = createReconciler({
    sweeps: sweepReader,
    common: ctx.common,
    pool: ctx.db.pool,
    chains: adapterPerChain(ctx.common, () => adapter),
  });
});

afterAll(async () => {
  await ingestor?.stop();
  await ledger?.close();
  await ctx?.cleanup();
});

describe("crediting an unattributed inflow a later run no longer finds", () => {
  it("is refused once the inflow's fact was credited and a run measured it again", async () => {
    const r = await sendAndMine(rpc, {
      from: sender,
      to: forwarder,
      value: 7n * E17,
      data: call("Forwarder", "forward", [D_GIL]),
    });
    await settle();
    const first = await reconciler.run({ chain });
    const b = await ctx.db.pool.query<{ n: number }>(
      "SELECT n FROM recon.breaks WHERE run_id = $1 AND key = $2 AND type = 'unattributed_inflow'",
      [first.runId, `inflow:${D_GIL}`],
    );
    expect(b.rows).toHaveLength(1);
    const breakId = `${first.runId}:${b.rows[0]!.n}`;

    // The internal transfer's fact arrives late, in its old block: the catch-up pass credits it.
    await ctx.db.pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
         asset, from_address, to_address, amount, status)
       VALUES ($1, $2, $3, $4, 0, 'trace:0', 'internal', $5, $6, $7, $8, 'confirmed')`,
      [
        CHAIN_ID,
        BigInt(r.blockNumber).toString(),
        r.blockHash.toLowerCase(),
        r.transactionHash.toLowerCase(),
        "0x0000000000000000000000000000000000000000",
        forwarder.toLowerCase(),
        D_GIL,
        (7n * E17).toString(),
      ],
    );
    await settle();
    const gil = () => ledger.balance({ assetId: ETH, name: "user:gil" });
    expect((await gil()).available).toBe(7n * E17);
    // The next run finds the inflow explained: the break is resolved.
    const second = await reconciler.run({ chain, full: true });
    expect(second.breaks.filter((x) => x.type === "unattributed_inflow")).toEqual([]);

    await expect(
      creditInflow(
        { common: ctx.common, pool: ctx.db.pool, ledger },
        { breakId, by: "ops-anna", reason: "the report of run 1" },
      ),
    ).rejects.toMatchObject({ code: "RECON_INFLOW_NOT_CREDITABLE" });
    expect((await gil()).available).toBe(7n * E17);
  });
});
