/**
 * `custody-node contracts deploy`, `por deploy` and `custody-node deposit-address` as real CLI
 * processes: the factory is deployed by a hot wallet whose key lives in the KMS emulator, recorded
 * once, and a deposit address allocated through the CLI is swept by a transaction that KMS key
 * signs. A deploy killed (kill -9 at a crash point, signer/testing/deployProcess.ts) after storing
 * its signed bytes or after sending them is followed by the next run, and recorded only once its
 * block is final.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  CreateAliasCommand,
  CreateKeyCommand,
  type KMSClient,
  UpdateAliasCommand,
} from "@aws-sdk/client-kms";
import {
  createPublicClient,
  createWalletClient,
  getAddress,
  getContractAddress,
  type Hex,
  http,
  type PublicClient,
  parseEther,
  toHex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { depositAddressOf, depositSalt, forwarderFactory } from "../../chains/contracts/index.js";
import { createRpcClient } from "../../chains/rpc.js";
import { withTransaction } from "../../foundation/db.js";
import { closeHalt, insertHalt } from "../../indexers/halts.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { type CliProcess, spawnCli, spawnScript } from "../../ops/testing/process.js";
import { waitFor } from "../../ops/testing/wait.js";
import { type KmsEmulator, startKmsEmulator } from "../kms-emulator/server.js";
import { createKmsAccount, createKmsClient, type KmsAccount } from "../kmsAccount.js";
import { acquireLease, type Lease, leaseKey } from "../lease.js";
import { storedDeploySender } from "../storedDeploy.js";
import { type DeploySite, storeKilledDeploy, TINY_CONTRACT } from "../testing/killedDeploy.js";
import { deployWillRevert } from "../testing/revertingDeploy.js";
import { type RpcProxy, startRpcProxy } from "../testing/rpcProxy.js";

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
  // Also the in-process deploy sender's client (deploySenderVia): with viem's default, the head
  // it reads is cached for the polling interval (4 s), and each wait for a final block took 4 s
  // more whatever the test mined.
  publicClient = createPublicClient({ cacheTime: 0, chain: foundry, transport: http(rpcUrl) });
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

const nonce = () => publicClient.getTransactionCount({ address: hot.address });

/** The deploy CLI's body in a process that kills itself at a crash point (SIGNER_CRASH_AT). */
function spawnDeploy(which: "contracts" | "por", crashAt: string): CliProcess {
  return spawnScript("signer/testing/deployProcess.ts", [which, "local"], {
    ...env,
    SIGNER_CRASH_AT: crashAt,
  });
}

/**
 * A CLI deploy records its contract once the deploy's block is final (8 blocks here) and anvil
 * mines only on a transaction: mine while it runs.
 */
async function whileMining<T>(work: Promise<T>): Promise<T> {
  let done = false;
  const settled = work.finally(() => {
    done = true;
  });
  while (!done) {
    await publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await Promise.race([settled.catch(() => {}), new Promise((r) => setTimeout(r, 100))]);
  }
  return settled;
}

const exitWhileMining = (run: CliProcess) => whileMining(run.exited);

/**
 * A stored-deploy sender of the hot wallet through `client` (and `rpcUrl`, the node it reads the
 * chain from), and the release of the leases it took.
 */
function deploySenderVia(client: PublicClient, rpcUrl = ctx.anvils[0]!.rpcUrl) {
  const leases: Lease[] = [];
  const send = storedDeploySender({
    common: ctx.common,
    databaseUrl: ctx.db.url,
    chain: ctx.config.chains[0]!,
    client,
    rpc: createRpcClient({ chainId: 31337, urls: [rpcUrl] }),
    account: hot,
    sendRawTransaction: (raw) => client.sendRawTransaction({ serializedTransaction: raw }),
    getFinalizedBlock: async () => null,
    onLease: (lease) => leases.push(lease),
    pollMs: 50,
  });
  const release = async () => {
    for (const lease of leases.splice(0)) await lease.release();
  };
  return { send, release };
}

/** Deploy gas booked in the ledger (treasury gas moves), by transaction. */
async function gasBooked(): Promise<{ tx_hash: string; amount: bigint }[]> {
  const { rows } = await ctx.db.pool.query(
    "SELECT tx_hash, amount FROM ledger.transfers WHERE kind = 'fee' ORDER BY seq",
  );
  return rows.map((r) => ({ tx_hash: r.tx_hash, amount: BigInt(r.amount) }));
}

/** The hot wallet's deploys from the test's own node. */
const site = (): DeploySite => ({
  ctx,
  chain: ctx.config.chains[0]!,
  client: publicClient as PublicClient,
});

/** The stored deploys of `name`, and of the ForwarderFactory, which a refused CLI run would store. */
const storedDeploys = async (name: string) =>
  (
    await ctx.db.pool.query(
      "SELECT name, nonce::int, status FROM custody.hot_wallet_deploys WHERE name IN ($1, 'ForwarderFactory') ORDER BY id",
      [name],
    )
  ).rows;

/** The stored deploy `name`, at the wallet's nonce `at`, followed until final (its bytes sent). */
async function followStored(name: string, at: number) {
  const { send, release } = deploySenderVia(publicClient as PublicClient);
  try {
    const done = await whileMining(send({ name, data: TINY_CONTRACT.init }));
    expect(done.address).toBe(getContractAddress({ from: hot.address, nonce: BigInt(at) }));
  } finally {
    await release();
  }
  expect(await nonce()).toBe(at + 1);
}

const halt = () =>
  withTransaction(ctx.db.pool, (c) =>
    insertHalt(c, { chainId: 31337, reason: "test: deep reorg", details: {} }),
  );
const resume = () =>
  withTransaction(ctx.db.pool, (c) =>
    closeHalt(c, 31337, { resumedBy: "test", reason: "test resume" }),
  );

/**
 * Through a proxy that answers one eth_blockNumber far above the chain (a proxy's bug, a node of
 * another network with the same chain id), the first one asked after a receipt of the deploy came
 * back; every other call reaches anvil unchanged.
 */
async function headFromNowhereOnce(): Promise<{
  proxy: RpcProxy;
  client: PublicClient;
  lied: () => boolean;
}> {
  const proxy = await startRpcProxy(ctx.anvils[0]!.rpcUrl);
  let mined = false;
  let lied = false;
  proxy.setRewrite((call, result) => {
    if (call.method === "eth_getTransactionReceipt" && result !== null) mined = true;
    if (call.method !== "eth_blockNumber" || !mined || lied) return result;
    lied = true;
    return toHex(BigInt(result as Hex) + 1_000_000n);
  });
  const client = createPublicClient({ chain: foundry, transport: http(proxy.url) });
  return { proxy, client: client as PublicClient, lied: () => lied };
}

describe("contracts deploy CLI", () => {
  it("on a halted chain: refused naming the chain, nothing signed or sent; a deploy stored unsent before the halt is not sent until the resume", async () => {
    const before = await nonce();
    // Stored, killed before sending, before the halt.
    await storeKilledDeploy(site(), hot, "HaltedUnsent");
    const stored = () => storedDeploys("HaltedUnsent");
    expect(await stored()).toEqual([{ name: "HaltedUnsent", nonce: before, status: "signed" }]);
    await halt();
    try {
      const run = spawnCli(["contracts", "deploy", "--chain", "local"], env);
      expect((await run.exited).code, run.output()).not.toBe(0);
      expect(run.output()).toContain("chain local (31337) is halted");
      const { send, release } = deploySenderVia(publicClient as PublicClient);
      const unsent = await send({ name: "HaltedUnsent", data: TINY_CONTRACT.init }).catch(
        (e: unknown) => e as Error,
      );
      await release();
      expect(unsent).toBeInstanceOf(Error);
      expect((unsent as Error).message).toContain(
        `chain ${ctx.config.chains[0]!.key} (31337) is halted`,
      );
      expect(await nonce()).toBe(before);
      expect(await stored()).toEqual([{ name: "HaltedUnsent", nonce: before, status: "signed" }]);
      expect(
        await publicClient.getTransactionCount({ address: hot.address, blockTag: "pending" }),
      ).toBe(before);
    } finally {
      await resume();
    }
    // Resumed: the stored bytes go out and are followed to final.
    await followStored("HaltedUnsent", before);
  });

  it("refused while another contract's stored deploy holds the wallet's next nonce, naming that deploy and what to do; nothing signed, stored or sent", async () => {
    const before = await nonce();
    // Stored, killed before sending: its nonce is the chain's next one, and no node has it.
    await storeKilledDeploy(site(), hot, "HeldNonce");
    const stored = () => storedDeploys("HeldNonce");
    expect(await stored()).toEqual([{ name: "HeldNonce", nonce: before, status: "signed" }]);

    const run = spawnCli(["contracts", "deploy", "--chain", "local"], env);
    expect((await run.exited).code, run.output()).not.toBe(0);
    expect(run.output()).toContain(
      `hot wallet ${hot.address} on chain local has a stored HeldNonce deploy at nonce ${before} (signed, tx 0x`,
    );
    expect(run.output()).toContain("run its deploy command again");
    expect(run.output()).not.toContain("duplicate key");
    expect(await stored()).toEqual([{ name: "HeldNonce", nonce: before, status: "signed" }]);
    expect(await nonce()).toBe(before);
    expect(
      await publicClient.getTransactionCount({ address: hot.address, blockTag: "pending" }),
    ).toBe(before);

    // Followed until final (its stored bytes sent), it holds nothing any more.
    await followStored("HeldNonce", before);
  });

  it("takes no nonce of the signer's: refused while the signer holds the wallet's lease, its nonces are unmined or the pool holds one; nothing sent", async () => {
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

  it("refused when the hot wallet's KMS alias now points at another key (SIGNER_KMS_KEY_MOVED), as the signer refuses it; nothing signed, stored or sent", async () => {
    // old code: expected '... insufficient funds ...' to contain 'its alias points at another
    // key': the CLI deployed from whatever key the alias named, the address that holds none of
    // the wallet's funds or nonces, and a funded one would have recorded the factory as its own.
    const alias = "alias/hot-deploy-moved";
    await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: hot.keyId }));
    // The signer loaded the wallet under this alias once (signer/hotWalletKeys.ts pins it).
    await ctx.db.pool.query(
      "INSERT INTO custody.hot_wallet_keys (chain_id, key_id, address) VALUES (31337, $1, $2)",
      [alias, hot.address.toLowerCase()],
    );
    const other = (
      await kms.send(new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }))
    ).KeyMetadata!.KeyId!;
    await kms.send(new UpdateAliasCommand({ AliasName: alias, TargetKeyId: other }));
    const moved = await createKmsAccount({ kms, keyId: other });
    const before = await storedDeploys("none");

    const run = spawnCli(["contracts", "deploy", "--chain", "local", "--key", alias], env);
    expect((await run.exited).code, run.output()).not.toBe(0);
    expect(run.output()).toContain(
      `KMS key ${alias} is now the account ${moved.address.toLowerCase()}, not the hot wallet ${hot.address.toLowerCase()} it was on chain 31337: its alias points at another key`,
    );
    expect(await storedDeploys("none")).toEqual(before);
    expect(
      await publicClient.getTransactionCount({ address: moved.address, blockTag: "pending" }),
    ).toBe(0);
    const { rows } = await ctx.db.pool.query(
      "SELECT address FROM custody.hot_wallet_keys WHERE chain_id = 31337 AND key_id = $1",
      [alias],
    );
    expect(rows).toEqual([{ address: hot.address.toLowerCase() }]);
  });

  it("refused when the configured hotWallets[].address is not the address the key signs for (SIGNER_HOT_WALLET_ADDRESS_MISMATCH), as the signer refuses it; nothing pinned, signed, stored or sent", async () => {
    // old code: "deployed ForwarderFactory 0xc30E… on local (hot wallet 0xb95a…, tx 0xd344…):
    // expected +0 not to be +0": the CLI deployed from the key's own address (funded here), which
    // the api takes no withdrawal for, and recorded the factory as that address's; the signer
    // role refuses the same config.
    const key = (
      await kms.send(new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }))
    ).KeyMetadata!.KeyId!;
    const signsFor = await createKmsAccount({ kms, keyId: key });
    await publicClient.request({
      method: "anvil_setBalance" as never,
      params: [signsFor.address, `0x${parseEther("10").toString(16)}`] as never,
    });
    // The config names the hot wallet's address (the api pays from it) with another key.
    const config = JSON.parse(readFileSync(configFile, "utf8"));
    const mismatched = path.join(
      tmpdir(),
      `deploy-config-mismatch-${process.pid}-${Date.now()}.json`,
    );
    writeFileSync(
      mismatched,
      JSON.stringify({
        ...config,
        hotWallets: [{ chain: "local", kmsKeyId: key, address: hot.address }],
      }),
    );
    const contracts = await ctx.db.pool.query("SELECT count(*)::int AS n FROM chain.contracts");
    const fromKey = () =>
      ctx.db.pool
        .query("SELECT 1 FROM custody.hot_wallet_deploys WHERE from_address = $1", [
          signsFor.address.toLowerCase(),
        ])
        .then((r) => r.rowCount);
    for (const command of ["contracts", "por"]) {
      const run = spawnCli([command, "deploy", "--chain", "local"], {
        ...env,
        CUSTODY_CONFIG: mismatched,
      });
      expect((await exitWhileMining(run)).code, run.output()).not.toBe(0);
      expect(run.output()).toContain(
        `KMS key ${key} signs for ${signsFor.address}, not the configured hot wallet ${hot.address}`,
      );
    }
    expect(await fromKey()).toBe(0);
    expect(
      await publicClient.getTransactionCount({ address: signsFor.address, blockTag: "pending" }),
    ).toBe(0);
    expect(
      (await ctx.db.pool.query("SELECT count(*)::int AS n FROM chain.contracts")).rows,
    ).toEqual(contracts.rows);
    // Nothing pinned for a key the config does not match.
    const { rows } = await ctx.db.pool.query(
      "SELECT address FROM custody.hot_wallet_keys WHERE chain_id = 31337 AND key_id = $1",
      [key],
    );
    expect(rows).toEqual([]);
  });

  it("a deploy killed after sending, before recording: the re-run follows that transaction (one contract, its gas booked once); a stored deploy whose nonce another transaction used is signed anew only once that is final", async () => {
    // 1. Killed after storing its signed bytes; the wallet's nonce is then used by another
    // transaction (the key used outside custody: a signer started instead of the deploy's re-run
    // gives that nonce to no request and sends the stored bytes, signer/nonceGap test).
    const first = await nonce();
    const killedUnsent = spawnDeploy("contracts", "deploy_after_commit:1");
    expect((await killedUnsent.exited).signal, killedUnsent.output()).toBe("SIGKILL");
    const wallet = createWalletClient({
      account: hot,
      chain: foundry,
      transport: http(ctx.anvils[0]!.rpcUrl),
    });
    await publicClient.waitForTransactionReceipt({
      hash: await wallet.sendTransaction({ to: hot.address, value: 0n, nonce: first }),
    });
    // Its nonce is used, but not at a final block: nothing new is signed yet.
    const early = spawnCli(["contracts", "deploy", "--chain", "local"], env);
    expect((await early.exited).code, early.output()).not.toBe(0);
    expect(early.output()).toContain("its nonce is used but not yet at a final block");
    expect(await nonce()).toBe(first + 1);
    await publicClient.request({ method: "anvil_mine" as never, params: ["0x50"] as never });

    // 2. At a final block the stored deploy can never mine: a new one is signed, sent, and the
    // process is killed before recording it.
    const before = await nonce();
    const expected = getContractAddress({ from: hot.address, nonce: BigInt(before) });
    const crashed = spawnDeploy("contracts", "deploy_after_send:1");
    expect((await crashed.exited).signal, crashed.output()).toBe("SIGKILL");
    // The deploy is out (anvil mines it at once) and nothing of it is recorded.
    expect(await publicClient.getCode({ address: expected })).toBeDefined();
    expect(await nonce()).toBe(before + 1);
    expect((await ctx.db.pool.query("SELECT 1 FROM chain.contracts")).rowCount).toBe(0);

    // 3. The re-run follows it.
    const rerun = spawnCli(["contracts", "deploy", "--chain", "local"], env);
    expect((await exitWhileMining(rerun)).code, rerun.output()).toBe(0);
    expect(rerun.output()).toContain(`deployed ForwarderFactory ${expected}`);
    // No second contract: the wallet sent one transaction, and its gas is booked once.
    expect(await nonce()).toBe(before + 1);
    const { rows } = await ctx.db.pool.query(
      "SELECT address, deploy_tx_hash FROM chain.contracts WHERE name = 'ForwarderFactory'",
    );
    expect(rows).toEqual([{ address: expected.toLowerCase(), deploy_tx_hash: expect.any(String) }]);
    const receipt = await publicClient.getTransactionReceipt({ hash: rows[0].deploy_tx_hash });
    expect(await gasBooked()).toEqual([
      {
        tx_hash: rows[0].deploy_tx_hash,
        amount: receipt.gasUsed * receipt.effectiveGasPrice,
      },
    ]);
    const stored = await ctx.db.pool.query(
      "SELECT nonce::int, tx_hash, status FROM custody.hot_wallet_deploys WHERE name = 'ForwarderFactory' ORDER BY id",
    );
    expect(stored.rows).toEqual([
      { nonce: first, tx_hash: expect.any(String), status: "dropped" },
      { nonce: before, tx_hash: rows[0].deploy_tx_hash, status: "broadcast" },
    ]);
  });

  it("a deploy killed after storing its signed bytes, before sending: the re-run sends those bytes, and sends them again when a reorg takes them out before their block is final", async () => {
    const before = await nonce();
    const crashed = spawnDeploy("por", "deploy_after_commit:1");
    expect((await crashed.exited).signal, crashed.output()).toBe("SIGKILL");
    expect(await nonce()).toBe(before);
    const stored = await ctx.db.pool.query(
      "SELECT name, nonce::int, tx_hash, contract_address, status FROM custody.hot_wallet_deploys WHERE name = 'ReservesAttestor'",
    );
    const expected = getContractAddress({ from: hot.address, nonce: BigInt(before) });
    expect(stored.rows).toEqual([
      {
        name: "ReservesAttestor",
        nonce: before,
        tx_hash: expect.stringMatching(/^0x[0-9a-f]{64}$/),
        contract_address: expected.toLowerCase(),
        status: "signed",
      },
    ]);
    const hash = stored.rows[0].tx_hash as Hex;

    // The re-run sends the stored bytes (anvil mines them at once) and waits for finality (8
    // blocks): no block comes until the test mines, so the deploy's block is taken out first.
    const rerun = spawnCli(["por", "deploy", "--chain", "local"], env);
    const mined = await waitFor("the stored deploy mined", () =>
      publicClient.getTransactionReceipt({ hash }).catch(() => undefined),
    );
    await publicClient.request({ method: "anvil_reorg" as never, params: [1, []] as never });
    expect(await publicClient.getCode({ address: expected })).toBeUndefined();

    expect((await exitWhileMining(rerun)).code, rerun.output()).toBe(0);
    expect(rerun.output()).toContain(`deployed ReservesAttestor ${expected}`);
    expect(await nonce()).toBe(before + 1);
    expect(await publicClient.getCode({ address: expected })).toBeDefined();
    const again = await publicClient.getTransactionReceipt({ hash });
    expect(again.blockNumber).toBeGreaterThan(mined.blockNumber);
    const recorded = await ctx.db.pool.query(
      "SELECT deploy_tx_hash, block_number::text FROM chain.contracts WHERE name = 'ReservesAttestor'",
    );
    expect(recorded.rows).toEqual([
      { deploy_tx_hash: hash, block_number: String(again.blockNumber) },
    ]);
    expect((await gasBooked()).filter((g) => g.tx_hash === hash)).toEqual([
      { tx_hash: hash, amount: again.gasUsed * again.effectiveGasPrice },
    ]);
  });

  it("keeps the recorded factory, and its sweeps are KMS-signed", async () => {
    const { rows } = await ctx.db.pool.query(
      "SELECT chain_id::int, name, address, hot_wallet FROM chain.contracts WHERE name = 'ForwarderFactory'",
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
    expect((await gasBooked()).length).toBe(2);
    expect(second.output()).toContain(`already deployed: ForwarderFactory ${factory}`);
    const count = await ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM chain.contracts WHERE name = 'ForwarderFactory'",
    );
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

  it("a receipt without status is not a revert: the deploy waits for a whole one, then records the contract", async () => {
    const proxy = await startRpcProxy(ctx.anvils[0]!.rpcUrl);
    const viaProxy = createPublicClient({
      cacheTime: 0,
      chain: foundry,
      transport: http(proxy.url),
    });
    let stripped = 0;
    let headRead = 0n;
    proxy.setRewrite((call, result) => {
      if (call.method === "eth_blockNumber") {
        if (BigInt(result as Hex) > headRead) headRead = BigInt(result as Hex);
        return result;
      }
      if (call.method !== "eth_getTransactionReceipt" || result === null) return result;
      stripped++;
      const { status: _dropped, ...rest } = result as Record<string, unknown>;
      return rest;
    });
    const { send, release } = deploySenderVia(viaProxy as PublicClient, proxy.url);
    try {
      const before = await nonce();
      let settled = false;
      const deployed = send({ name: "NoStatus", data: "0x00" }).finally(() => {
        settled = true;
      });
      // Mined, then final (8 blocks), and its receipt read without status many times after that.
      await waitFor("the deploy mined", async () => {
        await publicClient.request({ method: "evm_mine" as never, params: [] as never });
        return (await nonce()) > before;
      });
      const head = async () =>
        BigInt(
          await publicClient.request({ method: "eth_blockNumber" as never, params: [] as never }),
        );
      const minedBy = await head();
      for (let i = 0; i < 12; i++)
        await publicClient.request({ method: "evm_mine" as never, params: [] as never });
      // The deploy's sender has read that head (its block final there), and the receipt read
      // without status again after that.
      const minedTo = await head();
      await waitFor("the deploy's sender to read the head its block is final at", async () =>
        headRead >= minedTo ? true : undefined,
      );
      const strippedAtFinal = stripped;
      await waitFor("receipts without status read after the deploy's block is final", async () => {
        // Ended meanwhile (read as reverted, a second contract next run): fail with its answer.
        if (settled) expect(await deployed.catch((e: Error) => e.message)).toBe("still waiting");
        return stripped >= strippedAtFinal + 10 ? true : undefined;
      });
      expect(await head()).toBeGreaterThan(minedBy + 8n);
      expect(settled).toBe(false);
      proxy.setRewrite(undefined);
      const done = await whileMining(deployed);
      expect(done.address).toBe(getContractAddress({ from: hot.address, nonce: BigInt(before) }));
      const { rows } = await ctx.db.pool.query(
        "SELECT status FROM custody.hot_wallet_deploys WHERE name = 'NoStatus'",
      );
      expect(rows).toEqual([{ status: "broadcast" }]);
    } finally {
      proxy.setRewrite(undefined);
      await release();
      await proxy.close();
    }
  });

  it("a deploy that reverted at a final block holds no later run: it is marked reverted and the next run signs a new one", async () => {
    const { send, release } = deploySenderVia(publicClient as PublicClient);
    const stored = async () =>
      (
        await ctx.db.pool.query(
          "SELECT nonce::int, status FROM custody.hot_wallet_deploys WHERE name = 'Empty' ORDER BY id",
        )
      ).rows;
    const before = await nonce();
    const emptyInitCode = "0x00"; // STOP: a contract without code

    // Something is at the contract's address before the deploy mines: the creation reverts.
    const { outcome } = await deployWillRevert(publicClient as PublicClient, hot.address, () =>
      send({ name: "Empty", data: emptyInitCode }),
    );
    await publicClient.request({ method: "evm_setAutomine" as never, params: [true] as never });
    const failed = await whileMining(outcome);
    await release();
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toContain("reverted");
    expect(await stored()).toEqual([{ nonce: before, status: "reverted" }]);

    // The next run is not held by it: a new deploy at the next nonce creates the contract.
    const second = await whileMining(send({ name: "Empty", data: emptyInitCode }));
    await release();
    expect(second.address).toBe(
      getContractAddress({ from: hot.address, nonce: BigInt(before + 1) }),
    );
    expect(await stored()).toEqual([
      { nonce: before, status: "reverted" },
      { nonce: before + 1, status: "broadcast" },
    ]);
  });

  it("a head from nowhere finalizes nothing: a deploy 1 block deep is not recorded, and one that reverted is not ended as reverted, until its block is final", async () => {
    // Succeeded, 1 block deep (anvil mines it at once).
    const ok = await headFromNowhereOnce();
    const okSender = deploySenderVia(ok.client, ok.proxy.url);
    try {
      const before = await nonce();
      let settled = false;
      const deployed = okSender.send({ name: "Shallow", data: TINY_CONTRACT.init }).finally(() => {
        settled = true;
      });
      await waitFor("the lie told", async () => ok.lied());
      const asked = ok.proxy.calls("eth_getTransactionReceipt");
      // Ended meanwhile (recorded or marked reverted at 1 block deep): fail with its answer.
      await waitFor(
        "more polls",
        async () => settled || ok.proxy.calls("eth_getTransactionReceipt") > asked + 10,
      );
      if (settled) expect(await deployed.catch((e: Error) => e.message)).toBe("still waiting");
      expect(await nonce()).toBe(before + 1);
      const done = await whileMining(deployed);
      expect(done.address).toBe(getContractAddress({ from: hot.address, nonce: BigInt(before) }));
    } finally {
      await okSender.release();
      await ok.proxy.close();
    }

    // Reverted (something already at the contract's address), 1 block deep.
    const bad = await headFromNowhereOnce();
    const badSender = deploySenderVia(bad.client, bad.proxy.url);
    const status = async () =>
      (
        await ctx.db.pool.query(
          "SELECT status FROM custody.hot_wallet_deploys WHERE name = 'ShallowRevert'",
        )
      ).rows;
    try {
      let settled = false;
      const { outcome: first } = await deployWillRevert(
        publicClient as PublicClient,
        hot.address,
        () =>
          badSender.send({ name: "ShallowRevert", data: "0x00" }).finally(() => {
            settled = true;
          }),
      );
      await publicClient.request({ method: "evm_mine" as never, params: [] as never });
      await publicClient.request({ method: "evm_setAutomine" as never, params: [true] as never });
      await waitFor("the lie told", async () => bad.lied());
      const asked = bad.proxy.calls("eth_getTransactionReceipt");
      // Ended meanwhile (recorded or marked reverted at 1 block deep): fail with its answer.
      await waitFor(
        "more polls",
        async () => settled || bad.proxy.calls("eth_getTransactionReceipt") > asked + 10,
      );
      if (settled) expect(String(await first)).toBe("still waiting");
      expect(await status()).toEqual([{ status: "broadcast" }]);
      const failed = await whileMining(first);
      expect(failed).toBeInstanceOf(Error);
      expect((failed as Error).message).toContain("reverted");
      expect(await status()).toEqual([{ status: "reverted" }]);
    } finally {
      await publicClient.request({ method: "evm_setAutomine" as never, params: [true] as never });
      await badSender.release();
      await bad.proxy.close();
    }
  });
});
