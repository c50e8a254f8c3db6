/**
 * Only an operator fails a request after broadcast: `custody-node tx-requests review|fail|retry`
 * as real processes against a request the signer put in needs_review (its cancel was unsendable).
 * The decision is audited (who, why); a request in another status is refused and left unchanged;
 * once the cause is fixed, the broadcaster still uses the failed request's nonce with a cancel so
 * the wallet keeps sending.
 */
import { type Hex, parseTransaction } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnCli } from "../ops/testing/process.js";
import { within } from "../ops/testing/wait.js";
import { failTxRequestByOperator, retryTxRequestByOperator } from "./operator.js";
import { getTxOutcomes, type TxOutcome } from "./outcomes.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, SMALL_BLOCKS, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
let proxy: RpcProxy;

beforeAll(async () => {
  t = await startSignerTest({
    chain: {
      anvilArgs: SMALL_BLOCKS,
      config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 3 },
    },
    proxy: startRpcProxy,
  });
  proxy = t.proxy!;
});

afterAll(async () => {
  await t?.stop();
});

async function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  const p = spawnCli(["tx-requests", ...args], { DATABASE_URL: t.ctx.db.url, LOG_LEVEL: "silent" });
  const { code } = await within(`custody-node tx-requests ${args.join(" ")}`, p.exited, 60_000);
  return { code, out: p.output() };
}

async function outcome(id: string): Promise<TxOutcome> {
  return (await getTxOutcomes(t.ctx.db.pool, { requestIds: [id] }))[0]!;
}

describe("operator decisions", () => {
  it("fails a needs_review request only by command, audited, and the wallet goes on", async () => {
    const account = await t.wallet();
    const from = account.address.toLowerCase();
    let refuseCancels = true;
    proxy.setIntercept((call) => {
      if (!refuseCancels || call.method !== "eth_sendRawTransaction") return undefined;
      const tx = parseTransaction((call.params as Hex[])[0]!);
      return tx.to?.toLowerCase() === from && (tx.value ?? 0n) === 0n
        ? { error: { code: -32000, message: "intrinsic gas too low" } }
        : undefined;
    });
    const signer = t.run(account, {
      settings: { cancelBackoffMs: 200, maxCancelBackoffMs: 1_000, maxCancelAttempts: 2 },
    });
    try {
      await t.withdraw([{ id: "op-dead", gasLimit: 2_000_000n }, "op-next"], {
        from: account.address,
      });
      await waitFor(
        "needs_review",
        async () => (await outcome("op-dead")).status === "needs_review",
      );

      const review = await cli(["review"]);
      expect(review.code, review.out).toBe(0);
      expect(review.out).toMatch(/op-dead\tneeds_review\tCANCEL_UNSENDABLE\tchain 31337/);

      // Not reviewable: refused, unchanged.
      const refused = await cli(["fail", "op-next", "--by", "alice", "--reason", "wrong one"]);
      expect(refused.code).not.toBe(0);
      expect(refused.out).toContain(
        "op-next is broadcast; this command applies to receipt_unknown",
      );
      expect((await outcome("op-next")).status).toBe("broadcast");

      const failed = await cli([
        "fail",
        "op-dead",
        "--by",
        "alice",
        "--reason",
        "bytes can never be mined; customer refunded",
      ]);
      expect(failed.code, failed.out).toBe(0);
      expect(failed.out).toContain("failed op-dead: needs_review -> failed");
      expect(await outcome("op-dead")).toMatchObject({
        status: "failed",
        errorCode: "OPERATOR_FAILED",
        errorMessage: "bytes can never be mined; customer refunded",
      });
      const { rows } = await t.ctx.db.pool.query(
        `SELECT from_status, to_status, event, actor, reason FROM custody.tx_request_events
          WHERE request_id = 'op-dead' AND actor <> 'signer'`,
      );
      expect(rows).toEqual([
        {
          from_status: "needs_review",
          to_status: "failed",
          event: "operator_failed",
          actor: "operator:alice",
          reason: "bytes can never be mined; customer refunded",
        },
      ]);
      const again = await cli(["retry", "op-dead", "--by", "bob", "--reason", "too late"]);
      expect(again.code).not.toBe(0);
      expect(again.out).toContain("op-dead is failed; this command applies to needs_review");

      // The node is fixed: the failed request's nonce is still used (by a cancel), so the next
      // request is not stuck behind it.
      refuseCancels = false;
      const next = await waitFor("the next request confirmed", async () => {
        const o = await outcome("op-next");
        if (o.status === "broadcast") await t.rpc("evm_mine");
        return o.status === "confirmed" || o.status === "finalized" ? o : undefined;
      });
      expect(next.nonce).toBe(1n);
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(2);
      expect((await outcome("op-dead")).status).toBe("failed");
    } finally {
      proxy.setIntercept(undefined);
      await signer.stop();
    }
  });

  it("refuses a decision without who or why, with a stable code, before reading anything", async () => {
    const requestId = "no-such-request";
    await expect(
      failTxRequestByOperator(t.ctx.db.pool, { requestId, by: " ", reason: "stuck" }),
    ).rejects.toMatchObject({
      code: "SIGNER_OPERATOR_DECISION_INCOMPLETE",
      meta: { missing: "by" },
    });
    await expect(
      retryTxRequestByOperator(t.ctx.db.pool, { requestId, by: "alice", reason: "" }),
    ).rejects.toMatchObject({
      code: "SIGNER_OPERATOR_DECISION_INCOMPLETE",
      meta: { missing: "reason" },
    });
    // With both, the same call gets as far as the row (which does not exist).
    await expect(
      failTxRequestByOperator(t.ctx.db.pool, { requestId, by: "alice", reason: "stuck" }),
    ).rejects.toMatchObject({ code: "SIGNER_REQUEST_NOT_FOUND" });
  });
});
