/**
 * A hot wallet's nonce that no request of the signer's holds. A contract deploy from the CLI
 * (signer/storedDeploy.ts) killed after storing its signed bytes, or after sending them, holds its
 * nonce: the signer gives it to no withdrawal, and when no node has those bytes (never sent, or
 * dropped from the pool after the signer counted them) it sends them, only them, so the wallet is
 * never frozen behind it. A nonce held by nothing of ours (the key used outside custody, that
 * transaction dropped) is never filled by the signer: it raises `nonce_gap` for a person.
 * Real anvil, Postgres and the KMS emulator; the deploy is the CLI's own sender, stopped at its
 * crash points.
 */
import { getContractAddress, type Hex, parseGwei } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxOutcomes } from "./outcomes.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import {
  priceOut,
  restoreBaseFee,
  storeKilledDeploy,
  TINY_CONTRACT,
} from "./testing/killedDeploy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 } } },
  });
});

afterAll(async () => {
  await t?.stop();
});

const rpc = (method: string, params: unknown[] = []) =>
  t.client.request({ method: method as never, params: params as never });
const automine = (on: boolean) => rpc("evm_setAutomine", [on]);
const mined = (address: Hex) => t.client.getTransactionCount({ address });
const pendingCount = (address: Hex) =>
  t.client.getTransactionCount({ address, blockTag: "pending" });

async function confirmed(id: string) {
  await waitFor(`${id} confirmed`, async () => {
    return (await getTxRequest(t.ctx.db.pool, id))?.status === "confirmed";
  });
  return (await getTxRequest(t.ctx.db.pool, id))!;
}

describe("a nonce no request holds", () => {
  it("held by a deploy killed before sending: no withdrawal takes it, and the signer sends the stored bytes", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    const deploy = await storeKilledDeploy(t, account, "Unsent");
    expect(deploy).toMatchObject({ nonce: first, status: "signed" });
    expect(await pendingCount(account.address)).toBe(Number(first));

    await t.withdraw(["gap-unsent"], { from: account.address });
    const signer = t.run(account);
    try {
      const request = await confirmed("gap-unsent");
      expect(request.nonce).toBe(first + 1n);
      // The deploy mined at its own nonce, from its stored bytes: the contract is there.
      const receipt = await t.client.getTransactionReceipt({ hash: deploy.txHash });
      expect(receipt.status).toBe("success");
      const address = getContractAddress({ from: account.address, nonce: first });
      expect(await t.client.getCode({ address })).toBe(TINY_CONTRACT.runtime);
      expect(await mined(account.address)).toBe(Number(first) + 2);
      const { rows } = await t.ctx.db.pool.query(
        "SELECT status FROM custody.hot_wallet_deploys WHERE tx_hash = $1",
        [deploy.txHash],
      );
      expect(rows).toEqual([{ status: "broadcast" }]);
    } finally {
      await signer.stop();
    }
  });

  it("held by a deploy the node dropped after the signer counted it pending: its stored bytes go out again and the wallet moves on", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    await automine(false);
    try {
      const deploy = await storeKilledDeploy(t, account, "Dropped", "deploy_after_send");
      expect(deploy).toMatchObject({ nonce: first, status: "broadcast" });
      expect(await pendingCount(account.address)).toBe(Number(first) + 1);

      await t.withdraw(["gap-dropped"], { from: account.address });
      const signer = t.run(account);
      try {
        await waitFor("the withdrawal sent", async () => {
          const r = await getTxRequest(t.ctx.db.pool, "gap-dropped");
          return r?.status === "broadcast" ? r : undefined;
        });
        expect((await getTxRequest(t.ctx.db.pool, "gap-dropped"))!.nonce).toBe(first + 1n);
        // The node loses the deploy; blocks come again.
        await rpc("anvil_dropTransaction", [deploy.txHash]);
        await automine(true);
        await rpc("evm_mine");
        const request = await confirmed("gap-dropped");
        expect(request.nonce).toBe(first + 1n);
        const receipt = await t.client.getTransactionReceipt({ hash: deploy.txHash });
        expect(receipt.status).toBe("success");
        expect(await mined(account.address)).toBe(Number(first) + 2);
      } finally {
        await signer.stop();
      }
    } finally {
      await automine(true);
    }
  });

  it("held by nothing of ours (the key used outside custody, that transaction dropped): never filled by the signer, nonce_gap raised", async () => {
    const account = await t.wallet();
    const first = await mined(account.address);
    await automine(false);
    try {
      // A transaction of the wallet's key the signer never stored, in the node's pool when the
      // signer resyncs.
      const raw = await account.signTransaction({
        chainId: t.chain.chainId,
        type: "eip1559",
        to: account.address,
        value: 0n,
        gas: 21_000n,
        nonce: first,
        maxFeePerGas: parseGwei("100"),
        maxPriorityFeePerGas: parseGwei("1"),
      });
      const outside = await t.client.sendRawTransaction({ serializedTransaction: raw });
      const signer = t.run(account, { settings: { stallResendMs: 300 } });
      try {
        await t.withdraw(["gap-outside"], { from: account.address });
        await waitFor("the withdrawal sent", async () => {
          const r = await getTxRequest(t.ctx.db.pool, "gap-outside");
          return r?.status === "broadcast" ? r : undefined;
        });
        expect((await getTxRequest(t.ctx.db.pool, "gap-outside"))!.nonce).toBe(BigInt(first) + 1n);
        await rpc("anvil_dropTransaction", [outside]);
        await automine(true);
        await rpc("evm_mine");
        await waitFor(
          "nonce_gap raised",
          async () => (await t.alertCount("nonce_gap", account.address)) >= 1,
        );
        // Nothing was signed at the gap: it waits for a person.
        const { rows } = await t.ctx.db.pool.query(
          "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE from_address = $1 AND nonce = $2",
          [account.address.toLowerCase(), first],
        );
        expect(rows[0].n).toBe(0);
        expect(await mined(account.address)).toBe(first);
        expect((await getTxRequest(t.ctx.db.pool, "gap-outside"))!.status).toBe("broadcast");
      } finally {
        await signer.stop();
      }
    } finally {
      await automine(true);
    }
  });

  it("held by a finalized request whose block a deep reorg the operator accepted took away (its bytes not mined again): nonce_gap raised, nothing signed at the gap", async () => {
    const account = await t.wallet();
    const first = await mined(account.address);
    // The chain before the payment: what a deep reorg, accepted at the resume, goes back to.
    const ancestor = await rpc("evm_snapshot");
    const signer = t.run(account, { settings: { stallResendMs: 300 } });
    try {
      await t.withdraw(["gap-final"], { from: account.address });
      const paid = await waitFor("gap-final final", async () => {
        const [o] = await getTxOutcomes(t.ctx.db.pool, { requestIds: ["gap-final"] });
        if (o?.status === "finalized") return o;
        await rpc("evm_mine");
        return undefined;
      });
      expect(paid.nonce).toBe(BigInt(first));
      const head = await t.client.getBlockNumber();
      // The new branch: without the payment (no node re-mined its bytes), longer than the old.
      await rpc("evm_revert", [ancestor]);
      await rpc("anvil_dropTransaction", [paid.txHash]).catch(() => {});
      while ((await t.client.getBlockNumber()) <= head + 2n) await rpc("evm_mine");
      expect(await mined(account.address)).toBe(first);
      // The next withdrawal gets the nonce after it and waits behind the hole for ever.
      await t.withdraw(["gap-after-final"], { from: account.address });
      await waitFor("the next withdrawal sent", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "gap-after-final");
        return r?.status === "broadcast" ? r : undefined;
      });
      expect((await getTxRequest(t.ctx.db.pool, "gap-after-final"))!.nonce).toBe(
        BigInt(first) + 1n,
      );
      // A person is told: nothing of ours will use that nonce again on its own.
      const since = Date.now();
      await waitFor("3 s of signer passes", async () => {
        await rpc("evm_mine");
        return Date.now() - since >= 3_000;
      });
      expect(await t.alertCount("nonce_gap", account.address)).toBeGreaterThanOrEqual(1);
      // Nothing was signed at the gap: the finalized request's money decision is a person's.
      const { rows } = await t.ctx.db.pool.query(
        "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE from_address = $1 AND nonce = $2",
        [account.address.toLowerCase(), first],
      );
      expect(rows[0].n).toBe(1);
      expect(await mined(account.address)).toBe(first);
    } finally {
      await signer.stop();
    }
  });

  // Priced out under a cap that leaves room is replaced with raised fees and mines
  // (pricedOutDeploy.integration.test.ts); here the chain's cap leaves no room for a replacement.
  it("held by a deploy whose stored bytes no node takes (the base fee rose past its max fee) and the fee cap leaves no room to replace them: the wallet waits behind it, and a person is told (nonce_gap)", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    const deploy = await storeKilledDeploy(t, account, "Priced");
    expect(deploy).toMatchObject({ nonce: first, status: "signed" });
    const tx = await t.client.getTransaction({ hash: deploy.txHash }).catch(() => null);
    expect(tx).toBeNull(); // never sent
    // The withdrawal can pay the raised base fee, the deploy cannot.
    const maxFeePerGas = await priceOut(t.client, t.chain, deploy.rawTx);

    await t.withdraw(["gap-priced"], { from: account.address });
    // The cap at the stored bytes' max fee: no replacement (+10%) fits under it.
    const signer = t.run(account, {
      settings: { stallResendMs: 300 },
      chain: { ...t.chain, maxFeePerGas },
    });
    try {
      await waitFor("the withdrawal signed", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "gap-priced");
        return r?.nonce !== null && r?.nonce !== undefined ? r : undefined;
      });
      expect((await getTxRequest(t.ctx.db.pool, "gap-priced"))!.nonce).toBe(first + 1n);
      // Nothing mines at the deploy's nonce and nothing of ours will: a person must be told.
      await waitFor(
        "nonce_gap raised",
        async () => (await t.alertCount("nonce_gap", account.address)) >= 1,
        { timeoutMs: 5_000 },
      );
      expect(await mined(account.address)).toBe(Number(first));
      // Its stored bytes stay (the gap stage tried to replace them at the first refusal, before
      // nonce_gap): nothing was signed over the cap.
      const { rows } = await t.ctx.db.pool.query(
        "SELECT tx_hash, earlier_tx_hashes FROM custody.hot_wallet_deploys WHERE tx_hash = $1",
        [deploy.txHash],
      );
      expect(rows).toEqual([{ tx_hash: deploy.txHash, earlier_tx_hashes: [] }]);
    } finally {
      await signer.stop();
      await restoreBaseFee(t.client, maxFeePerGas);
    }
  });
});
