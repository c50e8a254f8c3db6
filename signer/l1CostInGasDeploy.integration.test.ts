/**
 * A stored CLI deploy (signer/storedDeploy.ts) on a chain whose gas carries the L1 cost
 * (`l1CostInGas`, Arbitrum): its gas limit was estimated at the L1 price of its signing, and once
 * the price has risen a node refuses its bytes "intrinsic gas too low" for as long as it stays up.
 * The deploy holds the hot wallet's lowest unused nonce, so every later withdrawal waited behind it
 * (the gap stage sent the same bytes, refused, and raised `nonce_gap`), and the deploy command
 * itself failed, then resent the same refused bytes for ever. Now both re-sign the creation at its
 * nonce with a fresh estimate (replaceStoredDeploy's `regas`), keeping the hash it replaced.
 * Simulated by a proxy in front of anvil that adds the current `l1Gas` to every gas estimate and
 * refuses a contract creation whose limit is below anvil's own estimate + `l1Gas`.
 */
import {
  createPublicClient,
  getContractAddress,
  type Hex,
  http,
  type PublicClient,
  parseEther,
  parseTransaction,
  recoverTransactionAddress,
  toHex,
} from "viem";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FORWARDER_FACTORY, getContract } from "../indexers/index.js";
import { gasLimitFor } from "./gas.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import {
  type DeploySite,
  deployFactoryStored,
  readStoredDeploy,
  storeKilledDeploy,
  TINY_CONTRACT,
  whileMining,
} from "./testing/killedDeploy.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
let proxy: RpcProxy;
/** The deploy command's site: the context, and the chain and a client through the proxy. */
let site: DeploySite;
/** The L1 cost of a transaction, in gas, now. */
let l1Gas = 0n;
/** The gas limits of the creations the proxy refused. */
let refusedLimits: bigint[] = [];
/** Whether the estimates the proxy answers carry the price (false: a node that does not see it). */
let estimatesCarryL1 = true;
/** Called as a creation's bytes reach the proxy, before it checks them (may move the price). */
let beforeCreation: ((gas: bigint) => void) | undefined;

beforeAll(async () => {
  t = await startSignerTest({
    chain: {
      config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 4, l1CostInGas: true },
    },
    proxy: startRpcProxy,
  });
  proxy = t.proxy!;
  const client = createPublicClient({ cacheTime: 0, transport: http(proxy.url) }) as PublicClient;
  site = { ctx: t.ctx, chain: t.chain, client };
  // Every estimate carries the L1 cost at the price of the moment.
  proxy.setRewrite((call, result) =>
    call.method === "eth_estimateGas" && estimatesCarryL1
      ? toHex(BigInt(result as Hex) + l1Gas)
      : result,
  );
  // A creation whose limit no longer covers its gas at the L1 price of the moment is refused.
  proxy.setIntercept(async (call) => {
    if (call.method !== "eth_sendRawTransaction") return undefined;
    const raw = (call.params as Hex[])[0]!;
    const tx = parseTransaction(raw);
    if (tx.to) return undefined;
    beforeCreation?.(tx.gas!);
    const from = await recoverTransactionAddress({ serializedTransaction: raw as never });
    const needed =
      (await t.client.estimateGas({ account: from, data: tx.data!, value: tx.value ?? 0n })) +
      l1Gas;
    if (tx.gas! >= needed) return undefined;
    refusedLimits.push(tx.gas!);
    return {
      error: {
        code: -32000,
        message: `intrinsic gas too low: gas ${tx.gas}, minimum needed ${needed}`,
      },
    };
  });
});

afterEach(() => {
  estimatesCarryL1 = true;
  beforeCreation = undefined;
  l1Gas = 0n;
  refusedLimits = [];
});

afterAll(async () => {
  await t?.stop();
});

describe("a stored deploy refused for gas after the L1 price rose", () => {
  it("is re-signed by the signer's gap stage with a fresh estimate: it mines and the wallet's next withdrawal goes out", async () => {
    const account = await t.wallet(parseEther("10"));
    const first = BigInt(await t.client.getTransactionCount({ address: account.address }));
    // Killed after storing its bytes (never sent), signed at the price of then.
    const stored = await storeKilledDeploy(site, account, "L1Rose");
    expect(stored).toMatchObject({ nonce: first, status: "signed", earlierTxHashes: [] });
    const storedGas = parseTransaction(stored.rawTx).gas!;
    l1Gas = 40_000n;
    await t.withdraw("after-l1-deploy", { from: account.address, value: parseEther("0.1") });
    const signer = t.run(account, { settings: { stallResendMs: 300 } });
    try {
      // old code: timed out (the stored bytes refused at every resend, nonce_gap raised)
      const done = await t.confirmedWith("after-l1-deploy");
      expect(done).toMatchObject({ nonce: first + 1n, cancelled: false });
    } finally {
      await signer.stop();
    }
    expect(refusedLimits).toContain(storedGas);
    const row = await readStoredDeploy(t.ctx.db.pool, account.address, "L1Rose");
    expect(row.earlierTxHashes).toEqual([stored.txHash]);
    const resigned = parseTransaction(row.rawTx);
    expect(resigned).toMatchObject({ nonce: Number(first), data: TINY_CONTRACT.init });
    expect(resigned.to ?? null).toBeNull();
    expect(resigned.gas!).toBeGreaterThanOrEqual(storedGas + l1Gas);
    const receipt = await t.client.getTransactionReceipt({ hash: row.txHash });
    expect(receipt.status).toBe("success");
    const address = getContractAddress({ from: account.address, nonce: first });
    expect(await t.client.getCode({ address })).toBe(TINY_CONTRACT.runtime);
    expect(await t.alertCount("nonce_gap", account.address)).toBe(0);
  });

  it("is re-signed by the deploy command, which records the contract: the L1 price rose as its bytes reached the node", async () => {
    const account = await t.wallet(parseEther("10"));
    const first = BigInt(await t.client.getTransactionCount({ address: account.address }));
    // The price rises as the command's first bytes reach the node (after its estimate), by half
    // their limit: past the chain's margin (20%) they were signed with.
    beforeCreation = (gas) => {
      l1Gas = gas / 2n;
      beforeCreation = undefined;
    };
    // old code: rejected with "intrinsic gas too low" (then re-runs resent the same bytes for ever)
    const { contract, deployed } = await whileMining(t.client, deployFactoryStored(site, account));
    expect(deployed).toBe(true);
    const row = await readStoredDeploy(t.ctx.db.pool, account.address, FORWARDER_FACTORY);
    expect(row.earlierTxHashes).toHaveLength(1);
    expect(refusedLimits.length).toBeGreaterThanOrEqual(1);
    const resigned = parseTransaction(row.rawTx);
    expect(resigned.nonce).toBe(Number(first));
    expect(resigned.gas!).toBeGreaterThan(refusedLimits[0]!);
    const address = getContractAddress({ from: account.address, nonce: first });
    expect(contract).toMatchObject({ address, deployTxHash: row.txHash });
    expect(await getContract(t.ctx.db.pool, t.chain.chainId, FORWARDER_FACTORY)).toMatchObject({
      address,
      deployTxHash: row.txHash,
    });
    expect(await t.client.getTransactionCount({ address: account.address })).toBe(
      Number(first) + 1,
    );
  });

  it("is not refused for a rise within the chain's margin: its bytes were signed with it", async () => {
    const account = await t.wallet(parseEther("10"));
    const stored = await storeKilledDeploy(site, account, "WithinMargin");
    const storedGas = parseTransaction(stored.rawTx).gas!;
    const estimate = await t.client.estimateGas({
      account: account.address,
      data: TINY_CONTRACT.init,
    });
    expect(storedGas).toBe(gasLimitFor(estimate, t.chain, TINY_CONTRACT.init));
    // old code: signed on the bare estimate, so refused at this price and re-signed
    l1Gas = (storedGas - estimate) / 2n;
    expect(l1Gas).toBeGreaterThan(0n);
    await t.withdraw("after-margin-deploy", { from: account.address, value: parseEther("0.1") });
    const signer = t.run(account, { settings: { stallResendMs: 300 } });
    try {
      await t.confirmedWith("after-margin-deploy");
    } finally {
      await signer.stop();
    }
    expect(refusedLimits).toEqual([]);
    const row = await readStoredDeploy(t.ctx.db.pool, account.address, "WithinMargin");
    expect(row).toMatchObject({ txHash: stored.txHash, earlierTxHashes: [] });
    expect((await t.client.getTransactionReceipt({ hash: stored.txHash })).status).toBe("success");
  });

  for (const [name, title] of [
    ["NoL1Cost", "on a chain whose gas does not carry the L1 cost, is not re-signed"],
    [
      "EstimateBlind",
      "whose fresh estimate does not rise (the node estimating does not see the price), is not re-signed",
    ],
  ] as const)
    it(`${title}: the wallet waits and a person is told`, async () => {
      const account = await t.wallet(parseEther("10"));
      const first = BigInt(await t.client.getTransactionCount({ address: account.address }));
      const stored = await storeKilledDeploy(site, account, name);
      l1Gas = 40_000n;
      estimatesCarryL1 = name !== "EstimateBlind";
      const id = `behind-${name}`;
      await t.withdraw(id, { from: account.address, value: parseEther("0.1") });
      const signer = t.run(account, {
        settings: { stallResendMs: 300 },
        chain: { ...t.chain, l1CostInGas: name !== "NoL1Cost" },
      });
      let atAlert: Awaited<ReturnType<typeof readStoredDeploy>>;
      try {
        await waitFor("nonce_gap raised", async () => {
          return (await t.alertCount("nonce_gap", account.address)) > 0;
        });
        // Five more passes of the gap stage (stallResendMs 300) re-sign nothing.
        atAlert = await readStoredDeploy(t.ctx.db.pool, account.address, name);
        await new Promise((r) => setTimeout(r, 1_500));
      } finally {
        await signer.stop();
      }
      const row = await readStoredDeploy(t.ctx.db.pool, account.address, name);
      expect(row).toEqual(atAlert);
      // Never re-signed. The estimate blind to the price, with the chain's margin, is the stored
      // bytes' limit (signed with the margin too): not above it.
      expect(row).toMatchObject({ txHash: stored.txHash, earlierTxHashes: [] });
      // Signed at the next nonce, it waits behind the deploy's.
      const behind = await getTxRequest(t.ctx.db.pool, id);
      expect(behind).toMatchObject({ nonce: first + 1n });
      expect(["confirmed", "finalized"]).not.toContain(behind!.status);
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(Number(first));
    });
});
