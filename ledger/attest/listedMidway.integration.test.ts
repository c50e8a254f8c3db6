/**
 * An asset listed after the run an attestation is made from: the run did not read its balances nor
 * count its liabilities (its `inputs.tokens` and its checks have none of it), so nothing reconciled
 * it at that block. Attested anyway, the custody would publish reserves nobody checked against the
 * ledger and liabilities of 0 (the run "recorded" none) for a block where customers' deposits of it
 * may already sit in custody. Only the assets the run checked are attested (real anvil, ledger,
 * reconciler).
 */
import { type Address, encodeFunctionData, getAddress, type Hex, zeroAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testToken } from "../../chains/contracts/index.js";
import { adapterPerChain, type ChainConfig } from "../../chains/index.js";
import type { Pool } from "../../foundation/db.js";
import { recordContract } from "../../indexers/index.js";
import { anvilRpc, freshAddress, type Rpc, watch } from "../../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { createReconciler } from "../recon/reconcile.js";
import { transferId } from "../transferId.js";
import { createAttestor, requestIdOf } from "./attest.js";
import { RESERVES_ATTESTOR } from "./deploy.js";
import type { AttestationSender } from "./sender.js";

const ID = 31341;
const HOT = freshAddress(701);

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
  await watch(pool, ID, [{ address: HOT, kind: "hot", owner: "hot" }]);
  rpc = anvilRpc(ctx.config.chains[0]!.rpcUrls[0]!);
}, 60_000);
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

/** Deploy a test token from an anvil account and mint `amount` of it to `to`; returns its address. */
async function tokenHeldBy(to: Hex, amount: bigint): Promise<Address> {
  const [from] = await rpc<Hex[]>("eth_accounts");
  const deploy = await rpc<Hex>("eth_sendTransaction", [{ from, data: testToken.bytecode }]);
  const receipt = await rpc<{ contractAddress: Address }>("eth_getTransactionReceipt", [deploy]);
  const token = getAddress(receipt.contractAddress);
  await rpc<Hex>("eth_sendTransaction", [
    {
      from,
      to: token,
      data: encodeFunctionData({ abi: testToken.abi, functionName: "mint", args: [to, amount] }),
    },
  ]);
  return token;
}

describe("an asset listed after the attested run", () => {
  it("is not attested at that run's block: the run checked neither its reserves nor its liabilities", async () => {
    const chain: ChainConfig = {
      ...ctx.config.chains[0]!,
      confirmations: { kind: "blocks", blocks: 0 },
    };
    // Tokens of the not-yet-listed asset already sit in the hot wallet (sent before listing).
    const token = await tokenHeldBy(HOT, 5_000n);
    await ledger.transfer({
      id: transferId("listed midway: alice"),
      assetId: `${ID}:${zeroAddress}`,
      debit: `custody:hot:${HOT}`,
      credit: "user:alice",
      amount: 100n,
      kind: "manual",
    });
    await rpc("anvil_setBalance", [HOT, "0x64"]);
    await rpc("evm_mine");
    const B = Number(BigInt(await rpc<Hex>("eth_blockNumber")));
    const block = await rpc<{ hash: string; parentHash: string }>("eth_getBlockByNumber", [
      `0x${B.toString(16)}`,
      false,
    ]);
    // The indexer's view: block B stored canonical, the tip and the final block at B.
    await pool.query(
      `INSERT INTO chain.blocks (chain_id, number, hash, parent_hash, timestamp)
       VALUES ($1, $2, $3, $4, now())`,
      [ID, B, block.hash, block.parentHash],
    );
    await pool.query(
      `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
       VALUES ($1, $2, $3, $2, $3)`,
      [ID, B, block.hash],
    );
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool,
      chains: adapterPerChain(ctx.common),
    });
    const run = await reconciler.run({ chain, block: B, full: true });
    expect(run.breaks.map((b) => `${b.type}: ${b.action}`)).toEqual([]);
    await recordContract(pool, {
      chainId: ID,
      name: RESERVES_ATTESTOR,
      address: freshAddress(702) as Address,
      hotWallet: HOT as Address,
      initCodeHash: null,
      deployTxHash: `0x${"d1".repeat(32)}`,
      blockNumber: 1n,
    });

    // The token is listed now, after the run: the attestor's config has it.
    const listed: ChainConfig = {
      ...chain,
      tokens: [{ address: token, symbol: "TT", decimals: 18 }] as ChainConfig["tokens"],
    };
    const attestor = createAttestor({
      common: ctx.common,
      pool,
      sender,
      chains: adapterPerChain(ctx.common),
    });
    const tick = await attestor.tick(listed, { everyBlocks: 1 });
    expect(tick).toMatchObject({ runId: run.runId, block: B });
    expect(tick.attested.map((a) => [a.token, a.reserves, a.liabilities])).toEqual([
      [zeroAddress, 100n, 100n],
    ]);
    expect(requested).toEqual([requestIdOf(ID, zeroAddress, B)]);
  });
});
