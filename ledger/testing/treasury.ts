/**
 * For treasury booking tests: a ledger on the test context with one hot wallet registered, the
 * production deps of `bookTreasuryMove` (the signer's `signerTransactions`), chain facts inserted
 * as the indexer stores them (for tests that run no indexer), and what a refusal must leave
 * unchanged. The caller owns the test context. Test-only.
 */
import type { TestContext } from "../../ops/testing/context.js";
import { signerTransactions } from "../../signer/requests.js";
import { createLedger, type Ledger } from "../createLedger.js";
import type { TreasuryDeps } from "../treasury.js";

export const ZERO = "0x0000000000000000000000000000000000000000";

export type TreasuryTest = {
  ledger: Ledger;
  deps: TreasuryDeps;
  /** Insert a chain fact of `chainId` (default the context's first chain) as the indexer stores it. */
  fact: (f: {
    tx: string;
    position: string;
    kind: "native" | "erc20" | "fee";
    asset?: string;
    from: string;
    to: string;
    amount: bigint;
    status?: "seen" | "confirmed" | "orphaned";
    block?: number;
  }) => Promise<void>;
  /** Ledger transfers, treasury audit rows and the hot wallet's native balance: what a refusal leaves. */
  written: () => Promise<{ transfers: number; audits: number; hot: bigint }>;
  close: () => Promise<void>;
};

export async function startTreasuryTest(
  ctx: TestContext,
  hot: string,
  chainId = ctx.config.chains[0]!.chainId,
): Promise<TreasuryTest> {
  const ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  await ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner) VALUES ($1, $2, 'hot', 'hot-1')
     ON CONFLICT DO NOTHING`,
    [chainId, hot.toLowerCase()],
  );
  return {
    ledger,
    deps: { common: ctx.common, pool: ctx.db.pool, ledger, signerTransactions },
    async fact(f) {
      await ctx.db.pool.query(
        `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
           asset, from_address, to_address, amount, status)
         VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9, $10, $11)`,
        [
          chainId,
          f.block ?? 10,
          `0x${"b1".repeat(32)}`,
          f.tx,
          f.position,
          f.kind,
          f.asset ?? ZERO,
          f.from.toLowerCase(),
          f.to.toLowerCase(),
          f.amount.toString(),
          f.status ?? "seen",
        ],
      );
    },
    async written() {
      const [transfers, audits, hotAccount] = await Promise.all([
        ctx.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM ledger.transfers"),
        ctx.db.pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM audit.audit_log WHERE action LIKE 'treasury.%'",
        ),
        ledger.getAccount({
          assetId: `${chainId}:${ZERO}`,
          name: `custody:hot:${hot.toLowerCase()}`,
        }),
      ]);
      return {
        transfers: transfers.rows[0]!.n,
        audits: audits.rows[0]!.n,
        hot: hotAccount?.available ?? 0n,
      };
    },
    close: () => ledger.close(),
  };
}
