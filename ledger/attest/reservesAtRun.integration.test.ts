/**
 * The reserves an attestation publishes are read at the run's block; the run compared the ledger
 * with what it read there, but an incremental run counts a deposit address it did not read at its
 * last-read balance. A movement nobody indexed (a leaked deposit key drained without a trace fact)
 * is then in the attestation's read and not in the run's: published, it is a shortfall (or a
 * surplus) no reconciliation of that block checked. (Real anvil, ledger, reconciler.)
 */
import { type Address, type Hex, zeroAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, type ChainConfig } from "../../chains/index.js";
import type { Pool } from "../../foundation/db.js";
import { recordContract } from "../../indexers/index.js";
import { anvilRpc, freshAddress, type Rpc, watch } from "../../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { createReconciler } from "../recon/reconcile.js";
import { transferId } from "../transferId.js";
import { createAttestor } from "./attest.js";
import { RESERVES_ATTESTOR } from "./deploy.js";
import type { AttestationSender } from "./sender.js";

const ID = 31342;
const HOT = freshAddress(711);
const DEP = freshAddress(712);

let ctx: TestContext;
let pool: Pool;
let ledger: Ledger;
let rpc: Rpc;
const requested: string[] = [];

const sender: AttestationSender = {
  requestTransaction: async (_client, request) => {
    requested.push(request.id);
  },
  getTxOutcomes: async () => [],
};

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: ID }] });
  pool = ctx.db.pool;
  ledger = createLedger({ common: ctx.common, pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  await watch(pool, ID, [
    { address: HOT, kind: "hot", owner: "hot" },
    { address: DEP, kind: "deposit", owner: "alice" },
  ]);
  rpc = anvilRpc(ctx.config.chains[0]!.rpcUrls[0]!);
}, 60_000);
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

/** Mine a block and store it as the indexer would: canonical, the tip, and final. */
async function finalBlock(): Promise<number> {
  await rpc("evm_mine");
  const n = Number(BigInt(await rpc<Hex>("eth_blockNumber")));
  const b = await rpc<{ hash: string; parentHash: string }>("eth_getBlockByNumber", [
    `0x${n.toString(16)}`,
    false,
  ]);
  await pool.query(
    `INSERT INTO chain.blocks (chain_id, number, hash, parent_hash, timestamp)
     VALUES ($1, $2, $3, $4, now())`,
    [ID, n, b.hash, b.parentHash],
  );
  await pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
     VALUES ($1, $2, $3, $2, $3)
     ON CONFLICT (chain_id) DO UPDATE SET block_number = $2, block_hash = $3,
       finalized_number = $2, finalized_hash = $3`,
    [ID, n, b.hash],
  );
  return n;
}

describe("reserves the run did not read at its block", () => {
  it("are not attested when they differ from what the run counted", async () => {
    const chain: ChainConfig = {
      ...ctx.config.chains[0]!,
      confirmations: { kind: "blocks", blocks: 0 },
    };
    // Alice's deposit of 100, indexed and credited.
    await rpc("anvil_setBalance", [DEP, "0x64"]);
    const B1 = await finalBlock();
    const tx = `0x${"de".repeat(32)}`;
    const hash = await pool.query<{ hash: string }>(
      "SELECT hash FROM chain.blocks WHERE chain_id = $1 AND number = $2",
      [ID, B1],
    );
    await pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
         kind, asset, from_address, to_address, amount, status)
       VALUES ($1, $2, $3, $4, 0, 'tx', 'native', $5, $6, $7, 100, 'confirmed')`,
      [ID, B1, hash.rows[0]!.hash, tx, zeroAddress, freshAddress(714), DEP.toLowerCase()],
    );
    await ledger.transfer({
      id: transferId("reserves at run: alice"),
      assetId: `${ID}:${zeroAddress}`,
      debit: "custody:deposits",
      credit: "user:alice",
      amount: 100n,
      kind: "deposit",
      chainRef: { chainId: ID, txHash: tx, position: "tx" },
    });
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool,
      chains: adapterPerChain(ctx.common),
      inflowRotation: 0,
    });
    const first = await reconciler.run({ chain, block: B1, full: true });
    expect(first.breaks.map((b) => b.type)).toEqual([]);

    // The deposit address is drained with no fact indexed; the next run (incremental, nothing
    // active) counts it at the 100 it read last.
    await rpc("anvil_setBalance", [DEP, "0x0"]);
    const B2 = await finalBlock();
    const second = await reconciler.run({ chain, block: B2 });
    expect(second.breaks.map((b) => b.type)).toEqual([]);
    await recordContract(pool, {
      chainId: ID,
      name: RESERVES_ATTESTOR,
      address: freshAddress(713) as Address,
      hotWallet: HOT as Address,
      initCodeHash: null,
      deployTxHash: `0x${"d2".repeat(32)}`,
      blockNumber: 1n,
    });

    const attestor = createAttestor({
      common: ctx.common,
      pool,
      sender,
      chains: adapterPerChain(ctx.common),
    });
    const tick = await attestor.tick(chain, { everyBlocks: 1 });
    expect(tick).toMatchObject({ attested: [], skipped: "reserves_differ", runId: second.runId });
    expect(requested).toEqual([]);
  });
});
