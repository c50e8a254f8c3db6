/**
 * The gas of a contract deploy from a hot wallet (the ForwarderFactory, the ReservesAttestor),
 * booked as a treasury gas move so reconciliation pairs it with the chain's fee fact.
 */
import type { Hex } from "viem";
import {
  type ChainConfig,
  ChainDataInconsistentError,
  feeFieldMissing,
  feePaid,
} from "../chains/index.js";
import type { Common } from "../foundation/common.js";
import type { Pool, PoolClient } from "../foundation/db.js";
import { createLedger } from "./createLedger.js";
import { bookTreasuryMove, DEPLOYS_ARE_NOT_REQUESTS } from "./treasury.js";

/**
 * Book the deploy's gas (debit fees:gas, credit custody:hot) as a treasury gas move, in the
 * caller's transaction; idempotent by chain id + tx hash. The amount is what the deploy cost the
 * wallet (feePaid: gas, plus the L1 data fee and the operator fee on OP-stack chains), as the
 * indexer's fee fact records it. The operator fee is the caller's read of the chain at the
 * receipt's block (chains' `operatorFeePaid`): receipts do not carry it.
 * A receipt missing a field of that (feeFieldMissing) is refused: booked, it would under-book.
 */
export async function bookDeployGas({
  common,
  pool,
  chain,
  client,
  hotWallet,
  receipt,
  operatorFee,
  by,
  reason,
}: {
  common: Common;
  pool: Pool;
  chain: ChainConfig;
  client: PoolClient;
  hotWallet: string;
  receipt: { transactionHash: Hex; gasUsed: bigint; effectiveGasPrice: bigint; l1Fee?: unknown };
  /** What the chain charged outside gas and the L1 data fee (chains' `operatorFeePaid`). */
  operatorFee: bigint;
  /** The treasury move's `by` and `reason`. */
  by: string;
  reason: string;
}): Promise<void> {
  const missing = feeFieldMissing(receipt, chain);
  if (missing !== null)
    throw new ChainDataInconsistentError(
      `the node's receipt of deploy ${receipt.transactionHash} has no ${missing}: its gas is not known yet (run again; another endpoint or a later answer has it)`,
    );
  const ledger = createLedger({ common, pool });
  try {
    await ledger.ensureAssetsFromConfig([chain]);
    await bookTreasuryMove(
      { common, pool, ledger, signerTransactions: DEPLOYS_ARE_NOT_REQUESTS },
      {
        move: "gas",
        chainId: chain.chainId,
        txHash: receipt.transactionHash,
        wallet: hotWallet,
        amount: feePaid({ ...receipt, operatorFee }),
        by,
        reason,
      },
      { client },
    );
  } finally {
    await ledger.close();
  }
}
