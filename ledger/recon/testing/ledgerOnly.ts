/**
 * A reconciler over a chain with no node behind it (its checkpoint at block 1, confirmations at 0)
 * and a real ledger: for tests of what runs do with ledger-side figures alone (liabilities, the
 * solvency check and its breaks). `deposit` credits a user from custody:deposits.
 */
import type { ChainConfig } from "../../../chains/index.js";
import { adapterPerChain } from "../../../chains/index.js";
import type { Pool } from "../../../foundation/db.js";
import { createTestContext, type TestContext } from "../../../ops/testing/context.js";
import { sweepReader } from "../../../signer/sweeps/sweepReads.js";
import { createLedger, type Ledger } from "../../createLedger.js";
import { transferId } from "../../transferId.js";
import { createReconciler, type Reconciler } from "../reconcile.js";

export const LEDGER_ONLY_CHAIN_ID = 31337;
/** The chain's native asset id. */
export const ETH = `${LEDGER_ONLY_CHAIN_ID}:0x0000000000000000000000000000000000000000`;

export type LedgerOnlyRecon = {
  ctx: TestContext;
  pool: Pool;
  chain: ChainConfig;
  ledger: Ledger;
  reconciler: Reconciler;
  deposit: (
    to: string,
    amount: bigint,
    options?: Parameters<Ledger["transfer"]>[1],
  ) => ReturnType<Ledger["transfer"]>;
  close: () => Promise<void>;
};

/** `name` prefixes the deposits' transfer ids (`<name> deposit <n>`). */
export async function startLedgerOnlyRecon(
  name: string,
  { depositKind = "manual" }: { depositKind?: "deposit" | "manual" } = {},
): Promise<LedgerOnlyRecon> {
  const ctx = await createTestContext({ chains: [{ chainId: LEDGER_ONLY_CHAIN_ID }] });
  const pool = ctx.db.pool;
  const chain: ChainConfig = {
    ...ctx.config.chains[0]!,
    confirmations: { kind: "blocks", blocks: 0 },
  };
  const ledger = createLedger({ common: ctx.common, pool });
  await ledger.ensureAssetsFromConfig([chain]);
  await pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES ($1, 1, $2)
     ON CONFLICT (chain_id) DO UPDATE SET block_number = excluded.block_number`,
    [LEDGER_ONLY_CHAIN_ID, `0x${"1".padStart(64, "0")}`],
  );
  const reconciler = createReconciler({
    sweeps: sweepReader,
    common: ctx.common,
    pool,
    chains: adapterPerChain(ctx.common),
  });
  let n = 0;
  return {
    ctx,
    pool,
    chain,
    ledger,
    reconciler,
    deposit: (to, amount, options) =>
      ledger.transfer(
        {
          id: transferId(`${name} deposit ${++n}`),
          assetId: ETH,
          debit: "custody:deposits",
          credit: `user:${to}`,
          amount,
          kind: depositKind,
        },
        options,
      ),
    close: async () => {
      await ledger.close();
      await ctx.cleanup();
    },
  };
}
