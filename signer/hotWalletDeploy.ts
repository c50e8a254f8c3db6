/**
 * A contract deploy from a chain's hot wallet: what a deploy function needs (`HotWalletDeployArgs`)
 * and the body of the CLI commands that run one with the wallet's KMS key (`custody-node contracts
 * deploy`, signer/deposit-addresses/cli.ts; `custody-node por deploy`, ops/por/cli.ts).
 */
import { type Account, type Address, getAddress, type Hex, type PublicClient } from "viem";
import { type ChainConfig, chainSchema, createEvmAdapter } from "../chains/index.js";
import { type Common, createCommon } from "../foundation/common.js";
import { chainByKey, loadConfig } from "../foundation/config.js";
import { createPool, type Pool } from "../foundation/db.js";
import type { DeployedContract } from "../indexers/index.js";
import { createKmsAccount, createKmsClient } from "./kmsAccount.js";
import { acquireLease, type Lease, leaseKey } from "./lease.js";
import { storedNextNonce } from "./requests.js";

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
  /** The deploy's nonce, taken right before signing (`nonceForDeploy`); else the node's pending one. */
  takeNonce?: () => Promise<number>;
};

/**
 * The hot wallet's nonces have one owner, the broadcaster (DESIGN, principle 6). A deploy takes
 * its nonce holding the broadcaster's lease (kept until the caller releases it, after the receipt),
 * and only when nothing of the wallet's is open: every nonce the signer stored is mined at latest,
 * and the node's pool holds no transaction of the wallet's. Otherwise it is refused, saying what to
 * do, and nothing is sent: a deploy at the pending nonce beside a running signer, or at a nonce the
 * signer stored but has not sent yet, would take a withdrawal's nonce (its bytes refused "nonce too
 * low", then receipt_unknown and needs_review: a customer's money held until an operator acts).
 */
export async function nonceForDeploy({
  databaseUrl,
  chainId,
  chainKey,
  client,
  address,
}: {
  databaseUrl: string;
  chainId: number;
  chainKey: string;
  client: PublicClient;
  address: Address;
}): Promise<{ nonce: number; lease: Lease }> {
  const from = getAddress(address);
  const lease = await acquireLease({
    databaseUrl,
    key: leaseKey(chainId, from),
    signal: new AbortController().signal,
    once: true,
    applicationName: "custody-node deploy",
  });
  if (!lease) {
    throw new Error(
      `the signer is running for hot wallet ${from} on chain ${chainKey} (it holds the wallet's nonce lease): stop the signer role for this chain, then deploy`,
    );
  }
  try {
    const storedNext = Number(await storedNextNonce(lease, chainId, from.toLowerCase()));
    const [latest, pending] = await Promise.all([
      client.getTransactionCount({ address: from, blockTag: "latest" }),
      client.getTransactionCount({ address: from, blockTag: "pending" }),
    ]);
    if (storedNext > latest) {
      throw new Error(
        `hot wallet ${from} on chain ${chainKey} has signer transactions not mined yet (nonces ${latest} to ${storedNext - 1}): run the signer until they are mined, stop it, then deploy`,
      );
    }
    if (pending > latest) {
      throw new Error(
        `the node's pool holds a transaction from hot wallet ${from} on chain ${chainKey} (nonce ${latest}; an earlier deploy may still mine): wait until it is mined, then deploy`,
      );
    }
    return { nonce: latest, lease };
  } catch (error) {
    await lease.release();
    throw error;
  }
}

/**
 * The body of a `<command> --chain X [--key K]` deploy: the chain's hot wallet (its KMS key, or
 * `--key`) deploys the contract with `deploy`, and one line tells what was deployed or kept.
 */
export async function deployFromHotWallet(
  opts: { chain: string; key?: string },
  {
    command,
    contractName,
    walletRole,
    deploy,
  }: {
    /** For the shutdown reason, e.g. "contracts deploy". */
    command: string;
    contractName: string;
    /** What the recorded hot wallet is to the contract, e.g. "attester". */
    walletRole: string;
    deploy: (
      args: HotWalletDeployArgs,
    ) => Promise<{ contract: DeployedContract; deployed: boolean }>;
  },
): Promise<void> {
  const config = loadConfig(chainSchema);
  const chain = chainByKey(config, opts.chain);
  const keyId =
    opts.key ?? config.hotWallets.find((w) => w.chain === chain.key)?.kmsKeyId ?? undefined;
  if (!keyId) {
    throw new Error(`no hot wallet configured for chain ${chain.key} (hotWallets[].kmsKeyId)`);
  }
  const common = createCommon(config);
  const pool = createPool(config.env.DATABASE_URL, { max: 2 });
  const kms = createKmsClient({
    region: config.env.AWS_REGION,
    endpoint: config.env.AWS_ENDPOINT_URL_KMS,
  });
  let lease: Lease | undefined;
  try {
    const account = await createKmsAccount({ kms, keyId });
    const adapter = createEvmAdapter(chain, { common });
    const { contract, deployed } = await deploy({
      common,
      pool,
      chain,
      client: adapter.client,
      account,
      sendRawTransaction: adapter.sendRawTransaction,
      takeNonce: async () => {
        const held = await nonceForDeploy({
          databaseUrl: config.env.DATABASE_URL,
          chainId: chain.chainId,
          chainKey: chain.key,
          client: adapter.client,
          address: account.address,
        });
        lease = held.lease;
        return held.nonce;
      },
    });
    console.log(
      `${deployed ? "deployed" : "already deployed:"} ${contractName} ${contract.address} on ${chain.key} (${walletRole} ${contract.hotWallet}, tx ${contract.deployTxHash})`,
    );
  } finally {
    await lease?.release();
    kms.destroy();
    await pool.end();
    await common.shutdown.kill(`${command} done`);
  }
}
