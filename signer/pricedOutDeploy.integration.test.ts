/**
 * A stored CLI deploy (signer/storedDeploy.ts) whose fees fell below the market holds the hot
 * wallet's lowest unused nonce: every later request waits behind it. The signer's gap stage
 * (broadcaster/gaps.ts) replaces it at its nonce with raised fees (never above the chain's cap),
 * keeping the hash it replaced; the deploy's follower then records whichever of its bytes mined,
 * including bytes signed before the replacement. Real anvil, Postgres and the KMS emulator; the
 * deploy is the CLI's own sender, stopped at its crash point.
 */
import { getContractAddress, type Hex, numberToHex, parseTransaction } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRpcClient } from "../chains/index.js";
import type { KmsAccount } from "./kmsAccount.js";
import type { Lease } from "./lease.js";
import { getTxRequest } from "./requests.js";
import { storedDeploySender } from "./storedDeploy.js";
import { waitFor } from "./testing/harness.js";
import {
  priceOut,
  readStoredDeploy,
  restoreBaseFee,
  type StoredDeploy,
  storeKilledDeploy,
  TINY_CONTRACT,
} from "./testing/killedDeploy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest({
    // Final (the deploy's follower ends) 4 blocks deep.
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 4 } },
  });
});

afterAll(async () => {
  await t?.stop();
});

const rpc = (method: string, params: unknown[] = []) =>
  t.client.request({ method: method as never, params: params as never });
const mined = (address: Hex) => t.client.getTransactionCount({ address });

const deployRow = (account: KmsAccount, name: string) =>
  readStoredDeploy(t.ctx.db.pool, account.address, name);

/** The CLI's sender run to its end (the deploy followed until final): what it records. */
async function follow(account: KmsAccount, name: string) {
  await rpc("anvil_mine", [numberToHex(t.chain.reorgWindow)]);
  let lease: Lease | undefined;
  try {
    const send = storedDeploySender({
      common: t.ctx.common,
      databaseUrl: t.ctx.db.url,
      chain: t.chain,
      client: t.client,
      rpc: createRpcClient({ chainId: t.chain.chainId, urls: t.chain.rpcUrls }),
      account,
      sendRawTransaction: (raw) => t.client.sendRawTransaction({ serializedTransaction: raw }),
      getFinalizedBlock: () => t.client.getBlock({ blockTag: "finalized" }),
      onLease: (l) => {
        lease = l;
      },
      pollMs: 100,
    });
    return await send({ name, data: TINY_CONTRACT.init });
  } finally {
    await lease?.release().catch(() => {});
  }
}

describe("a stored deploy priced out of the market", () => {
  it("is replaced with raised fees: it mines, the later withdrawal goes out, and the contract is recorded", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    const stored = await storeKilledDeploy(t, account, "PricedOut");
    expect(stored).toMatchObject({ nonce: first, status: "signed", earlierTxHashes: [] });
    const oldFee = await priceOut(t.client, t.chain, stored.rawTx);
    try {
      await t.withdraw(["priced-out"], { from: account.address });
      const signer = t.run(account, { settings: { stallResendMs: 300 } });
      try {
        await waitFor("the withdrawal confirmed", async () => {
          return (await getTxRequest(t.ctx.db.pool, "priced-out"))?.status === "confirmed";
        });
      } finally {
        await signer.stop();
      }
      expect((await getTxRequest(t.ctx.db.pool, "priced-out"))!.nonce).toBe(first + 1n);
      const row = await deployRow(account, "PricedOut");
      expect(row.txHash).not.toBe(stored.txHash);
      expect(row.earlierTxHashes).toEqual([stored.txHash]);
      const replacement = parseTransaction(row.rawTx);
      expect(replacement.to ?? null).toBeNull(); // still a contract creation
      expect(replacement.nonce).toBe(Number(first));
      expect(replacement.data).toBe(TINY_CONTRACT.init);
      expect(replacement.maxFeePerGas!).toBeGreaterThan(oldFee);
      expect(replacement.maxFeePerGas!).toBeLessThanOrEqual(t.chain.maxFeePerGas);
      const receipt = await t.client.getTransactionReceipt({ hash: row.txHash });
      expect(receipt.status).toBe("success");
      const address = getContractAddress({ from: account.address, nonce: first });
      expect(await t.client.getCode({ address })).toBe(TINY_CONTRACT.runtime);

      // The CLI's next run follows the replacement to final and records that contract.
      const sent = await follow(account, "PricedOut");
      expect(sent).toMatchObject({ hash: row.txHash, address });
    } finally {
      await restoreBaseFee(t.client, oldFee);
    }
  });

  it("whose bytes a node holds without mining them: replaced after the chain's bump interval, and the wallet moves on", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    // No blocks: the node holds the deploy (and later the withdrawal) in its pool, unmined.
    await rpc("evm_setAutomine", [false]);
    try {
      const sent = await storeKilledDeploy(t, account, "HeldUnmined", "deploy_after_send");
      expect(sent).toMatchObject({ nonce: first, status: "broadcast" });
      expect(await t.client.getTransaction({ hash: sent.txHash })).toMatchObject({
        blockNumber: null,
      });
      await t.withdraw(["held-unmined"], { from: account.address });
      const signer = t.run(account, {
        settings: { stallResendMs: 300 },
        chain: { ...t.chain, bumpIntervalMs: 300 },
      });
      try {
        const row = await waitFor("the deploy replaced", async () => {
          const r = await deployRow(account, "HeldUnmined");
          return r.txHash !== sent.txHash ? r : undefined;
        });
        expect(row.earlierTxHashes[0]).toBe(sent.txHash);
        expect(parseTransaction(row.rawTx).maxFeePerGas!).toBeGreaterThan(
          parseTransaction(sent.rawTx).maxFeePerGas!,
        );
        await rpc("evm_setAutomine", [true]);
        await rpc("evm_mine");
        await waitFor("the withdrawal confirmed", async () => {
          return (await getTxRequest(t.ctx.db.pool, "held-unmined"))?.status === "confirmed";
        });
      } finally {
        await signer.stop();
      }
      expect((await getTxRequest(t.ctx.db.pool, "held-unmined"))!.nonce).toBe(first + 1n);
      const row = await deployRow(account, "HeldUnmined");
      const receipt = await t.client.getTransactionReceipt({ hash: row.txHash });
      expect(receipt.status).toBe("success");
      const address = getContractAddress({ from: account.address, nonce: first });
      expect(await follow(account, "HeldUnmined")).toMatchObject({ hash: row.txHash, address });
    } finally {
      await rpc("evm_setAutomine", [true]);
    }
  });

  it("whose bytes from before the replacement mine: the follower records the deploy from that hash", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    const stored = await storeKilledDeploy(t, account, "OldMines");
    const oldFee = await priceOut(t.client, t.chain, stored.rawTx);
    let replaced: StoredDeploy;
    await rpc("evm_setAutomine", [false]);
    try {
      const signer = t.run(account, { settings: { stallResendMs: 300 } });
      try {
        replaced = await waitFor("the deploy replaced", async () => {
          const row = await deployRow(account, "OldMines");
          return row.txHash !== stored.txHash ? row : undefined;
        });
      } finally {
        await signer.stop();
      }
      expect(replaced.earlierTxHashes).toEqual([stored.txHash]);
      // The replacement is lost; the old bytes, held by some node, mine once the base fee falls.
      await rpc("anvil_dropTransaction", [replaced.txHash]);
      await restoreBaseFee(t.client, oldFee);
      await t.client.sendRawTransaction({ serializedTransaction: stored.rawTx });
      await rpc("evm_mine");
    } finally {
      await rpc("evm_setAutomine", [true]);
    }
    await rpc("evm_mine");
    const receipt = await t.client.getTransactionReceipt({ hash: stored.txHash });
    expect(receipt.status).toBe("success");
    expect(await mined(account.address)).toBe(Number(first) + 1);

    // The follower finds the mined bytes by their earlier hash (the row's own never mines).
    let sent: Awaited<ReturnType<typeof follow>> | undefined;
    let failed: unknown;
    void follow(account, "OldMines").then(
      (s) => {
        sent = s;
      },
      (e) => {
        failed = e;
      },
    );
    await waitFor("the follower's answer", async () => sent ?? failed);
    expect(failed).toBeUndefined();
    const address = getContractAddress({ from: account.address, nonce: first });
    expect(sent).toMatchObject({ hash: stored.txHash, address });
    expect(sent!.receipt.transactionHash).toBe(stored.txHash);
  });
});
