/**
 * A halt opened while new bytes are being signed (docs/chain-halts.md): the halt was read before
 * the KMS signature (the broadcaster's tick, the deploy command's start), and KMS took long enough
 * for the indexer to open one meanwhile. Nothing new leaves the hot wallet: the bytes are stored,
 * no node receives them while the halt is open, and they are sent once an operator resumes the
 * chain. A slow KMS is the KMS emulator behind a proxy holding one Sign call; what the node
 * receives is counted by a proxy in front of anvil; the halt is opened and closed with the
 * indexer's own functions.
 */
import {
  createPublicClient,
  getContractAddress,
  type Hex,
  http,
  type PublicClient,
  parseEther,
  parseTransaction,
} from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FORWARDER_FACTORY, getContract } from "../indexers/index.js";
import { estimateFees } from "./fees.js";
import { createKmsClient, type KmsAccount } from "./kmsAccount.js";
import { getTxRequest } from "./requests.js";
import { haltChain, heldGauge, resumeChain } from "./testing/chainHalt.js";
import { waitFor } from "./testing/harness.js";
import { deployFactoryStored, readStoredDeploy, whileMining } from "./testing/killedDeploy.js";
import { type KmsProxy, startKmsProxy } from "./testing/kmsProxy.js";
import { moreCalls, type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest, TEST_CHAIN_ID } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
let kmsProxy: KmsProxy;

beforeAll(async () => {
  t = await startSignerTest({
    // Final (the deploy command ends) 4 blocks deep.
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 4 } },
    proxy: startRpcProxy,
  });
  kmsProxy = await startKmsProxy(t.kmsUrl);
});

afterAll(async () => {
  await kmsProxy?.close();
  await t?.stop();
});

const halt = () => haltChain(t.ctx.db.pool, TEST_CHAIN_ID);
const resume = () => resumeChain(t.ctx.db.pool, TEST_CHAIN_ID);

/** Sends the node received (through the proxy). */
const sends = () => t.proxy!.calls("eth_sendRawTransaction");

/** The wallet's transactions the node has, mined or pooled (anvil, not through the proxy). */
const sentBy = (a: KmsAccount) =>
  t.client.getTransactionCount({ address: a.address, blockTag: "pending" });

/** A funded wallet whose KMS calls go through the proxy. */
async function slowKmsWallet(): Promise<{ account: KmsAccount; close: () => void }> {
  const kms = createKmsClient({ region: "us-east-1", endpoint: kmsProxy.url });
  const account = await t.wallet(parseEther("10"), kms);
  return { account, close: () => kms.destroy() };
}

/** Let `n` more rounds pass, each asking the node `method` once (a tick's head, a pass's receipt). */
const rounds = (method: string, n: number) => moreCalls(t.proxy!, method, n);

const heldNow = (wallet: string) => heldGauge(t.ctx.common.metrics.registry, wallet);

describe("a halt opened while new bytes are signed", () => {
  it("holds the signer's batch: stored, not sent until the resume, then sent once", async () => {
    const wallet = await slowKmsWallet();
    const { account } = wallet;
    const id = "halt-while-signing";
    const sign = kmsProxy.holdNext("Sign");
    const signer = t.run(account);
    let haltOpen = false;
    try {
      const before = sends();
      await t.withdraw(id, { from: account.address });
      // The tick read no halt; intake estimated gas and fees and is now waiting on KMS.
      await sign.reached;
      await halt();
      haltOpen = true;
      sign.release();
      await waitFor("the signed bytes stored", async () => {
        const r = await getTxRequest(t.ctx.db.pool, id);
        return r?.status !== "pending";
      });
      // The negative over a bounded window: 10 more ticks, none of which may send.
      await rounds("eth_blockNumber", 10);
      expect(await sentBy(account)).toBe(0);
      expect(sends()).toBe(before);
      const held = (await getTxRequest(t.ctx.db.pool, id))!;
      expect(held.status).toBe("signed");
      expect(held.nonce).toBe(0n);
      expect(await heldNow(account.address)).toBe(1);

      await resume();
      haltOpen = false;
      const sent = await waitFor(
        `${id} confirmed`,
        async () => {
          const r = await getTxRequest(t.ctx.db.pool, id);
          return r?.status === "confirmed" ? r : undefined;
        },
        { timeoutMs: 20_000 },
      );
      // The bytes stored while halted, once: no second signature at another nonce.
      expect(sent.nonce).toBe(0n);
      expect(sent.txHash).toBe(held.txHash);
      expect(await sentBy(account)).toBe(1);
    } finally {
      sign.release();
      await signer.stop();
      if (haltOpen) await resume();
      wallet.close();
    }
  });

  it("holds a new deploy's first send: stored, sent once resumed, the factory recorded", async () => {
    const wallet = await slowKmsWallet();
    const { account } = wallet;
    const first = await t.client.getTransactionCount({ address: account.address });
    // The command's reads and sends go through the counting proxy.
    const site = {
      ...t,
      client: createPublicClient({
        cacheTime: 0,
        transport: http(t.chain.rpcUrls[0]),
      }) as PublicClient,
    };
    const sign = kmsProxy.holdNext("Sign");
    let haltOpen = false;
    try {
      const before = sends();
      const run = deployFactoryStored(site, account);
      run.catch(() => {}); // awaited below; a failure before then must not go unhandled
      // The command checked for a halt at its start and is now waiting on KMS for the deploy.
      await sign.reached;
      await halt();
      haltOpen = true;
      sign.release();
      const stored = await waitFor("the deploy's bytes stored", async () =>
        readStoredDeploy(t.ctx.db.pool, account.address, FORWARDER_FACTORY).catch(() => undefined),
      );
      expect(stored).toMatchObject({ nonce: BigInt(first), status: "signed" });
      // The negative over a bounded window: 10 more passes of the follower, none of which may send.
      await rounds("eth_getTransactionReceipt", 10);
      expect(sends()).toBe(before);
      expect(await sentBy(account)).toBe(first);
      expect(
        (await readStoredDeploy(t.ctx.db.pool, account.address, FORWARDER_FACTORY)).status,
      ).toBe("signed");

      await resume();
      haltOpen = false;
      await waitFor("the stored bytes sent after the resume", async () => sends() > before);
      const { contract, deployed } = await whileMining(t.client, run);
      const address = getContractAddress({ from: account.address, nonce: BigInt(first) });
      expect(deployed).toBe(true);
      expect(contract).toMatchObject({ address, deployTxHash: stored.txHash });
      expect(await getContract(t.ctx.db.pool, t.chain.chainId, FORWARDER_FACTORY)).toMatchObject({
        address,
        deployTxHash: stored.txHash,
      });
    } finally {
      sign.release();
      if (haltOpen) await resume();
      wallet.close();
    }
  });
  it("holds a cancel of a request no node took, signed as the halt opened: sent after the resume", async () => {
    const wallet = await slowKmsWallet();
    const { account } = wallet;
    const id = "cancel-while-signing";
    // Every send refused for good: the payment, then each cancel of its nonce (after a backoff).
    t.proxy!.setIntercept((call) =>
      call.method === "eth_sendRawTransaction"
        ? { error: { code: -32000, message: "intrinsic gas too low" } }
        : undefined,
    );
    const signer = t.run(account, {
      settings: { cancelBackoffMs: 200, maxCancelBackoffMs: 400, maxCancelAttempts: 1_000 },
    });
    const cancels = async () => {
      const { rows } = await t.ctx.db.pool.query<{ status: string }>(
        "SELECT status FROM custody.tx_attempts WHERE request_id = $1 AND purpose = 'cancel' ORDER BY id",
        [id],
      );
      return rows.map((r) => r.status);
    };
    let sign: { reached: Promise<void>; release: () => void } | undefined;
    let haltOpen = false;
    try {
      await t.withdraw(id, { from: account.address });
      await waitFor("a cancel of its nonce refused", async () => (await cancels()).length > 0);
      // The next signature is the next cancel's (after its backoff): the halt opens while KMS
      // holds it, after the tick read no halt; the node would now take it.
      sign = kmsProxy.holdNext("Sign");
      await sign.reached;
      await halt();
      haltOpen = true;
      t.proxy!.setIntercept(undefined);
      const before = sends();
      const refused = (await cancels()).length;
      sign.release();
      await waitFor("the cancel stored", async () => (await cancels()).length > refused);
      // The negative over a bounded window: 10 more ticks, none of which may send.
      await rounds("eth_blockNumber", 10);
      expect(sends()).toBe(before);
      expect(await sentBy(account)).toBe(0);
      expect((await cancels()).slice(refused)).toEqual(["signed"]);
      expect((await getTxRequest(t.ctx.db.pool, id))!.status).toBe("signed");

      await resume();
      haltOpen = false;
      await waitFor("the stored cancel mined", async () => (await cancels()).includes("mined"), {
        timeoutMs: 20_000,
      });
      // That stored cancel, once: no other signed after the resume.
      expect((await cancels()).slice(refused)).toEqual(["mined"]);
      expect(await sentBy(account)).toBe(1);
    } finally {
      sign?.release();
      t.proxy!.setIntercept(undefined);
      await signer.stop();
      if (haltOpen) await resume();
      wallet.close();
    }
  });

  it("holds the capped resend of a request no node took, in the bump pass whose signature outlived the tick's read", async () => {
    const wallet = await slowKmsWallet();
    const { account } = wallet;
    // Nothing mines: nonce 0 stays in the pool (taken, bumped each interval).
    await t.rpc("evm_setAutomine", [false]);
    // A cap twice the market: nonce 1, refused as underpriced and replaced each pass, reaches it
    // in a few passes; nonce 0, replaced once a second, is still under it.
    const market = await estimateFees(t.client, { ...t.chain, maxFeePerGas: 10n ** 30n });
    if (market.type !== "eip1559") throw new Error("the test chain prices in eip1559");
    const cap = market.maxFeePerGas * 2n;
    // The node takes nonce 0 and refuses nonce 1 as underpriced; what it is sent at nonce 1 once
    // the halt is open is counted.
    let haltOpen = false;
    let sentWhileHalted = 0;
    t.proxy!.setIntercept((call) => {
      if (call.method !== "eth_sendRawTransaction") return undefined;
      if (parseTransaction((call.params as Hex[])[0]!).nonce !== 1) return undefined;
      if (haltOpen) sentWhileHalted++;
      return { error: { code: -32000, message: "transaction underpriced" } };
    });
    const signer = t.run(account, {
      chain: { ...t.chain, maxFeePerGas: cap, bumpIntervalMs: 1_000 },
    });
    const byNonce = async (nonce: bigint) => {
      const { rows } = await t.ctx.db.pool.query<{ id: string }>(
        "SELECT id FROM custody.tx_requests WHERE from_address = $1 AND nonce = $2",
        [account.address.toLowerCase(), nonce.toString()],
      );
      return rows[0] ? getTxRequest(t.ctx.db.pool, rows[0].id) : undefined;
    };
    let sign: { reached: Promise<void>; release: () => void } | undefined;
    try {
      await t.withdraw(["capped-taken", "capped-refused"], { from: account.address });
      // Nonce 1 at the cap: no replacement of it fits under it, its bytes are resent as is.
      await waitFor("nonce 0 taken, nonce 1 at the cap", async () => {
        const taken = await byNonce(0n);
        const { rows } = await t.ctx.db.pool.query(
          `SELECT 1 FROM custody.tx_requests
            WHERE from_address = $1 AND nonce = 1 AND fee_capped_at IS NOT NULL`,
          [account.address.toLowerCase()],
        );
        return taken?.status === "broadcast" && rows.length > 0;
      });
      // The next signature is nonce 0's bump: the halt opens while KMS holds it, after the pass
      // read it (nonce 1 is resent unchanged after that signature, in the same pass).
      sign = kmsProxy.holdNext("Sign");
      await sign.reached;
      await halt();
      haltOpen = true;
      sign.release();
      // The negative over a bounded window: 10 more ticks, none of which may send nonce 1.
      await rounds("eth_blockNumber", 10);
      expect(sentWhileHalted).toBe(0);
      expect((await byNonce(1n))!.status).toBe("signed");

      await resume();
      haltOpen = false;
      t.proxy!.setIntercept(undefined);
      await waitFor(
        "both confirmed",
        async () => {
          await t.rpc("evm_mine", []);
          return (await byNonce(1n))?.status === "confirmed";
        },
        { timeoutMs: 20_000 },
      );
      expect(await sentBy(account)).toBe(2);
    } finally {
      sign?.release();
      t.proxy!.setIntercept(undefined);
      await t.rpc("evm_setAutomine", [true]);
      await signer.stop();
      if (haltOpen) await resume();
      wallet.close();
    }
  });
});
