/**
 * A contract deploy from a chain's hot wallet: what a deploy function needs (`HotWalletDeployArgs`)
 * and the body of the CLI commands that run one with the wallet's KMS key (`custody-node contracts
 * deploy`, signer/deposit-addresses/cli.ts; `custody-node por deploy`, ops/por/cli.ts).
 */
import type { Account, Hex, PublicClient } from "viem";
import type { DeploySender } from "../chains/contracts/sendDeploy.js";
import { type ChainConfig, chainSchema, createEvmAdapter } from "../chains/index.js";
import { type Common, createCommon } from "../foundation/common.js";
import { chainByKey, loadConfig } from "../foundation/config.js";
import { createPool, type Pool } from "../foundation/db.js";
import type { DeployedContract } from "../indexers/index.js";
import { type CrashAt, createCrashPoints } from "./broadcaster/crashPoints.js";
import { checkConfiguredHotWallet } from "./hotWalletKeys.js";
import { createKmsAccount, createKmsClient } from "./kmsAccount.js";
import type { Lease } from "./lease.js";
import { storedDeploySender } from "./storedDeploy.js";

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
  /**
   * Signs, stores and sends the deploy, or follows the stored one (`storedDeploySender`, the CLI);
   * absent: `sendDeploy` at the node's pending nonce, nothing stored (dev stack, tests).
   */
  send?: DeploySender | undefined;
};

/**
 * The body of a `<command> --chain X [--key K]` deploy: the chain's hot wallet (its KMS key, or
 * `--key`) deploys the contract with `deploy`, and one line tells what was deployed or kept. The
 * deploy is stored before it is sent and a re-run follows it (signer/storedDeploy.ts); the
 * wallet's lease is held until the contract is recorded. The key is checked against its pinned
 * address first, and against the configured `hotWallets[].address` (signer/hotWalletKeys.ts), as the
 * signer checks it.
 */
export async function deployFromHotWallet(
  opts: { chain: string; key?: string },
  {
    command,
    contractName,
    walletRole,
    deploy,
    crashAt,
  }: {
    /** For the shutdown reason, e.g. "contracts deploy". */
    command: string;
    contractName: string;
    /** What the recorded hot wallet is to the contract, e.g. "attester". */
    walletRole: string;
    deploy: (
      args: HotWalletDeployArgs,
    ) => Promise<{ contract: DeployedContract; deployed: boolean }>;
    /** kill -9 tests only (signer/testing/deployProcess.ts). */
    crashAt?: CrashAt | undefined;
  },
): Promise<void> {
  const config = loadConfig(chainSchema);
  const chain = chainByKey(config, opts.chain);
  // A retiring wallet (a rotation) deploys nothing new: the first one that is not. `--key`: the
  // configured wallet of that key, if any (its address is checked as the signer checks it).
  const configured = config.hotWallets.find(
    (w) => w.chain === chain.key && (opts.key ? w.kmsKeyId === opts.key : !w.retiring),
  );
  const keyId = opts.key ?? configured?.kmsKeyId;
  if (!keyId) {
    throw new Error(`no hot wallet configured for chain ${chain.key} (hotWallets[].kmsKeyId)`);
  }
  const common = createCommon(config);
  const pool = createPool(config.env.DATABASE_URL, { max: 2 });
  const kms = createKmsClient({
    region: config.env.AWS_REGION,
    endpoint: config.env.AWS_ENDPOINT_URL_KMS,
    emulator: config.env.KMS_EMULATOR,
  });
  const crash = createCrashPoints(crashAt, common.logger);
  let lease: Lease | undefined;
  try {
    const account = await createKmsAccount({ kms, keyId });
    // The key must be the configured hot wallet's address (SIGNER_HOT_WALLET_ADDRESS_MISMATCH) and
    // still the key it was on this chain (SIGNER_KMS_KEY_MOVED), as the signer role refuses it: an
    // alias moved to another key, or a config naming another address, deployed from an address
    // the signer does not serve and recorded the contract as that address's.
    await checkConfiguredHotWallet(
      pool,
      chain.chainId,
      { kmsKeyId: keyId, address: configured?.address },
      account.address,
    );
    const adapter = createEvmAdapter(chain, { common });
    const { contract, deployed } = await deploy({
      common,
      pool,
      chain,
      client: adapter.client,
      account,
      sendRawTransaction: adapter.sendRawTransaction,
      send: storedDeploySender({
        common,
        databaseUrl: config.env.DATABASE_URL,
        chain,
        client: adapter.client,
        rpc: adapter.rpc,
        account,
        sendRawTransaction: async (raw) => {
          const hash = await adapter.sendRawTransaction(raw);
          crash("deploy_after_send");
          return hash;
        },
        getFinalizedBlock: adapter.getFinalizedBlock,
        onLease: (held) => {
          lease = held;
        },
        crash,
      }),
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
