/**
 * `custody-node dev`: from nothing to a long-running local service in one command. Starts (or
 * reuses) the local stack — Postgres, Redis, one anvil per loopback chain (its state kept in the
 * dev directory) and the KMS emulator (keys kept there too) — then per chain: a KMS key for the
 * hot wallet, its funding (100 ETH from an anvil dev account) booked as `treasury fund`, the
 * deposit-address factory deployed from it (its gas booked); writes the config it runs with
 * (`<dir>/config.json`), creates an admin API key and prints it once, and runs every role in the
 * foreground until SIGINT/SIGTERM (exit 0). Run again, it reuses the key, the factory, the funding
 * and the config (what it did is in `<dir>/dev-state.json`). Dev only: real deployments use AWS
 * KMS and fund their hot wallet themselves (README).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { CreateKeyCommand } from "@aws-sdk/client-kms";
import { type Hex, parseEther } from "viem";
import { createApiKey, listApiKeys } from "../api/apiKeys.js";
import { chainSchema, publicClientFor } from "../chains/index.js";
import { createCommon } from "../foundation/common.js";
import { type Config, defaultConfigPath, loadConfig } from "../foundation/config.js";
import { createPool } from "../foundation/db.js";
import { ROLE_NAMES } from "../foundation/roles.js";
import { bookTreasuryMove, createLedger } from "../ledger/index.js";
import { createKmsAccount, createKmsClient } from "../signer/kmsAccount.js";
import { signerTransactions } from "../signer/requests.js";
import { deployFactoryWatchingHotWallet, fundFromAnvil } from "./devstack/custody.js";
import { startDevStack } from "./devstack/stack.js";
import { startService } from "./start.js";

export const DEV_KMS_ENDPOINT = "http://127.0.0.1:4599";
export const DEV_ADMIN_OWNER = "dev-admin";
const FUNDING = parseEther("100");

type DevState = {
  wallets: Record<string, { keyId: string; address: Hex; fundTxHash?: Hex }>;
};

function readJson<T>(file: string, fallback: T): T {
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as T) : fallback;
}

export type DevOptions = { dir: string; env?: NodeJS.ProcessEnv; say?: (msg: string) => void };

/** Sets up (or reuses) everything, starts the service; resolves to a stop function. */
export async function runDev(
  options: DevOptions,
): Promise<{ url: string; stop: () => Promise<void> }> {
  const say = options.say ?? ((m: string) => console.log(`[dev] ${m}`));
  const dir = path.resolve(options.dir);
  mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, "config.json");
  const stateFile = path.join(dir, "dev-state.json");
  const baseEnv = options.env ?? process.env;
  // Dev runs from files (the config it writes), never from CUSTODY_CONFIG_JSON.
  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    AWS_ENDPOINT_URL_KMS: baseEnv.AWS_ENDPOINT_URL_KMS || DEV_KMS_ENDPOINT,
  };
  delete env.CUSTODY_CONFIG_JSON;
  // The config it runs with: the one written by an earlier run, else the operator's (or the example).
  const source = existsSync(configFile)
    ? configFile
    : path.resolve(env.CUSTODY_CONFIG || defaultConfigPath);
  const fileJson = JSON.parse(readFileSync(source, "utf8")) as Record<string, unknown>;
  const base = loadConfig(chainSchema, { ...env, CUSTODY_CONFIG: source });
  say(`config ${source}`);

  const stack = await startDevStack(base, say, {
    stateDir: dir,
    kmsFile: path.join(dir, "kms-keys.json"),
  });
  const kmsEndpoint = base.env.AWS_ENDPOINT_URL_KMS ?? DEV_KMS_ENDPOINT;
  let service: Awaited<ReturnType<typeof startService>> | undefined;
  const stop = async () => {
    await service?.stop();
    await stack.stop();
  };
  try {
    const state = readJson<DevState>(stateFile, { wallets: {} });
    const save = () => writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`);
    const common = createCommon(base);
    const pool = createPool(base.env.DATABASE_URL, { max: 2, applicationName: "custody-node dev" });
    const ledger = createLedger({ common, pool });
    const kms = createKmsClient({
      region: base.env.AWS_REGION,
      endpoint: kmsEndpoint,
      emulator: base.env.KMS_EMULATOR,
    });
    const hotWallets = [...base.hotWallets];
    try {
      for (const chain of base.chains) {
        let wallet = state.wallets[chain.key];
        if (!wallet) {
          const created = await kms.send(
            new CreateKeyCommand({
              KeySpec: "ECC_SECG_P256K1",
              KeyUsage: "SIGN_VERIFY",
              Description: `hot wallet ${chain.key} (custody-node dev)`,
            }),
          );
          const keyId = created.KeyMetadata!.KeyId!;
          const acct = await createKmsAccount({ kms, keyId });
          wallet = { keyId, address: acct.address };
          state.wallets[chain.key] = wallet;
          save();
          say(`${chain.key}: KMS key ${keyId} created for the hot wallet ${wallet.address}`);
        } else say(`${chain.key}: hot wallet ${wallet.address} (KMS key ${wallet.keyId}) reused`);
        const account = await createKmsAccount({ kms, keyId: wallet.keyId });
        const client = publicClientFor(chain.rpcUrls[0]!, { cacheTime: 0 });
        if (!wallet.fundTxHash) {
          const hash = await fundFromAnvil(client, account.address, FUNDING);
          wallet.fundTxHash = hash;
          save();
          say(`${chain.key}: hot wallet funded with 100 ETH (tx ${hash})`);
        }
        const deployed = await deployFactoryWatchingHotWallet({
          common,
          pool,
          chain,
          client,
          account,
        });
        say(
          `${chain.key}: forwarder factory ${deployed.contract.address} ${deployed.deployed ? "deployed (its gas booked)" : "reused"}`,
        );
        // `custody-node treasury fund`: the same booking again changes nothing.
        await bookTreasuryMove(
          { common, pool, ledger, signerTransactions },
          {
            move: "fund",
            chainId: chain.chainId,
            txHash: wallet.fundTxHash,
            wallet: account.address,
            amount: FUNDING,
            by: "custody-node dev",
            reason: "hot wallet float (dev)",
          },
        );
        say(`${chain.key}: funding booked (treasury fund ${wallet.fundTxHash.slice(0, 10)}…)`);
        if (!hotWallets.some((w) => w.chain === chain.key))
          hotWallets.push({ chain: chain.key, kmsKeyId: wallet.keyId });
      }
      writeFileSync(configFile, `${JSON.stringify({ ...fileJson, hotWallets }, null, 2)}\n`);
      say(`config written to ${configFile} (custody-node start uses it with CUSTODY_CONFIG)`);

      const admins = (await listApiKeys(pool)).filter(
        (k) => k.owner === DEV_ADMIN_OWNER && !k.revokedAt,
      );
      if (admins.length === 0) {
        const { plaintext } = await createApiKey(pool, {
          owner: DEV_ADMIN_OWNER,
          scopes: ["admin"],
          description: "created by custody-node dev",
        });
        say(`admin API key (shown once, keep it): ${plaintext}`);
      } else
        say(
          `admin API key ${admins[0]!.id} exists (its secret was shown when it was created); another: custody-node apikeys create --owner you --scopes admin`,
        );
    } finally {
      kms.destroy();
      await ledger.close();
      await pool.end();
    }

    const config: Config = loadConfig(chainSchema, {
      ...env,
      CUSTODY_CONFIG: configFile,
    });
    service = await startService(config, { roles: [...ROLE_NAMES] });
    say(`service at ${service.url} (API docs ${service.url}/docs); Ctrl-C stops it`);
    return { url: service.url, stop };
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
}
