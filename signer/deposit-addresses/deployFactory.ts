/**
 * Deploys the ForwarderFactory on a chain from a hot wallet (in production a KMS-backed account:
 * the factory sweeps only to, and only when called by, that hot wallet) and records it in the
 * contracts registry (chain.contracts, through indexers/depositAddresses). Idempotent: a chain keeps its first factory, because every deposit address
 * is derived from the factory's address.
 *
 * The deploy is sent directly, not through the signer's request queue (a request must have a
 * `to`): the CLI stores its signed bytes at a nonce taken holding the broadcaster's lease before
 * sending them, and a re-run follows the stored deploy (signer/storedDeploy.ts); the dev stack and
 * tests, which deploy before any signer runs, send at the node's pending nonce (`sendDeploy`).
 */
import { type Address, encodeDeployData, getAddress, type Hex, type PublicClient } from "viem";
import { forwarderFactory, forwarderInitCodeHash } from "../../chains/contracts/index.js";
import { sendDeploy } from "../../chains/contracts/sendDeploy.js";
import { operatorFeePaid } from "../../chains/index.js";
import { withTransaction } from "../../foundation/db.js";
import {
  addWatchedAddresses,
  adoptForRecordedFactory,
  type DeployedContract,
  FORWARDER_FACTORY,
  getContract,
  notifyWatchedAddress,
  recordContract,
} from "../../indexers/index.js";
import { bookDeployGas } from "../../ledger/index.js";
import type { HotWalletDeployArgs } from "../hotWalletDeploy.js";

const FACTORY_GAS = { by: "contracts deploy", reason: "ForwarderFactory deploy gas" };

export type DeployFactoryResult = { contract: DeployedContract; deployed: boolean };

export async function deployForwarderFactory({
  common,
  pool,
  chain,
  client,
  account,
  sendRawTransaction,
  send = (tx) => sendDeploy({ chain, client, account, sendRawTransaction, ...tx }),
}: HotWalletDeployArgs): Promise<DeployFactoryResult> {
  const log = common.logger.child({ component: "contracts", chain_id: chain.chainId });
  const existing = await getContract(pool, chain.chainId, FORWARDER_FACTORY);
  if (existing) {
    await assertFactory(client, existing.address, existing.hotWallet);
    log.info({ msg: "forwarder factory already deployed", address: existing.address });
    // Customers allocated elsewhere with this factory address exist here too (indexers/depositAddresses/sharedFactories.ts).
    const adopted = await adoptForRecordedFactory(pool, chain.chainId);
    if (adopted > 0)
      log.info({ msg: "deposit addresses adopted from chains sharing the factory", adopted });
    // A deployment from before treasury bookings existed gets its gas booked now (once).
    const receipt = await client
      .getTransactionReceipt({ hash: existing.deployTxHash as Hex })
      .catch(() => null);
    if (receipt) {
      // Read before the transaction: a fee the chain does not tell books nothing (run again).
      const operatorFee = await operatorFeePaid(client, chain, receipt);
      await withTransaction(pool, (c) =>
        bookDeployGas({
          common,
          pool,
          chain,
          client: c,
          hotWallet: existing.hotWallet,
          receipt,
          operatorFee,
          ...FACTORY_GAS,
        }),
      );
    } else
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
  const { hash, receipt, address } = await send({
    data,
    name: FORWARDER_FACTORY,
    onSent: (hash) =>
      log.info({ msg: "forwarder factory deploy sent", tx_hash: hash, hot_wallet: hotWallet }),
  });
  await assertFactory(client, address, hotWallet);
  const operatorFee = await operatorFeePaid(client, chain, receipt);
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
    await addWatchedAddresses(
      c,
      [
        {
          chainId: chain.chainId,
          address: recorded.contract.hotWallet.toLowerCase(),
          kind: "hot",
          owner: "hot-wallet",
        },
      ],
      { ifAbsent: true },
    );
    await notifyWatchedAddress(c, chain.chainId, [recorded.contract.hotWallet.toLowerCase()]);
    // The deploy gas left the hot wallet: booked with the deployment, so reconciliation pairs it.
    await bookDeployGas({
      common,
      pool,
      chain,
      client: c,
      hotWallet,
      receipt,
      operatorFee,
      ...FACTORY_GAS,
    });
    return recorded;
  });
  log.info({ msg: "forwarder factory deployed", address: contract.address, tx_hash: hash });
  return { contract, deployed: created };
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
