/**
 * `custody-node contracts deploy` and `custody-node deposit-address` as real CLI processes: the
 * factory is deployed by a hot wallet whose key lives in the KMS emulator, recorded once, and a
 * deposit address allocated through the CLI is swept by a transaction that KMS key signs.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateKeyCommand, type KMSClient } from "@aws-sdk/client-kms";
import { createPublicClient, createWalletClient, getAddress, http, parseEther } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { depositAddressOf, depositSalt, forwarderFactory } from "../../chains/contracts/index.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { spawnCli } from "../../ops/testing/process.js";
import { type KmsEmulator, startKmsEmulator } from "../kms-emulator/server.js";
import { createKmsAccount, createKmsClient, type KmsAccount } from "../kmsAccount.js";
import { acquireLease, leaseKey } from "../lease.js";

const DEPOSITOR_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

let ctx: TestContext;
let emulator: KmsEmulator;
let kms: KMSClient;
let hot: KmsAccount;
let configFile: string;
let env: Record<string, string>;
let publicClient: ReturnType<typeof createPublicClient>;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: 31337 }] });
  emulator = await startKmsEmulator({});
  kms = createKmsClient({ region: "us-east-1", endpoint: emulator.url });
  const created = await kms.send(
    new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
  );
  const keyId = created.KeyMetadata!.KeyId!;
  hot = await createKmsAccount({ kms, keyId });
  const rpcUrl = ctx.anvils[0]!.rpcUrl;
  publicClient = createPublicClient({ chain: foundry, transport: http(rpcUrl) });
  await publicClient.request({
    method: "anvil_setBalance" as never,
    params: [hot.address, `0x${parseEther("10").toString(16)}`] as never,
  });
  configFile = path.join(tmpdir(), `deploy-config-${process.pid}-${Date.now()}.json`);
  writeFileSync(
    configFile,
    JSON.stringify({
      chains: [
        {
          key: "local",
          chainId: 31337,
          name: "local",
          rpcUrls: [rpcUrl],
          confirmations: { kind: "blocks", blocks: 1 },
          reorgWindow: 8,
          blockTimeMs: 1000,
          feeModel: "eip1559",
        },
      ],
      hotWallets: [{ chain: "local", kmsKeyId: keyId }],
    }),
  );
  env = {
    CUSTODY_CONFIG: configFile,
    DATABASE_URL: ctx.db.url,
    REDIS_URL: ctx.redis.url,
    AWS_REGION: "us-east-1",
    AWS_ENDPOINT_URL_KMS: emulator.url,
    LOG_LEVEL: "silent",
  };
});

afterAll(async () => {
  kms?.destroy();
  await emulator?.stop();
  await ctx?.cleanup();
});

describe("contracts deploy CLI", () => {
  it("takes no nonce of the signer's: refused while the signer holds the wallet's lease, its nonces are unmined or the pool holds one; nothing sent", async () => {
    const nonce = () => publicClient.getTransactionCount({ address: hot.address });
    const before = await nonce();
    const deploy = async (expected: string) => {
      const run = spawnCli(["contracts", "deploy", "--chain", "local"], env);
      expect((await run.exited).code, run.output()).not.toBe(0);
      expect(run.output()).toContain(expected);
    };

    // A running signer (standby or active) holds the lease of (chain, hot wallet).
    const lease = await acquireLease({
      databaseUrl: ctx.db.url,
      key: leaseKey(31337, hot.address),
      signal: new AbortController().signal,
    });
    await deploy(`the signer is running for hot wallet ${hot.address} on chain local`);
    await lease!.release();

    // A withdrawal signed at the next nonce but not sent yet (the signer stopped before sending).
    await ctx.db.pool.query(
      `INSERT INTO custody.tx_requests (id, chain_id, from_address, to_address, value, kind, ref_id, status, nonce)
       VALUES ('w-unsent', 31337, $1, $2, 1, 'withdrawal', 'w-unsent', 'signed', $3)`,
      [hot.address.toLowerCase(), `0x${"ab".repeat(20)}`, before],
    );
    await deploy(`has signer transactions not mined yet (nonces ${before} to ${before})`);
    await ctx.db.pool.query("DELETE FROM custody.tx_requests WHERE id = 'w-unsent'");

    // A transaction of the wallet's waiting in the node's pool.
    await publicClient.request({ method: "evm_setAutomine" as never, params: [false] as never });
    const wallet = createWalletClient({
      account: hot,
      chain: foundry,
      transport: http(ctx.anvils[0]!.rpcUrl),
    });
    await wallet.sendTransaction({ to: hot.address, value: 0n });
    await deploy(`the node's pool holds a transaction from hot wallet ${hot.address}`);
    expect(await nonce()).toBe(before);
    await publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await publicClient.request({ method: "evm_setAutomine" as never, params: [true] as never });

    const { rows } = await ctx.db.pool.query("SELECT count(*)::int AS n FROM chain.contracts");
    expect(rows[0].n).toBe(0);
    expect(await nonce()).toBe(before + 1);
  });

  it("deploys the factory from the KMS hot wallet, records it once, and its sweeps are KMS-signed", async () => {
    const first = spawnCli(["contracts", "deploy", "--chain", "local"], env);
    expect((await first.exited).code, first.output()).toBe(0);
    expect(first.output()).toMatch(/^deployed ForwarderFactory 0x[0-9a-fA-F]{40}/m);

    const { rows } = await ctx.db.pool.query(
      "SELECT chain_id::int, name, address, hot_wallet FROM chain.contracts",
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      chain_id: 31337,
      name: "ForwarderFactory",
      hot_wallet: hot.address.toLowerCase(),
    });
    const factory = getAddress(rows[0].address);
    expect(
      await publicClient.readContract({
        address: factory,
        abi: forwarderFactory.abi,
        functionName: "hotWallet",
      }),
    ).toBe(hot.address);

    const second = spawnCli(["contracts", "deploy", "--chain", "local"], env);
    expect((await second.exited).code, second.output()).toBe(0);
    expect(second.output()).toContain(`already deployed: ForwarderFactory ${factory}`);
    const count = await ctx.db.pool.query("SELECT count(*)::int AS n FROM chain.contracts");
    expect(count.rows[0].n).toBe(1);

    const alloc = spawnCli(["deposit-address", "--chain", "local", "--customer", "cust-7"], env);
    expect((await alloc.exited).code, alloc.output()).toBe(0);
    const allocated = JSON.parse(alloc.output().trim().split("\n").pop()!);
    expect(allocated.address).toBe(depositAddressOf(factory, depositSalt("cust-7")));

    // A 21,000-gas deposit, then a sweep signed by the KMS key.
    const depositor = createWalletClient({
      account: privateKeyToAccount(DEPOSITOR_KEY),
      chain: foundry,
      transport: http(ctx.anvils[0]!.rpcUrl),
    });
    const dep = await depositor.sendTransaction({
      to: allocated.address,
      value: 777n,
      gas: 21_000n,
    });
    expect((await publicClient.waitForTransactionReceipt({ hash: dep })).status).toBe("success");
    const hotWallet = createWalletClient({
      account: hot,
      chain: foundry,
      transport: http(ctx.anvils[0]!.rpcUrl),
    });
    const sweep = await hotWallet.writeContract({
      address: factory,
      abi: forwarderFactory.abi,
      functionName: "sweep",
      args: [[depositSalt("cust-7")], []],
    });
    expect((await publicClient.waitForTransactionReceipt({ hash: sweep })).status).toBe("success");
    expect(await publicClient.getBalance({ address: allocated.address })).toBe(0n);
  });
});
