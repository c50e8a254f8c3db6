/**
 * The deploy command's follower (signer/storedDeploy.ts) when the chain halts while it runs
 * (docs/chain-halts.md): nothing new leaves the hot wallet. Its stored bytes no node has taken yet
 * (every send so far refused: priced out, the fee cap leaving no room for a replacement) are not
 * sent while the halt is open, though the node would now take them; the follower keeps following
 * and, once an operator resumes the chain, sends them and the contract is recorded. Real anvil
 * (behind a counting proxy: what the node receives), Postgres and the KMS emulator; the halt is
 * opened and closed with the indexer's own functions.
 */
import {
  createPublicClient,
  getContractAddress,
  http,
  type PublicClient,
  parseTransaction,
} from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FORWARDER_FACTORY, getContract } from "../indexers/index.js";
import { capturedLogger } from "../ops/testing/logs.js";
import { haltChain, resumeChain } from "./testing/chainHalt.js";
import { waitFor } from "./testing/harness.js";
import {
  deployFactoryStored,
  priceOut,
  readStoredDeploy,
  restoreBaseFee,
  whileMining,
} from "./testing/killedDeploy.js";
import { moreCalls, type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest, TEST_CHAIN_ID } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;

beforeAll(async () => {
  t = await startSignerTest({
    // Final (the deploy's follower ends) 4 blocks deep.
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 4 } },
    proxy: startRpcProxy,
  });
});

afterAll(async () => {
  await t?.stop();
});

const halt = () => haltChain(t.ctx.db.pool, TEST_CHAIN_ID);
const resume = () => resumeChain(t.ctx.db.pool, TEST_CHAIN_ID);

const sends = () => t.proxy!.calls("eth_sendRawTransaction");

/** Let the follower run at least `n` more passes (each asks the node for the deploy's receipt). */
const passes = (n: number) => moreCalls(t.proxy!, "eth_getTransactionReceipt", n);

describe("the deploy command following bytes no node has taken when the chain halts", () => {
  it("sends nothing while the halt is open, keeps following, and sends them once resumed: the factory recorded", async () => {
    const account = await t.wallet();
    const first = await t.client.getTransactionCount({ address: account.address });
    // The command (its reads and sends through the proxy) and its log lines, which the test reads.
    const site = {
      ...t,
      client: createPublicClient({
        cacheTime: 0,
        transport: http(t.chain.rpcUrls[0]),
      }) as PublicClient,
    };
    const { logger, lines } = capturedLogger();
    const common = { ...t.ctx.common, logger };
    const logLines = (msg: string) =>
      lines.filter((l) => typeof l.msg === "string" && l.msg.startsWith(msg));

    await expect(
      deployFactoryStored(site, account, { killAt: "deploy_after_commit" }),
    ).rejects.toThrow("killed at deploy_after_commit");
    const stored = await readStoredDeploy(t.ctx.db.pool, account.address, FORWARDER_FACTORY);
    expect(stored).toMatchObject({ nonce: BigInt(first), status: "signed" });
    const oldFee = await priceOut(t.client, t.chain, stored.rawTx);
    // The cap at the stored bytes' own fee: no replacement fits, the node refuses them each pass.
    const capped = { ...t.chain, maxFeePerGas: parseTransaction(stored.rawTx).maxFeePerGas! };
    let haltOpen = false;
    try {
      const run = deployFactoryStored(site, account, { chain: capped, common });
      run.catch(() => {}); // awaited below; a failure before then must not go unhandled
      const before = sends();
      await waitFor("the stored bytes refused twice", async () => sends() >= before + 2);
      expect(
        await t.client.getTransactionCount({ address: account.address, blockTag: "pending" }),
      ).toBe(first);

      await halt();
      haltOpen = true;
      // A pass under way when the halt opened may still send (refused still); the later ones read it.
      await passes(3);
      const atHalt = sends();
      // Now the node would take the bytes: only the halt may keep them from it.
      await restoreBaseFee(t.client, oldFee);
      // The negative shown over a bounded window: 10 more passes of the follower (~1 s at its
      // 100 ms poll), none of which may send.
      await passes(10);
      expect(sends()).toBe(atHalt);
      expect(
        await t.client.getTransactionCount({ address: account.address, blockTag: "pending" }),
      ).toBe(first);
      expect(logLines("chain halted")).toHaveLength(1);
      expect(
        (await readStoredDeploy(t.ctx.db.pool, account.address, FORWARDER_FACTORY)).status,
      ).toBe("signed");

      await resume();
      haltOpen = false;
      await waitFor("the stored bytes sent after the resume", async () => sends() > atHalt);
      const { contract, deployed } = await whileMining(t.client, run);
      const address = getContractAddress({ from: account.address, nonce: BigInt(first) });
      expect(deployed).toBe(true);
      // The stored bytes themselves: no replacement was signed, halted or not.
      expect(contract).toMatchObject({ address, deployTxHash: stored.txHash });
      expect(await getContract(t.ctx.db.pool, t.chain.chainId, FORWARDER_FACTORY)).toMatchObject({
        address,
        deployTxHash: stored.txHash,
      });
      expect(logLines("chain resumed")).toHaveLength(1);
    } finally {
      if (haltOpen) await resume();
      await restoreBaseFee(t.client, oldFee);
    }
  });
});
