/**
 * The custody's deployed contracts (chain.contracts): the ForwarderFactory every deposit address is
 * derived from (so its row is written once, at deploy, and read by allocation and sweeps) and the
 * ReservesAttestor. The deploys themselves need a hot wallet's key and live with their callers
 * (signer/deposit-addresses/deployFactory.ts, ledger/attest/deploy.ts); the records live here, with
 * the watched set they feed.
 */
import type pg from "pg";
import { type Address, getAddress, type Hex } from "viem";
import { adoptSharedDepositAddresses, lockForFactoryRecord } from "./sharedFactories.js";

type Queryable = Pick<pg.ClientBase, "query">;

export const FORWARDER_FACTORY = "ForwarderFactory";

export type DeployedContract = {
  chainId: number;
  name: string;
  address: Address;
  hotWallet: Address;
  initCodeHash: Hex | null;
  deployTxHash: Hex;
  blockNumber: bigint;
};

type Row = {
  chain_id: string;
  name: string;
  address: string;
  hot_wallet: string;
  init_code_hash: string | null;
  deploy_tx_hash: string;
  block_number: string;
};

function fromRow(r: Row): DeployedContract {
  return {
    chainId: Number(r.chain_id),
    name: r.name,
    address: getAddress(r.address),
    hotWallet: getAddress(r.hot_wallet),
    initCodeHash: r.init_code_hash as Hex | null,
    deployTxHash: r.deploy_tx_hash as Hex,
    blockNumber: BigInt(r.block_number),
  };
}

/**
 * Record a deployment. A chain keeps its first factory: redeploying would move every customer's
 * deposit address, so a second record for the same (chain, name) is refused (returns the existing).
 * A new ForwarderFactory at an address already ours on other chains adopts their customers'
 * deposit addresses (sharedFactories.ts), in the caller's transaction.
 */
export async function recordContract(
  client: Queryable,
  c: DeployedContract,
): Promise<{ contract: DeployedContract; created: boolean }> {
  if (c.name === FORWARDER_FACTORY) await lockForFactoryRecord(client);
  const inserted = await client.query<Row>(
    `INSERT INTO chain.contracts
       (chain_id, name, address, hot_wallet, init_code_hash, deploy_tx_hash, block_number)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (chain_id, name) DO NOTHING
     RETURNING *`,
    [
      c.chainId,
      c.name,
      c.address.toLowerCase(),
      c.hotWallet.toLowerCase(),
      c.initCodeHash?.toLowerCase() ?? null,
      c.deployTxHash.toLowerCase(),
      c.blockNumber.toString(),
    ],
  );
  if (inserted.rows[0]) {
    // The same factory address on another chain: its customers' addresses exist here too.
    if (c.name === FORWARDER_FACTORY)
      await adoptSharedDepositAddresses(client, {
        chainId: c.chainId,
        address: c.address,
        initCodeHash: c.initCodeHash,
      });
    return { contract: fromRow(inserted.rows[0]), created: true };
  }
  const existing = await getContract(client, c.chainId, c.name);
  if (!existing) throw new Error(`chain.contracts row for ${c.chainId}/${c.name} vanished`);
  return { contract: existing, created: false };
}

export async function getContract(
  client: Queryable,
  chainId: number,
  name: string,
): Promise<DeployedContract | undefined> {
  const { rows } = await client.query<Row>(
    "SELECT * FROM chain.contracts WHERE chain_id = $1 AND name = $2",
    [chainId, name],
  );
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/** The hot wallet recorded with the chain's contract at `address` (lowercase), if it is ours. */
export async function contractHotWallet(
  client: Queryable,
  chainId: number,
  address: string,
): Promise<string | undefined> {
  const { rows } = await client.query<{ hot_wallet: string }>(
    "SELECT hot_wallet FROM chain.contracts WHERE chain_id = $1 AND address = $2",
    [chainId, address],
  );
  return rows[0]?.hot_wallet;
}

/** The hot wallets (lowercase) recorded with the chain's contracts: the factories' sweep destinations. */
export async function contractHotWallets(client: Queryable, chainId: number): Promise<string[]> {
  const { rows } = await client.query<{ hot_wallet: string }>(
    "SELECT DISTINCT hot_wallet FROM chain.contracts WHERE chain_id = $1",
    [chainId],
  );
  return rows.map((r) => r.hot_wallet);
}
