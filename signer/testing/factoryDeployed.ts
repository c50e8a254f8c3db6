/**
 * The set-up of the tests of where a (re)started signer takes its first nonce from
 * (signer/*NodeNonce*): a signer test (no signer running yet) whose hot wallet's first transaction
 * is its ForwarderFactory deploy, sent outside the signer's requests (as the dev stack's and the
 * tests' deploy is, and as no tx_requests row holds), then 3 more blocks mined; with `indexed`, an
 * indexer (straight to the anvil) has ingested up to there, its tip past the deploy's block.
 * Then what each of those tests does once its nodes are set: start the signer, request a
 * withdrawal, wait for its nonce and mine until it ends; the CLI's deploy sender; and the wallet's
 * stored deploy reverted at a final block (signer/revertedDeploy*). Test-only.
 */
import { type Hex, parseEther } from "viem";
import { expect } from "vitest";
import type { DeploySender } from "../../chains/contracts/sendDeploy.js";
import { createEvmAdapter, createRpcClient, type EvmAdapter } from "../../chains/index.js";
import { createFactsDoorbell, createIngestor, type Ingestor } from "../../indexers/index.js";
import { anvilRpc, syncToHead } from "../../indexers/testing/chain.js";
import { deployForwarderFactory } from "../deposit-addresses/index.js";
import type { Lease } from "../lease.js";
import { getTxRequest } from "../requests.js";
import { storedDeploySender } from "../storedDeploy.js";
import { waitFor } from "./harness.js";
import { deployWillRevert } from "./revertingDeploy.js";
import { type SignerTest, startSignerTest } from "./signerTest.js";

export type FactoryDeployedSignerTest = {
  t: SignerTest;
  /** The anvil's own URL (the chain's first endpoint before a test puts proxies in front of it). */
  anvilUrl: string;
  /** The chain's adapter (straight to the anvil): the deploy's, and an indexer's when a test runs one. */
  adapter: EvmAdapter;
  /** With `indexed`: the indexer, synced to the head (stop it before `t`). */
  ingestor: Ingestor | undefined;
};

export async function startFactoryDeployedSignerTest({
  indexed = false,
}: {
  indexed?: boolean;
} = {}): Promise<FactoryDeployedSignerTest> {
  const t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 64 } },
  });
  let ingestor: Ingestor | undefined;
  try {
    const anvilUrl = t.ctx.config.chains[0]!.rpcUrls[0]!;
    const adapter = createEvmAdapter(t.chain, { common: t.ctx.common });
    await deployForwarderFactory({
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      chain: t.chain,
      client: adapter.client,
      account: t.account,
      sendRawTransaction: adapter.sendRawTransaction,
    });
    await t.rpc("anvil_mine", ["0x3"]);
    if (!indexed) return { t, anvilUrl, adapter, ingestor: undefined };
    ingestor = await createIngestor({
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      adapter,
      doorbell: createFactsDoorbell(t.ctx.queues),
      options: { batchBlocks: 8 },
    });
    await syncToHead(ingestor, t.ctx.db.pool, anvilRpc(anvilUrl), t.chain.chainId);
    return { t, anvilUrl, adapter, ingestor };
  } catch (error) {
    await ingestor?.stop();
    await t.stop();
    throw error;
  }
}

/** Starts the signer (as `t.signer`) and requests withdrawal `id`: 1 ETH to `to`. */
export async function startSignerAndWithdraw(t: SignerTest, id: string, to: Hex): Promise<void> {
  t.signer = t.run();
  await t.withdraw(id, { to, value: parseEther("1") });
}

/** Waits until request `id` holds a nonce: that nonce. */
export async function signedNonce(t: SignerTest, id: string): Promise<bigint> {
  const signed = await waitFor("signed", async () => {
    const r = await getTxRequest(t.ctx.db.pool, id);
    return r?.nonce != null ? r : undefined;
  });
  return signed.nonce!;
}

/**
 * Mines a block every 200 ms until request `id` ends (confirmed, needs_review or failed): its
 * status then (anvil mines only on a transaction: the blocks confirmations wait for come from here).
 */
export async function minedStatus(t: SignerTest, id: string): Promise<string> {
  const done = await waitFor(
    "confirmed",
    async () => {
      await t.rpc("evm_mine");
      const r = (await getTxRequest(t.ctx.db.pool, id))!;
      return ["confirmed", "needs_review", "failed"].includes(r.status) ? r : undefined;
    },
    { everyMs: 200 },
  );
  return done.status;
}

/**
 * The CLI's deploy sender (storedDeploySender) for `t`'s wallet, through the anvil at `anvilUrl`;
 * `onLease` gets the wallet's lease once taken (the caller releases it).
 */
export function cliDeploySender(
  t: SignerTest,
  anvilUrl: string,
  onLease: (lease: Lease) => void,
): DeploySender {
  return storedDeploySender({
    common: t.ctx.common,
    databaseUrl: t.ctx.db.url,
    chain: t.chain,
    client: t.client,
    rpc: createRpcClient({ chainId: t.chain.chainId, urls: [anvilUrl] }),
    account: t.account,
    sendRawTransaction: (raw) => t.client.sendRawTransaction({ serializedTransaction: raw }),
    getFinalizedBlock: async () => null,
    onLease,
    pollMs: 50,
  });
}

/**
 * The wallet's next transaction: the CLI's stored deploy (through the anvil at `anvilUrl`), reverted
 * when it mined (deployWillRevert), followed until final with automine back on, its lease released.
 * Checks it ended `reverted`; returns its nonce, its block and the wallet's deploy rows.
 */
export async function storedDeployRevertedToFinal(
  t: SignerTest,
  anvilUrl: string,
): Promise<{
  nonce: number;
  block: bigint;
  deploys: { nonce: number; tx_hash: Hex; status: string }[];
}> {
  let lease: Lease | undefined;
  const send = cliDeploySender(t, anvilUrl, (l) => {
    lease = l;
  });
  let ended = false;
  const reverting = await deployWillRevert(t.client, t.account.address, () =>
    send({ name: "Reverting", data: "0x00" }).finally(() => {
      ended = true;
    }),
  );
  await t.rpc("evm_setAutomine", [true]);
  await waitFor("the deploy followed to final", async () => {
    await t.rpc("evm_mine");
    return ended;
  });
  await lease?.release();
  expect(String(await reverting.outcome)).toContain("reverted");
  const { rows } = await t.ctx.db.pool.query<{ nonce: number; tx_hash: Hex; status: string }>(
    "SELECT nonce::int, tx_hash, status FROM custody.hot_wallet_deploys",
  );
  expect(rows).toMatchObject([{ status: "reverted" }]);
  const block = (await t.client.getTransactionReceipt({ hash: rows[0]!.tx_hash })).blockNumber;
  return { nonce: reverting.nonce, block, deploys: rows };
}
