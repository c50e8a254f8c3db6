/**
 * `custody-node contracts deploy`'s sender (signer/storedDeploy.ts) run in process and "killed"
 * (thrown out) at a point, as kill -9 would leave it: after storing its signed bytes
 * (`deploy_after_commit`) or after sending them (`deploy_after_send`: the CLI's crash point there is
 * in hotWalletDeploy.ts, right after the sender's `onSent`). Its lease is released either way.
 * Then what the tests of a stored deploy read and do with it: its row, its fees priced out.
 */
import {
  type Account,
  type Address,
  type Hex,
  numberToHex,
  type PublicClient,
  parseTransaction,
} from "viem";
import { type ChainConfig, createRpcClient } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { Pool } from "../../foundation/db.js";
import type { CrashPoint } from "../broadcaster/crashPoints.js";
import { deployForwarderFactory } from "../deposit-addresses/deployFactory.js";
import type { Lease } from "../lease.js";
import { storedDeploySender } from "../storedDeploy.js";

/** Init code of a tiny contract, and its runtime code (returns 42). */
export const TINY_CONTRACT = {
  init: "0x600a600c600039600a6000f3602a60005260206000f3" as Hex,
  runtime: "0x602a60005260206000f3" as Hex,
};

export type DeployKillPoint = "deploy_after_commit" | "deploy_after_send";

/**
 * Resolves once the sender was killed at `point`; rejects with the sender's own error when it
 * stopped before reaching it (e.g. the CLI refused: the signer holds the lease, a nonce unmined).
 */
export async function killedDeploy({
  common,
  databaseUrl,
  chain,
  client,
  account,
  name,
  point,
}: {
  common: Common;
  databaseUrl: string;
  chain: ChainConfig;
  client: PublicClient;
  account: Account;
  name: string;
  point: DeployKillPoint;
}): Promise<void> {
  const killed = `killed at ${point}`;
  let lease: Lease | undefined;
  try {
    const send = storedDeploySender({
      common,
      databaseUrl,
      chain,
      client,
      rpc: createRpcClient({ chainId: chain.chainId, urls: chain.rpcUrls }),
      account,
      sendRawTransaction: (raw) => client.sendRawTransaction({ serializedTransaction: raw }),
      getFinalizedBlock: () => client.getBlock({ blockTag: "finalized" }),
      onLease: (l) => {
        lease = l;
      },
      crash: (p) => {
        if (p === point) throw new Error(killed);
      },
    });
    await send({
      name,
      data: TINY_CONTRACT.init,
      onSent: () => {
        if (point === "deploy_after_send") throw new Error(killed);
      },
    });
  } catch (error) {
    if ((error as Error).message === killed) return;
    throw error;
  } finally {
    await lease?.release().catch(() => {});
  }
  throw new Error(`the ${name} deploy was not killed at ${point}`);
}

/** Where a test runs its deploys: its context (a SignerTest is one) and the chain's node. */
export type DeploySite = {
  ctx: { common: Common; db: { url: string; pool: Pool } };
  chain: ChainConfig;
  client: PublicClient;
};

/**
 * `custody-node contracts deploy`'s body in process on `site` (deployForwarderFactory with the CLI's
 * stored sender, following every 100 ms), "killed" (thrown out) at `killAt` when given. `chain`
 * (default the site's: e.g. another fee cap) and `common` (e.g. a logger the test reads) are the
 * command's.
 */
export async function deployFactoryStored(
  site: DeploySite,
  account: Account,
  {
    killAt,
    chain = site.chain,
    common = site.ctx.common,
  }: { killAt?: CrashPoint; chain?: ChainConfig; common?: Common } = {},
) {
  const { client } = site;
  const sendRawTransaction = (raw: Hex) =>
    client.sendRawTransaction({ serializedTransaction: raw });
  let lease: Lease | undefined;
  try {
    return await deployForwarderFactory({
      common,
      pool: site.ctx.db.pool,
      chain,
      client,
      account,
      sendRawTransaction,
      send: storedDeploySender({
        common,
        databaseUrl: site.ctx.db.url,
        chain,
        client,
        rpc: createRpcClient({ chainId: chain.chainId, urls: chain.rpcUrls }),
        account,
        sendRawTransaction,
        getFinalizedBlock: () => client.getBlock({ blockTag: "finalized" }),
        onLease: (l) => {
          lease = l;
        },
        crash: (point) => {
          if (point === killAt) throw new Error(`killed at ${point}`);
        },
        pollMs: 100,
      }),
    });
  } finally {
    await lease?.release().catch(() => {});
  }
}

/** A deploy's custody.hot_wallet_deploys row. */
export type StoredDeploy = {
  nonce: bigint;
  txHash: Hex;
  rawTx: Hex;
  /** The hashes it was signed with before a replacement (migration 0113), oldest first. */
  earlierTxHashes: Hex[];
  status: string;
};

/**
 * killedDeploy of `account`'s deploy `name` on `site` (by default after its commit: stored, never
 * sent), and the row it left.
 */
export async function storeKilledDeploy(
  site: DeploySite,
  account: Account,
  name: string,
  point: DeployKillPoint = "deploy_after_commit",
): Promise<StoredDeploy> {
  await killedDeploy({
    common: site.ctx.common,
    databaseUrl: site.ctx.db.url,
    chain: site.chain,
    client: site.client,
    account,
    name,
    point,
  });
  return readStoredDeploy(site.ctx.db.pool, account.address, name);
}

/** `from`'s stored deploy `name`: there must be exactly one. */
export async function readStoredDeploy(
  pool: Pool,
  from: Address,
  name: string,
): Promise<StoredDeploy> {
  const { rows } = await pool.query<{
    nonce: string;
    tx_hash: Hex;
    raw_tx: Hex;
    earlier_tx_hashes: Hex[];
    status: string;
  }>(
    `SELECT nonce::text, tx_hash, raw_tx, to_jsonb(earlier_tx_hashes) AS earlier_tx_hashes, status
       FROM custody.hot_wallet_deploys WHERE from_address = $1 AND name = $2`,
    [from.toLowerCase(), name],
  );
  const row = rows[0];
  if (!row || rows.length > 1)
    throw new Error(`expected one stored ${name} deploy from ${from}, found ${rows.length}`);
  return {
    nonce: BigInt(row.nonce),
    txHash: row.tx_hash,
    rawTx: row.raw_tx,
    earlierTxHashes: row.earlier_tx_hashes,
    status: row.status,
  };
}

/**
 * Prices the signed bytes `raw` out of the market: the base fee at 4x their max fee (an empty block
 * lowers it by 1/8 at most), which new signatures can still pay under the chain's cap. Returns
 * their max fee, for restoreBaseFee.
 */
export async function priceOut(
  client: PublicClient,
  chain: ChainConfig,
  raw: Hex,
): Promise<bigint> {
  const { maxFeePerGas } = parseTransaction(raw);
  if (maxFeePerGas === undefined)
    throw new Error("the stored bytes are not an EIP-1559 transaction");
  const baseFee = maxFeePerGas * 4n;
  if (baseFee * 2n >= chain.maxFeePerGas)
    throw new Error(
      `a base fee of ${baseFee} leaves no room under the chain's cap ${chain.maxFeePerGas}`,
    );
  await anvil(client, "anvil_setNextBlockBaseFeePerGas", [numberToHex(baseFee)]);
  await anvil(client, "evm_mine", []);
  return maxFeePerGas;
}

/** The base fee back under `maxFeePerGas` (what priceOut returned): those bytes can mine again. */
export async function restoreBaseFee(client: PublicClient, maxFeePerGas: bigint): Promise<void> {
  await anvil(client, "anvil_setNextBlockBaseFeePerGas", [numberToHex(maxFeePerGas / 2n)]);
  await anvil(client, "evm_mine", []);
}

const anvil = (client: PublicClient, method: string, params: unknown[]) =>
  client.request({ method: method as never, params: params as never });

/**
 * Settles `work` (a deploy command's run: it ends once its block is final) while blocks are mined,
 * as anvil mines only on a transaction; each block with the base fee at `baseFee` when given (an
 * empty block would lower it, and bytes priced out would mine after a dozen blocks).
 */
export async function whileMining<T>(
  client: PublicClient,
  work: Promise<T>,
  baseFee?: bigint,
): Promise<T> {
  let done = false;
  const settled = work.finally(() => {
    done = true;
  });
  const deadline = Date.now() + 60_000;
  while (!done) {
    if (Date.now() > deadline) throw new Error("timed out waiting for the deploy command's end");
    if (baseFee !== undefined)
      await anvil(client, "anvil_setNextBlockBaseFeePerGas", [numberToHex(baseFee)]);
    await anvil(client, "evm_mine", []);
    await Promise.race([settled.catch(() => {}), new Promise((r) => setTimeout(r, 100))]);
  }
  return settled;
}
