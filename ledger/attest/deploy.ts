/**
 * Deploys the ReservesAttestor on a chain with the hot wallet as its one attester, records it in
 * the contracts registry (chain.contracts through indexers/, name `ReservesAttestor`, hot_wallet =
 * the attester) and books the deploy gas
 * as a treasury gas move (ledger/bookDeployGas.ts), like the ForwarderFactory's
 * (signer/deposit-addresses/deployFactory.ts). Idempotent: a chain keeps its first attestor, so the
 * history dApps index stays at one address.
 *
 * Sent directly, not as a signer request (a request needs a `to`): by `custody-node por deploy`
 * through the signer's stored deploy (`send`, signer/storedDeploy.ts: signed bytes stored before
 * they are sent, a re-run follows them), else at the wallet's pending nonce (the demo, tests): run
 * it while the signer role is not sending for that wallet, as the setup runbook does.
 */
import {
  type Abi,
  type Address,
  encodeDeployData,
  getAddress,
  type Hex,
  type PublicClient,
} from "viem";
import { artifacts } from "../../chains/contracts/index.js";
import { type DeploySender, sendDeploy } from "../../chains/contracts/sendDeploy.js";
import { operatorFeePaid } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { type DeployedContract, getContract, recordContract } from "../../indexers/index.js";
import { bookDeployGas } from "../bookDeployGas.js";

export const RESERVES_ATTESTOR = "ReservesAttestor";

function attestorArtifact(): { abi: Abi; bytecode: Hex } {
  const a = artifacts.contracts[RESERVES_ATTESTOR];
  if (!a) throw new Error("contract ReservesAttestor missing from chains/contracts/artifacts.json");
  return { abi: a.abi as Abi, bytecode: a.bytecode };
}

export const reservesAttestor = attestorArtifact();

/**
 * What the deploy needs: the signer's `HotWalletDeployArgs` (the hot wallet's account, its chain
 * client and raw-transaction sender), which `custody-node por deploy` passes (ops/por/cli.ts).
 */
export type AttestorDeployArgs = Pick<
  Parameters<typeof sendDeploy>[0],
  "chain" | "client" | "account" | "sendRawTransaction"
> & { common: Common; pool: Pool; send?: DeploySender | undefined };

/** The attester is the hot wallet whose account deploys it. */
export async function deployReservesAttestor({
  common,
  pool,
  chain,
  client,
  account,
  sendRawTransaction,
  send = (tx) => sendDeploy({ chain, client, account, sendRawTransaction, ...tx }),
}: AttestorDeployArgs): Promise<{ contract: DeployedContract; deployed: boolean }> {
  const log = common.logger.child({ component: "attest", chain_id: chain.chainId });
  const existing = await getContract(pool, chain.chainId, RESERVES_ATTESTOR);
  if (existing) {
    await assertAttestor(client, existing.address, existing.hotWallet);
    return { contract: existing, deployed: false };
  }
  const attester = getAddress(account.address);
  const { hash, receipt, address } = await send({
    data: encodeDeployData({ ...reservesAttestor, args: [attester] }),
    name: RESERVES_ATTESTOR,
  });
  await assertAttestor(client, address, attester);
  // Read before the transaction: a fee the chain does not tell books nothing (run again).
  const operatorFee = await operatorFeePaid(client, chain, receipt);
  const recorded = await withTransaction(pool, async (c) => {
    const r = await recordContract(c, {
      chainId: chain.chainId,
      name: RESERVES_ATTESTOR,
      address,
      hotWallet: attester,
      initCodeHash: null,
      deployTxHash: hash,
      blockNumber: receipt.blockNumber,
    });
    // The deploy gas left the hot wallet: booked with the deployment so reconciliation pairs it.
    await bookDeployGas({
      common,
      pool,
      chain,
      client: c,
      hotWallet: attester,
      receipt,
      operatorFee,
      by: "attest deploy",
      reason: "ReservesAttestor deploy gas",
    });
    return r;
  });
  log.info({ msg: "reserves attestor deployed", address, tx_hash: hash });
  return { contract: recorded.contract, deployed: recorded.created };
}

async function assertAttestor(client: PublicClient, address: Address, attester: Address) {
  const onChain = await client.readContract({
    address,
    abi: reservesAttestor.abi,
    functionName: "attester",
  });
  if (getAddress(onChain as Address) !== getAddress(attester))
    throw new Error(`contract at ${address} is not a ReservesAttestor for ${attester}`);
}
