/**
 * Test set-up shared by the reconciliation tests that run the whole path on anvil: on the caller's
 * context and chain, the real ingestor, the ledger with the chain's assets, its deposit crediting,
 * and a reconciler that reads the chain through the ingestor's adapter. `stop` stops the ingestor
 * and closes the ledger; the caller owns the context (and cleans it up after `stop`). Test-only.
 */

import type { Hex } from "viem";
import {
  adapterPerChain,
  type ChainConfig,
  createEvmAdapter,
  type EvmAdapter,
} from "../../../chains/index.js";
import { createIngestor, type Ingestor } from "../../../indexers/index.js";
import type { TestContext } from "../../../ops/testing/context.js";
import { sweepReader } from "../../../signer/sweeps/sweepReads.js";
import { createLedger, type Ledger } from "../../createLedger.js";
import { createDepositCrediting, type DepositCrediting } from "../../depositCrediting.js";
import { transferId } from "../../transferId.js";
import { createReconciler, type Reconciler } from "../reconcile.js";

const NATIVE = "0x0000000000000000000000000000000000000000";

export type ReconciledChain = {
  adapter: EvmAdapter;
  ingestor: Ingestor;
  ledger: Ledger;
  crediting: DepositCrediting;
  reconciler: Reconciler;
  /**
   * Books the hot wallet's balance at the chain's head as its opening balance (genesis funds have
   * no chain fact): debit `custody:hot:<address>`, credit `suspense`, once per `owner`.
   */
  bookHotOpening: (address: Hex, owner?: string) => Promise<void>;
  stop: () => Promise<void>;
};

export async function startReconciledChain(
  ctx: TestContext,
  chain: ChainConfig,
): Promise<ReconciledChain> {
  const { common } = ctx;
  const pool = ctx.db.pool;
  const adapter = createEvmAdapter(chain, { common });
  const ingestor = await createIngestor({ common, pool, adapter });
  const ledger = createLedger({ common, pool });
  const stop = async () => {
    await ingestor.stop();
    await ledger.close();
  };
  try {
    await ledger.ensureAssetsFromConfig([chain]);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    adapter,
    ingestor,
    ledger,
    crediting: createDepositCrediting({ common, pool, ledger }),
    reconciler: createReconciler({
      sweeps: sweepReader,
      common,
      pool,
      chains: adapterPerChain(common, () => adapter),
    }),
    async bookHotOpening(address, owner = "hot-1") {
      const opening = await adapter.client.getBalance({ address, blockTag: "latest" });
      await ledger.transfer({
        id: transferId(`opening:${owner}`),
        assetId: `${chain.chainId}:${NATIVE}`,
        debit: `custody:hot:${address.toLowerCase()}`,
        credit: "suspense",
        amount: opening,
        kind: "manual",
        memo: `opening balance of ${owner}`,
      });
    },
    stop,
  };
}
