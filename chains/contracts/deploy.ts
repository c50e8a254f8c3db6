/**
 * Deploys the ForwarderFactory on a chain from a hot wallet (in production a KMS-backed account:
 * the factory sweeps only to, and only when called by, that hot wallet) and records it in
 * custody.contracts. Idempotent: a chain keeps its first factory, because every deposit address
 * is derived from the factory's address.
 *
 * The deploy is sent directly, not through the signer's request queue (a request must have a
 * `to`), with the wallet's pending nonce: run it before the signer role starts sending for that
 * wallet, as the demo and the setup runbook do.
 */
import {
  type Account,
  type Address,
  encodeDeployData,
  getAddress,
  type Hex,
  type PublicClient,
  type TransactionReceipt,
} from "viem";
import type { Common } from "../../foundation/common.js";
import type { ChainConfig } from "../../foundation/config.js";
import { type Pool, type PoolClient, withTransaction } from "../../foundation/db.js";
import { notifyWatchedAddress } from "../../indexers/watched.js";
import { createLedger } from "../../ledger/createLedger.js";
import { bookTreasuryMove } from "../../ledger/treasury.js";
import {
  type DeployedContract,
  FORWARDER_FACTORY,
  getContract,
  recordContract,
} from "../../signer/deposit-addresses/factories.js";
import { adoptForRecordedFactory } from "../../signer/deposit-addresses/sharedFactories.js";
import { forwarderFactory, forwarderInitCodeHash } from "./index.js";

const FACTORY_GAS = { by: "contracts deploy", reason: "ForwarderFactory deploy gas" };

/** What a contract deploy from the chain's hot wallet needs. */
export type HotWalletDeployArgs = {
  common: Common;
  pool: Pool;
  chain: ChainConfig;
  /** Reads, nonce, fees and receipts (e.g. the chain adapter's client). */
  client: PublicClient;
  /** The hot wallet's signing account (KMS-backed in production). */
  account: Account;
  sendRawTransaction: (raw: Hex) => Promise<Hex>;
};

export type DeployFactoryResult = { contract: DeployedContract; deployed: boolean };

export async function deployForwarderFactory({
  common,
  pool,
  chain,
  client,
  account,
  sendRawTransaction,
}: HotWalletDeployArgs): Promise<DeployFactoryResult> {
  const log = common.logger.child({ component: "contracts", chain_id: chain.chainId });
  const existing = await getContract(pool, chain.chainId, FORWARDER_FACTORY);
  if (existing) {
    await assertFactory(client, existing.address, existing.hotWallet);
    log.info({ msg: "forwarder factory already deployed", address: existing.address });
    // Customers allocated elsewhere with this factory address exist here too (sharedFactories.ts).
    const adopted = await adoptForRecordedFactory(pool, chain.chainId);
    if (adopted > 0)
      log.info({ msg: "deposit addresses adopted from chains sharing the factory", adopted });
    // A deployment from before treasury bookings existed gets its gas booked now (once).
    const receipt = await client
      .getTransactionReceipt({ hash: existing.deployTxHash as Hex })
      .catch(() => null);
    if (receipt)
      await withTransaction(pool, (c) =>
        bookDeployGas({
          common,
          pool,
          chain,
          client: c,
          hotWallet: existing.hotWallet,
          receipt,
          ...FACTORY_GAS,
        }),
      );
    else
      log.warn({
        msg: "factory deploy receipt not found: book its gas with custody-node treasury deploy-gas",
        tx_hash: existing.deployTxHash,
      });
    return { contract: existing, deployed: false };
  }
  const hotWallet = getAddress(account.address);
  const data = encodeDeployData({
    abi: forwarderFactory.abi,
    bytecode: forwarderFactory.bytecode,
    args: [hotWallet],
  });
  const { hash, receipt, address } = await sendDeploy({
    chain,
    client,
    account,
    sendRawTransaction,
    data,
    name: "forwarder factory",
    onSent: (hash) =>
      log.info({ msg: "forwarder factory deploy sent", tx_hash: hash, hot_wallet: hotWallet }),
  });
  await assertFactory(client, address, hotWallet);
  const { contract, created } = await withTransaction(pool, async (c) => {
    const recorded = await recordContract(c, {
      chainId: chain.chainId,
      name: FORWARDER_FACTORY,
      address,
      hotWallet,
      initCodeHash: forwarderInitCodeHash,
      deployTxHash: hash,
      blockNumber: receipt.blockNumber,
    });
    // Sweeps pay gas from and deliver value to the hot wallet: the indexer must watch it.
    await c.query(
      `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
       VALUES ($1, $2, 'hot', 'hot-wallet') ON CONFLICT (chain_id, address) DO NOTHING`,
      [chain.chainId, recorded.contract.hotWallet.toLowerCase()],
    );
    await notifyWatchedAddress(c, chain.chainId);
    // The deploy gas left the hot wallet: booked with the deployment, so reconciliation pairs it.
    await bookDeployGas({ common, pool, chain, client: c, hotWallet, receipt, ...FACTORY_GAS });
    return recorded;
  });
  log.info({ msg: "forwarder factory deployed", address: contract.address, tx_hash: hash });
  return { contract, deployed: created };
}

/**
 * Sign a contract creation (`data`: bytecode + constructor args) with the hot wallet's account at
 * its pending nonce, send it and wait for a successful receipt with the new contract's address.
 */
export async function sendDeploy({
  chain,
  client,
  account,
  sendRawTransaction,
  data,
  name,
  onSent,
}: {
  chain: ChainConfig;
  client: PublicClient;
  account: Account;
  sendRawTransaction: (raw: Hex) => Promise<Hex>;
  data: Hex;
  /** For the error when the deploy reverts. */
  name: string;
  onSent?: (hash: Hex) => void;
}): Promise<{ hash: Hex; receipt: TransactionReceipt; address: Address }> {
  if (!account.signTransaction) throw new Error("the hot wallet account cannot sign transactions");
  const request = await client.prepareTransactionRequest({
    account,
    chain: null,
    data,
    type: chain.feeModel === "legacy" ? "legacy" : "eip1559",
  });
  const raw = await account.signTransaction({ ...request, chainId: chain.chainId } as Parameters<
    NonNullable<Account["signTransaction"]>
  >[0]);
  const hash = await sendRawTransaction(raw);
  onSent?.(hash);
  const receipt = await client.waitForTransactionReceipt({
    hash,
    confirmations: 1,
    pollingInterval: Math.min(1000, chain.blockTimeMs),
    timeout: 120_000,
  });
  if (receipt.status !== "success" || !receipt.contractAddress) {
    throw new Error(`${name} deploy ${hash} reverted`);
  }
  return { hash, receipt, address: getAddress(receipt.contractAddress) };
}

/**
 * Book the deploy's gas (debit fees:gas, credit custody:hot) as a treasury gas move, in the
 * caller's transaction; idempotent by chain id + tx hash. The amount is gas used × effective gas
 * price, as the indexer's fee fact records it.
 */
export async function bookDeployGas({
  common,
  pool,
  chain,
  client,
  hotWallet,
  receipt,
  by,
  reason,
}: {
  common: Common;
  pool: Pool;
  chain: ChainConfig;
  client: PoolClient;
  hotWallet: string;
  receipt: { transactionHash: Hex; gasUsed: bigint; effectiveGasPrice: bigint };
  /** The treasury move's `by` and `reason`. */
  by: string;
  reason: string;
}): Promise<void> {
  const ledger = createLedger({ common, pool });
  try {
    await ledger.ensureAssetsFromConfig([chain]);
    await bookTreasuryMove(
      { common, pool, ledger },
      {
        move: "gas",
        chainId: chain.chainId,
        txHash: receipt.transactionHash,
        wallet: hotWallet,
        amount: receipt.gasUsed * receipt.effectiveGasPrice,
        by,
        reason,
      },
      { client },
    );
  } finally {
    await ledger.close();
  }
}

/** The code at `address` is our factory for `hotWallet`, with the forwarder we derive from. */
async function assertFactory(client: PublicClient, address: Address, hotWallet: Address) {
  const [initCodeHash, onChainHot] = await Promise.all([
    client.readContract({
      address,
      abi: forwarderFactory.abi,
      functionName: "FORWARDER_INIT_CODE_HASH",
    }),
    client.readContract({ address, abi: forwarderFactory.abi, functionName: "hotWallet" }),
  ]);
  if (initCodeHash !== forwarderInitCodeHash || getAddress(onChainHot as Address) !== hotWallet) {
    throw new Error(
      `contract at ${address} is not the expected ForwarderFactory (init code hash ${String(initCodeHash)}, hot wallet ${String(onChainHot)})`,
    );
  }
}
