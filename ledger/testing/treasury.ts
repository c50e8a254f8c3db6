/**
 * For treasury booking tests: a ledger on the test context with one hot wallet registered, the
 * production deps of `bookTreasuryMove` (the signer's `signerTransactions`), chain facts inserted
 * as the indexer stores them (for tests that run no indexer), an indexer batch held open while a
 * command runs (the race tests), and what a refusal must leave unchanged. Test-only.
 */
import type { Fact } from "../../indexers/extractFacts.js";
import { insertFacts, loadTip, lockTip } from "../../indexers/store.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { signerTransactions } from "../../signer/requests.js";
import { createLedger, type Ledger } from "../createLedger.js";
import type { TreasuryDeps } from "../treasury.js";
import { doneOrWaitingForALock } from "./gatedCrediting.js";

export const ZERO = "0x0000000000000000000000000000000000000000";

/** A chain fact as a test names it (default block 10, status seen, native asset). */
export type TestFact = {
  tx: string;
  position: string;
  kind: "native" | "erc20" | "fee";
  asset?: string;
  from: string;
  to: string;
  amount: bigint;
  status?: "seen" | "confirmed" | "orphaned";
  block?: number;
};

export type TreasuryTest = {
  ledger: Ledger;
  deps: TreasuryDeps;
  /** Insert a chain fact of `chainId` (default the context's first chain) as the indexer stores it. */
  fact: (f: TestFact) => Promise<void>;
  /** The chain's checkpoint: the stored tip, and the published finalized block if given. */
  checkpoint: (tip: number, finalized?: number) => Promise<void>;
  /**
   * The indexer's batch storing `facts` (its own writes: lockTip, insertFacts, as seen facts) held
   * open on a second connection while `command` runs, committed once the command is done or waits
   * for a lock. What the command settled to. Needs the checkpoint row (`checkpoint`).
   */
  whileIndexerStores: <T>(
    facts: Omit<TestFact, "status">[],
    command: () => Promise<T>,
  ) => Promise<{ ok: T } | { err: unknown }>;
  /** Ledger transfers, treasury audit rows and the hot wallet's native balance: what a refusal leaves. */
  written: () => Promise<{ transfers: number; audits: number; hot: bigint }>;
  close: () => Promise<void>;
};

const blockHash = (block: number) => `0x${block.toString(16).padStart(64, "b")}`;

/** The treasury test on the caller's test context (which the caller owns). */
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
    async checkpoint(tip, finalized) {
      await ctx.db.pool.query(
        `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
         VALUES ($1, $2, $3, $4, $5)`,
        [
          chainId,
          tip,
          blockHash(tip),
          finalized ?? null,
          finalized === undefined ? null : blockHash(finalized),
        ],
      );
    },
    async whileIndexerStores(facts, command) {
      const indexer = await ctx.db.pool.connect();
      try {
        await indexer.query("BEGIN");
        await lockTip(indexer, chainId, await loadTip(indexer, chainId));
        await insertFacts(
          indexer,
          chainId,
          facts.map(
            (f): Fact => ({
              blockNumber: BigInt(f.block ?? 10),
              blockHash: blockHash(f.block ?? 10),
              txHash: f.tx,
              txIndex: 0,
              position: f.position,
              kind: f.kind,
              asset: f.asset ?? ZERO,
              from: f.from.toLowerCase(),
              to: f.to.toLowerCase(),
              amount: f.amount,
            }),
          ),
          null,
        );
        const outcome = command().then(
          (ok) => ({ ok }),
          (err: unknown) => ({ err }),
        );
        // Either it finished (reading the facts without the batch's) or it waits for the batch.
        await doneOrWaitingForALock(ctx.db.pool, outcome);
        await indexer.query("COMMIT");
        return await outcome;
      } finally {
        await indexer.query("ROLLBACK").catch(() => {});
        indexer.release();
      }
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

/** A treasury test with a test context of its own: `close` ends both. */
export type TreasuryFileTest = TreasuryTest & { ctx: TestContext };

/**
 * For a test file that needs nothing else of its context: a test context of its own (no anvil)
 * with the treasury test on it.
 */
export async function startTreasuryFileTest(
  hot: string,
  chainId: number,
): Promise<TreasuryFileTest> {
  const ctx = await createTestContext();
  try {
    const t = await startTreasuryTest(ctx, hot, chainId);
    return {
      ...t,
      ctx,
      async close() {
        await t.close();
        await ctx.cleanup();
      },
    };
  } catch (error) {
    await ctx.cleanup();
    throw error;
  }
}
