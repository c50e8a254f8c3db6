/**
 * Assets and accounts: idempotent creation (an asset from the chain config, an account from the
 * chart), lookup by name, and freezing.
 */

import type { ChainConfig } from "../chains/index.js";
import type { Common } from "../foundation/common.js";
import type { Pool } from "../foundation/db.js";
import { ACCOUNT_COLUMNS, type AccountRow, toAccount } from "./accountRow.js";
import { classifyAccount } from "./chartOfAccounts.js";
import { AccountNotFoundError, InvalidAccountError } from "./errors.js";
import type { Queryable } from "./runBatch.js";
import { assetIdOf } from "./transferId.js";
import type { Account, AccountRef, Asset } from "./types.js";

export type Accounts = {
  ensureAsset: (asset: Omit<Asset, "id">) => Promise<Asset>;
  ensureAssetsFromConfig: (chains: readonly ChainConfig[]) => Promise<void>;
  ensureAccount: (ref: AccountRef) => Promise<Account>;
  findAccount: (ref: AccountRef, db?: Queryable) => Promise<Account | undefined>;
  /** Throws `AccountNotFoundError` when there is no such account. */
  requireAccount: (ref: AccountRef, db?: Queryable) => Promise<Account>;
  setFrozen: (ref: AccountRef, frozen: boolean) => Promise<void>;
};

export function createAccounts({
  pool,
  log,
  knownAssets,
}: {
  pool: Pool;
  log: Common["logger"];
  /** Asset ids seen committed; every asset this creates is added. */
  knownAssets: Set<string>;
}): Accounts {
  const findAccount = async (ref: AccountRef, db: Queryable = pool) => {
    const r = await db.query<AccountRow>(
      `SELECT ${ACCOUNT_COLUMNS} FROM ledger.accounts WHERE asset_id = $1 AND name = $2`,
      [ref.assetId, ref.name],
    );
    return r.rows[0] ? toAccount(r.rows[0]) : undefined;
  };
  const requireAccount = async (ref: AccountRef, db?: Queryable) => {
    const a = await findAccount(ref, db);
    if (!a) throw new AccountNotFoundError(ref.assetId, ref.name);
    return a;
  };

  async function ensureAsset(asset: Omit<Asset, "id">): Promise<Asset> {
    const token = asset.token.toLowerCase() as `0x${string}`;
    const id = assetIdOf(asset.chainId, token);
    // The config is the truth at run time (its decimals checked against the chain at start,
    // ops/tokenConfig.ts): a corrected symbol or decimals replaces the stored one, which the
    // reconciliation report formats amounts with (kept as first stored, a wrong first listing
    // showed every amount of the token 10^n off for ever). No write when nothing changed.
    await pool.query(
      `INSERT INTO ledger.assets (id, chain_id, token, symbol, decimals) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET symbol = EXCLUDED.symbol, decimals = EXCLUDED.decimals
        WHERE (ledger.assets.symbol, ledger.assets.decimals)
              IS DISTINCT FROM (EXCLUDED.symbol, EXCLUDED.decimals)`,
      [id, asset.chainId, token, asset.symbol, asset.decimals],
    );
    const r = await pool.query<{ symbol: string; decimals: number }>(
      "SELECT symbol, decimals FROM ledger.assets WHERE id = $1",
      [id],
    );
    knownAssets.add(id);
    return {
      id,
      chainId: asset.chainId,
      token,
      symbol: r.rows[0]?.symbol ?? asset.symbol,
      decimals: r.rows[0]?.decimals ?? asset.decimals,
    };
  }

  return {
    ensureAsset,
    async ensureAssetsFromConfig(chains) {
      for (const c of chains) {
        await ensureAsset({
          chainId: c.chainId,
          token: "0x0000000000000000000000000000000000000000",
          symbol: c.nativeSymbol,
          decimals: c.nativeDecimals,
        });
        for (const t of c.tokens) {
          await ensureAsset({
            chainId: c.chainId,
            token: t.address.toLowerCase() as `0x${string}`,
            symbol: t.symbol,
            decimals: t.decimals,
          });
        }
      }
    },
    async ensureAccount(ref) {
      const cls = classifyAccount(ref.name);
      if (!cls) throw new InvalidAccountError(ref.name, "not in the chart of accounts");
      await pool.query(
        `INSERT INTO ledger.accounts (asset_id, name, kind, normal, debits_must_not_exceed_credits, credits_must_not_exceed_debits)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (asset_id, name) DO NOTHING`,
        [
          ref.assetId,
          ref.name,
          cls.kind,
          cls.normal,
          cls.debitsMustNotExceedCredits,
          cls.creditsMustNotExceedDebits,
        ],
      );
      return requireAccount(ref);
    },
    findAccount,
    requireAccount,
    async setFrozen(ref, frozen) {
      const r = await pool.query(
        "UPDATE ledger.accounts SET frozen = $3 WHERE asset_id = $1 AND name = $2",
        [ref.assetId, ref.name, frozen],
      );
      if (r.rowCount === 0) throw new AccountNotFoundError(ref.assetId, ref.name);
      log.info({
        msg: frozen ? "account frozen" : "account unfrozen",
        asset_id: ref.assetId,
        account: ref.name,
      });
    },
  };
}
