/**
 * Each configured hot wallet key is pinned to the address it had when a signer first loaded it on
 * the chain (custody.hot_wallet_keys). A KMS alias can be moved to another key: a signer restarted
 * after that got another address from the same `kmsKeyId` and served it, an address that holds
 * none of the wallet's funds, withdrawals, sweeps or in-flight sends, while it reported the wallet
 * loaded and active. The wallet's own requests then waited unsigned and its sent transactions went
 * unfollowed. A key whose address is not its pinned one is refused; the alias must point back.
 * A key that passes is registered as a hot wallet of the chain (registerHotWallet).
 */
import type pg from "pg";
import { getAddress } from "viem";
import type { ChainConfig } from "../chains/index.js";
import { type Pool, withTransaction } from "../foundation/db.js";
import { addWatchedAddresses, notifyWatchedAddress } from "../indexers/index.js";
import { HotWalletAddressMismatchError, KmsKeyMovedError } from "./errors.js";

type Queryable = Pick<pg.ClientBase, "query">;

/** Pin `address` for (chain, key) on first sight; throw KmsKeyMovedError if another one is pinned. */
export async function checkHotWalletKey(
  db: Queryable,
  chainId: number,
  keyId: string,
  address: string,
): Promise<void> {
  const now = address.toLowerCase();
  await db.query(
    `INSERT INTO custody.hot_wallet_keys (chain_id, key_id, address) VALUES ($1, $2, $3)
     ON CONFLICT (chain_id, key_id) DO NOTHING`,
    [chainId, keyId, now],
  );
  const { rows } = await db.query<{ address: string }>(
    "SELECT address FROM custody.hot_wallet_keys WHERE chain_id = $1 AND key_id = $2",
    [chainId, keyId],
  );
  const pinned = rows[0]?.address;
  if (pinned !== undefined && pinned !== now)
    throw new KmsKeyMovedError(keyId, chainId, pinned, now);
}

/** A hot wallet as the config names it (`hotWallets[]`): its key, and its address if given. */
export type ConfiguredHotWallet = { kmsKeyId: string; address?: string | undefined };

/**
 * What a hot wallet's key, loaded from KMS as `address`, must pass before anything uses it: the
 * signer role before it serves the wallet, `contracts deploy` and `por deploy` before they sign.
 * The configured address, when the config gives one, is the key's: the api records new
 * withdrawals with it (SIGNER_HOT_WALLET_ADDRESS_MISMATCH; a deploy would record a contract as the
 * key's address while the api pays from the configured one). Then the key is still the one pinned
 * on the chain (checkHotWalletKey), checked second so a mismatch pins nothing.
 */
export async function checkConfiguredHotWallet(
  db: Queryable,
  chainId: number,
  wallet: ConfiguredHotWallet,
  address: string,
): Promise<void> {
  if (wallet.address && getAddress(address) !== getAddress(wallet.address))
    throw new HotWalletAddressMismatchError(wallet.kmsKeyId, wallet.address, getAddress(address));
  await checkHotWalletKey(db, chainId, wallet.kmsKeyId, address);
}

/**
 * A configured wallet is a custody hot wallet whether or not it deployed a contract (a rotation's
 * new wallet): watched, its funding is a fact a treasury booking pairs with, reconciliation counts
 * its balance, and its value above the chain's ceilings moves to cold (sweeps/coldMoves.ts).
 */
export async function registerHotWallet(
  pool: Pool,
  chain: Pick<ChainConfig, "chainId" | "key">,
  address: string,
): Promise<void> {
  const hot = address.toLowerCase();
  await withTransaction(pool, async (c) => {
    const added = await addWatchedAddresses(
      c,
      [{ chainId: chain.chainId, address: hot, kind: "hot", owner: `hot:${chain.key}` }],
      { ifAbsent: true },
    );
    if (added.length > 0) await notifyWatchedAddress(c, chain.chainId, [hot]);
  });
}
