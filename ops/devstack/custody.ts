/**
 * Custody set-up on the local stack, for `npm run demo`, `custody-node dev` and the end-to-end
 * tests: a hot wallet key in the (emulated) KMS, the ForwarderFactory deployed from it, the wallet
 * in the watched set, and the config that runs the signer with it. Dev only: it funds the hot
 * wallet from an anvil dev account.
 */
import { CreateKeyCommand } from "@aws-sdk/client-kms";
import { type Account, type Address, type Hex, type PublicClient, parseEther, toHex } from "viem";
import { type ChainConfig, publicClientFor } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { Config } from "../../foundation/config.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { addWatchedAddresses, notifyWatchedAddress } from "../../indexers/index.js";
import {
  type DeployFactoryResult,
  deployForwarderFactory,
} from "../../signer/deposit-addresses/index.js";
import { createKmsAccount, createKmsClient } from "../../signer/kmsAccount.js";

export type PreparedCustody = {
  config: Config;
  hotWallet: `0x${string}`;
  keyId: string;
  /** The hot wallet's funding transaction (100 ETH), for `treasury fund`. */
  fundTxHash: Hex;
};

export async function prepareCustody({
  common,
  pool,
  chain,
  kmsEndpoint,
  policies,
}: {
  common: Common;
  pool: Pool;
  chain: ChainConfig;
  kmsEndpoint: string;
  policies?: Config["policies"];
}): Promise<PreparedCustody> {
  const kms = createKmsClient({
    region: common.config.env.AWS_REGION,
    endpoint: kmsEndpoint,
    emulator: common.config.env.KMS_EMULATOR,
  });
  try {
    const created = await kms.send(
      new CreateKeyCommand({
        KeySpec: "ECC_SECG_P256K1",
        KeyUsage: "SIGN_VERIFY",
        Description: `hot wallet ${chain.key}`,
      }),
    );
    const keyId = created.KeyMetadata!.KeyId!;
    const account = await createKmsAccount({ kms, keyId });
    const client = publicClientFor(chain.rpcUrls[0]!, { cacheTime: 0 });
    // Funded by a real transaction (a chain fact the treasury booking points at).
    const fundTxHash = await fundFromAnvil(client, account.address, parseEther("100"));
    await deployFactoryWatchingHotWallet({ common, pool, chain, client, account });
    const config: Config = Object.freeze({
      ...common.config,
      env: Object.freeze({ ...common.config.env, AWS_ENDPOINT_URL_KMS: kmsEndpoint }),
      hotWallets: [...common.config.hotWallets, { chain: chain.key, kmsKeyId: keyId }],
      policies: policies ?? common.config.policies,
    });
    return { config, hotWallet: account.address, keyId, fundTxHash };
  } finally {
    kms.destroy();
  }
}

/**
 * Fund `to` with `value` by a real transaction from anvil's unlocked dev account 7 (tests, the
 * scenario and the demo use the others as customers); returns its hash once mined.
 */
export async function fundFromAnvil(
  client: PublicClient,
  to: Address,
  value: bigint,
): Promise<Hex> {
  const accounts = (await client.request({ method: "eth_accounts" as never })) as Hex[];
  const funder = accounts[7] ?? accounts[0]!;
  const hash = (await client.request({
    method: "eth_sendTransaction" as never,
    params: [{ from: funder, to, value: toHex(value) }] as never,
  })) as Hex;
  await client.waitForTransactionReceipt({ hash, pollingInterval: 100, timeout: 60_000 });
  return hash;
}

/**
 * Deploy (or keep) the chain's ForwarderFactory from the hot wallet, sent straight to the node,
 * and have the indexer watch the hot wallet (owner `hot:<chain key>`).
 */
export async function deployFactoryWatchingHotWallet({
  common,
  pool,
  chain,
  client,
  account,
}: {
  common: Common;
  pool: Pool;
  chain: ChainConfig;
  client: PublicClient;
  account: Account;
}): Promise<DeployFactoryResult> {
  const deployed = await deployForwarderFactory({
    common,
    pool,
    chain,
    client,
    account,
    sendRawTransaction: (raw) =>
      client.request({ method: "eth_sendRawTransaction", params: [raw] }),
  });
  await withTransaction(pool, async (c) => {
    await addWatchedAddresses(
      c,
      [
        {
          chainId: chain.chainId,
          address: account.address.toLowerCase(),
          kind: "hot",
          owner: `hot:${chain.key}`,
        },
      ],
      { ifAbsent: true },
    );
    await notifyWatchedAddress(c, chain.chainId, [account.address.toLowerCase()]);
  });
  return deployed;
}
