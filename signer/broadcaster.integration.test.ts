/**
 * The broadcaster end to end on anvil (automine), the KMS emulator through @aws-sdk/client-kms,
 * real Postgres and Redis: requests in, transactions mined and confirmed, outcomes rung.
 */
import { parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest, TX_OUTCOMES_QUEUE, type TxOutcomeJob } from "./requests.js";
import { RECIPIENT, statusCounts, waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 2 } } },
    signer: {},
  });
});

afterAll(async () => {
  await t?.stop();
});

describe("broadcaster", () => {
  it("sends each request once with consecutive nonces and confirms it", async () => {
    const startNonce = await t.client.getTransactionCount({ address: t.account.address });
    const ids = await t.request(40);
    await waitFor("all mined", async () => {
      const c = await statusCounts(t.ctx);
      return (c.mined ?? 0) + (c.confirmed ?? 0) === 40;
    });
    // Automine makes one block per tx; two more blocks confirm the last ones.
    await t.rpc("anvil_mine", ["0x2"]);
    await waitFor("all confirmed", async () => (await statusCounts(t.ctx)).confirmed === 40);
    expect(await t.client.getTransactionCount({ address: t.account.address })).toBe(
      startNonce + 40,
    );
    const nonces = new Set<bigint>();
    for (const id of ids) {
      const r = (await getTxRequest(t.ctx.db.pool, id))!;
      expect(r.status).toBe("confirmed");
      expect(r.receiptSuccess).toBe(true);
      expect(r.gasUsed).toBe(21_000n);
      expect(r.fee).toBe(r.gasUsed! * r.effectiveGasPrice!);
      const tx = await t.client.getTransaction({ hash: r.txHash as `0x${string}` });
      expect(tx.to?.toLowerCase()).toBe(RECIPIENT.toLowerCase());
      expect(tx.value).toBe(r.value);
      expect(BigInt(tx.nonce)).toBe(r.nonce);
      nonces.add(r.nonce!);
    }
    expect(nonces.size).toBe(40);
    const queue = t.ctx.queues.queue(TX_OUTCOMES_QUEUE);
    await waitFor("doorbells", async () => (await queue.getJobCounts("waiting")).waiting === 40);
    const job = await queue.getJob("w-7_confirmed");
    expect(job?.data).toEqual({
      requestId: "w-7",
      kind: "withdrawal",
      refId: "w-7",
      status: "confirmed",
    });
  });

  it("fails a request whose estimate reverts without using a nonce", async () => {
    const before = await t.client.getTransactionCount({ address: t.account.address });
    const reverter = "0x00000000000000000000000000000000000000aa";
    // PUSH1 0 PUSH1 0 REVERT: every call reverts.
    await t.rpc("anvil_setCode", [reverter, "0x60006000fd"]);
    await t.withdraw("reverts", { to: reverter, value: 0n });
    await t.request(1, { prefix: "after" });
    await waitFor(
      "after mined",
      async () => (await getTxRequest(t.ctx.db.pool, "after-0"))?.status === "mined",
    );
    await t.rpc("anvil_mine", ["0x2"]);
    await waitFor(
      "after confirmed",
      async () => (await getTxRequest(t.ctx.db.pool, "after-0"))?.status === "confirmed",
    );
    const failed = await getTxRequest(t.ctx.db.pool, "reverts");
    expect(failed).toMatchObject({ status: "failed", errorCode: "ESTIMATE_REVERTED", nonce: null });
    expect(await t.client.getTransactionCount({ address: t.account.address })).toBe(before + 1);
    const job = await t.ctx.queues.queue<TxOutcomeJob>(TX_OUTCOMES_QUEUE).getJob("reverts_failed");
    expect(job?.data.status).toBe("failed");
  });

  it("returns a reorged-out transaction to broadcast and mines its stored bytes again", async () => {
    const [id] = await t.request(1, { prefix: "reorg" });
    const mined = await waitFor("mined", async () => {
      const r = await getTxRequest(t.ctx.db.pool, id!);
      return r?.status === "mined" || r?.status === "confirmed" ? r : undefined;
    });
    const hash = mined.txHash;
    const blockHashOf = async () =>
      (await t.ctx.db.pool.query("SELECT block_hash FROM custody.tx_requests WHERE id = $1", [id]))
        .rows[0].block_hash as string | null;
    const originalBlock = await blockHashOf();
    // Drop the block holding it before it is confirmed; the chain goes on with another block at
    // that height (until a node has reached the height again, a free nonce is no evidence: it may
    // be a node that lags).
    await t.rpc("anvil_rollback", [1]);
    await t.rpc("evm_mine");
    await waitFor("re-mined in another block", async () => {
      const b = await blockHashOf();
      return b !== null && b !== originalBlock;
    });
    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = $1",
      [id],
    );
    expect(rows[0].n).toBe(1);
    await t.rpc("anvil_mine", ["0x3"]);
    const done = await waitFor("confirmed", async () => {
      const r = await getTxRequest(t.ctx.db.pool, id!);
      return r?.status === "confirmed" ? r : undefined;
    });
    // The very same bytes mined: no re-signing.
    expect(done.txHash).toBe(hash);
    const receipt = await t.client.getTransactionReceipt({ hash: hash as `0x${string}` });
    expect(receipt.status).toBe("success");
  });
  it("sends legacy (gasPrice) transactions on a chain without EIP-1559 fees", async () => {
    const legacy = { ...t.ctx.config.chains[0]!, feeModel: "legacy" as const };
    const account = await t.wallet(parseEther("1"));
    const legacySigner = t.run(account, { chain: legacy });
    try {
      await t.withdraw("legacy-1", { from: account.address, value: 7n });
      const done = await waitFor("legacy confirmed", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "legacy-1");
        if (r?.status === "mined") await t.rpc("evm_mine");
        return r?.status === "confirmed" ? r : undefined;
      });
      const tx = await t.client.getTransaction({ hash: done.txHash as `0x${string}` });
      expect(tx.type).toBe("legacy");
      expect(tx.value).toBe(7n);
      expect(done.effectiveGasPrice).toBe(tx.gasPrice);
    } finally {
      await legacySigner.stop();
    }
  });
});
