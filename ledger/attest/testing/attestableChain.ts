/**
 * Test set-up of the attestation tick tests under (or beside) the reconciler's chain lock: the
 * slow-node chain (ledger/recon/testing/slowNodeChain.ts) with a ReservesAttestor recorded for a
 * hot wallet that holds what alice is owed (100 wei, booked), so every run is clean and has
 * reserves to attest; and a clean run at a block the indexer has published final. Test-only.
 */
import { type Address, type Hex, zeroAddress } from "viem";
import { expect } from "vitest";
import { adapterPerChain } from "../../../chains/index.js";
import { readFinalized, recordContract } from "../../../indexers/index.js";
import { waitFor } from "../../../ops/testing/wait.js";
import { sweepReader } from "../../../signer/sweeps/sweepReads.js";
import { createReconciler } from "../../recon/reconcile.js";
import { type SlowNodeChain, startSlowNodeChain } from "../../recon/testing/slowNodeChain.js";
import { transferId } from "../../transferId.js";
import { RESERVES_ATTESTOR } from "../deploy.js";

export type AttestableChain = SlowNodeChain & {
  /** A clean full run at two blocks below the head, once that block is published final: its block. */
  finalRun: () => Promise<number>;
};

export async function startAttestableChain({
  hot,
  attestor,
}: {
  hot: Address;
  /** The ReservesAttestor's address as recorded (nothing is deployed there: ticks only request). */
  attestor: Address;
}): Promise<AttestableChain> {
  const t = await startSlowNodeChain(() => [{ address: hot, kind: "hot", owner: "hot-1" }]);
  const chainId = t.chain.chainId;
  try {
    await recordContract(t.ctx.db.pool, {
      chainId,
      name: RESERVES_ATTESTOR,
      address: attestor,
      hotWallet: hot,
      initCodeHash: null,
      deployTxHash: `0x${"d1".repeat(32)}`,
      blockNumber: 1n,
    });
    await t.ledger.transfer({
      id: transferId(`attestable chain: alice at ${hot}`),
      assetId: `${chainId}:${zeroAddress}`,
      debit: `custody:hot:${hot}`,
      credit: "user:alice",
      amount: 100n,
      kind: "manual",
    });
    await t.rpc("anvil_setBalance", [hot, "0x64"]);
    await t.mineAndSync(5);
  } catch (error) {
    await t.stop();
    throw error;
  }
  return {
    ...t,
    async finalRun() {
      const block = Number(BigInt(await t.rpc<Hex>("eth_blockNumber"))) - 2;
      const run = await createReconciler({
        sweeps: sweepReader,
        common: t.ctx.common,
        pool: t.ctx.db.pool,
        chains: adapterPerChain(t.ctx.common),
      }).run({ chain: t.chain, block, full: true });
      expect(run.breaks.map((b) => `${b.type}: ${b.action}`)).toEqual([]);
      await waitFor(`block ${block} published final`, async () => {
        await t.mineAndSync(8);
        return Number((await readFinalized(t.ctx.db.pool, chainId))?.number ?? -1) >= block;
      });
      return block;
    },
  };
}
