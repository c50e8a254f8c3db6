/**
 * Only an operator fails a request after broadcast: `custody-node tx-requests review|fail|retry`
 * as real processes against a request the signer put in needs_review (its cancel was unsendable).
 * The decision is audited (who, why, what the chain showed); a request in another status is
 * refused and left unchanged. Before failing, the chain is asked what used the nonce (read from
 * blocks through the same proxy that withholds receipts): one of the request's own transactions
 * refuses the failure (its money left), another transaction allows it once its block is final.
 * A nonce nothing used makes the failure a cancel: the request stays followed (`broadcast`) until
 * the cancel's block is final, and if one of its own signed sends mines first, it is paid.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Hex, parseEther, parseTransaction, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setPublishedFinalized } from "../indexers/testing/chain.js";
import { failureIsEvidenced } from "../ledger/index.js";
import { spawnCli, writeChainConfig } from "../ops/testing/process.js";
import { within } from "../ops/testing/wait.js";
import { nonceEvidenceFromChains } from "./nonceEvidence.js";
import { failTxRequestByOperator, retryTxRequestByOperator } from "./operator.js";
import { waitFor } from "./testing/harness.js";
import { type Answer, type RpcCallIn, type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, SMALL_BLOCKS, startSignerTest } from "./testing/signerTest.js";

const RULES = { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 3 } as const;
let t: SignerTest<RpcProxy>;
let proxy: RpcProxy;
let dir: string;
let configFile: string;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { anvilArgs: SMALL_BLOCKS, config: RULES },
    proxy: startRpcProxy,
  });
  proxy = t.proxy!;
  dir = mkdtempSync(path.join(tmpdir(), "signer-operator-"));
  // The CLI reads the chain through the same proxy as the signer.
  configFile = writeChainConfig(path.join(dir, "config.json"), t.chain, {
    ...RULES,
    blockTimeMs: 1000,
    feeModel: "eip1559",
  });
});

afterAll(async () => {
  await t?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** An operator's fail as the CLI makes it: checked against the chain through the signer's nodes. */
const operatorFail = (decision: { requestId: string; by: string; reason: string }) =>
  failTxRequestByOperator(t.ctx.db.pool, decision, nonceEvidenceFromChains([t.chain]));

/** The node refuses every cancel of `from` (a 0-value transfer to itself) for good. */
function refuseCancel(call: RpcCallIn, from: string): Answer | undefined {
  if (call.method !== "eth_sendRawTransaction") return undefined;
  const tx = parseTransaction((call.params as Hex[])[0]!);
  return tx.to?.toLowerCase() === from && (tx.value ?? 0n) === 0n
    ? { error: { code: -32000, message: "intrinsic gas too low" } }
    : undefined;
}

/** The node refuses every payment to `dest` for good, handing its signed bytes to `keep`. */
function refusePayment(call: RpcCallIn, dest: Hex, keep: (raw: Hex) => void): Answer | undefined {
  if (call.method !== "eth_sendRawTransaction") return undefined;
  const raw = (call.params as Hex[])[0]!;
  if (parseTransaction(raw).to?.toLowerCase() !== dest) return undefined;
  keep(raw);
  return { error: { code: -32000, message: "intrinsic gas too low" } };
}

/** Few, quick cancel tries: an unsendable cancel reaches needs_review in about a second. */
const QUICK_CANCELS = {
  settings: { cancelBackoffMs: 200, maxCancelBackoffMs: 1_000, maxCancelAttempts: 2 },
};

async function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  const p = spawnCli(["tx-requests", ...args], {
    DATABASE_URL: t.ctx.db.url,
    CUSTODY_CONFIG: configFile,
    LOG_LEVEL: "silent",
  });
  const { code } = await within(`custody-node tx-requests ${args.join(" ")}`, p.exited, 60_000);
  return { code, out: p.output() };
}

/** Publish our final block as the indexer would under RULES (3 blocks: 2 below the head). */
async function publishFinal(): Promise<void> {
  const block = await t.client.getBlock({ blockNumber: (await t.client.getBlockNumber()) - 2n });
  await setPublishedFinalized(t.ctx.db.pool, t.chain.chainId, block);
}

const untilNeedsReview = (id: string) =>
  waitFor("needs_review", async () => (await t.outcome(id)).status === "needs_review");

/**
 * `id` pays 1 ETH to `dest` and mines while every receipt is withheld from the signer; `during`
 * runs once its status is one of `until`. Then receipts come back and the signer records the
 * payment itself (confirmed), with nothing done by an operator.
 */
async function withReceiptsWithheld(
  id: string,
  dest: Hex,
  until: string[],
  during: () => Promise<void>,
): Promise<void> {
  const account = await t.wallet();
  let hiding = true;
  proxy.setIntercept((call) =>
    hiding && call.method === "eth_getTransactionReceipt" ? { result: null } : undefined,
  );
  const signer = t.run(account, {
    settings: { receiptGraceMs: 300, fullSearchIntervalMs: 300 },
  });
  try {
    await t.withdraw(id, { from: account.address, to: dest, value: parseEther("1") });
    await waitFor(until.join(" or "), async () => {
      const o = await t.outcome(id);
      await t.rpc("evm_mine");
      return until.includes(o.status) ? o : undefined;
    });
    await during();
    hiding = false;
    await waitFor("confirmed once receipts are back", async () => {
      const o = await t.outcome(id);
      if (o.status !== "confirmed" && o.status !== "finalized") await t.rpc("evm_mine");
      return o.status === "confirmed" || o.status === "finalized";
    });
  } finally {
    proxy.setIntercept(undefined);
    await signer.stop();
  }
}

describe("operator decisions", () => {
  it("fails a needs_review request only by command, audited, and the wallet goes on", async () => {
    const account = await t.wallet();
    const from = account.address.toLowerCase();
    let refuseCancels = true;
    proxy.setIntercept((call) => (refuseCancels ? refuseCancel(call, from) : undefined));
    const signer = t.run(account, QUICK_CANCELS);
    try {
      await t.withdraw([{ id: "op-dead", gasLimit: 2_000_000n }, "op-next"], {
        from: account.address,
      });
      await untilNeedsReview("op-dead");

      const review = await cli(["review"]);
      expect(review.code, review.out).toBe(0);
      expect(review.out).toMatch(/op-dead\tneeds_review\tCANCEL_UNSENDABLE\tchain 31337/);

      // Not reviewable: refused, unchanged.
      const refused = await cli(["fail", "op-next", "--by", "alice", "--reason", "wrong one"]);
      expect(refused.code).not.toBe(0);
      expect(refused.out).toContain(
        "op-next is broadcast; this command applies to receipt_unknown",
      );
      expect((await t.outcome("op-next")).status).toBe("broadcast");

      const failed = await cli([
        "fail",
        "op-dead",
        "--by",
        "alice",
        "--reason",
        "bytes can never be mined; customer refunded",
      ]);
      expect(failed.code, failed.out).toBe(0);
      // Nothing used its nonce: the failure is a cancel, and the request stays followed. No node
      // ever took any of its bytes: `signed` (callers see `signing`), as a halted chain holds it.
      expect(failed.out).toContain("cancelling op-dead: needs_review -> signed");
      const cancelling = await t.outcome("op-dead");
      expect(cancelling).toMatchObject({ status: "signing", errorCode: null });
      expect(cancelling.cancelRequestedAt).toBeInstanceOf(Date);
      const { rows } = await t.ctx.db.pool.query(
        `SELECT from_status, to_status, event, actor, reason FROM custody.tx_request_events
          WHERE request_id = 'op-dead' AND actor <> 'signer'`,
      );
      expect(rows).toEqual([
        {
          from_status: "needs_review",
          to_status: "signed",
          event: "operator_failed",
          actor: "operator:alice",
          reason: "bytes can never be mined; customer refunded",
        },
      ]);
      // What the chain showed is kept with the decision: the nonce unused at the head.
      const { rows: audit } = await t.ctx.db.pool.query(
        "SELECT details FROM custody.tx_request_events WHERE request_id = 'op-dead' AND event = 'operator_failed'",
      );
      expect(audit[0].details).toMatchObject({
        review_reason: "CANCEL_UNSENDABLE",
        chain_check: { nonce: "0", used: false, mined_count: "0" },
        cancelling: true,
      });
      // A repeat (after a crash) answers the same and records nothing more.
      const repeat = await cli(["fail", "op-dead", "--by", "alice", "--reason", "again"]);
      expect(repeat.code, repeat.out).toBe(0);
      const again = await cli(["retry", "op-dead", "--by", "bob", "--reason", "too late"]);
      expect(again.code).not.toBe(0);
      expect(again.out).toContain("op-dead is signed; this command applies to needs_review");
      // Still unsendable: the signer keeps placing cancels past its budget (2) and never puts the
      // request back in needs_review (the operator decided); its send is never tried again.
      await waitFor(
        "a third refused cancel after the decision",
        async () =>
          (
            await t.ctx.db.pool.query(
              "SELECT 1 FROM custody.tx_attempts WHERE request_id = 'op-dead' AND purpose = 'cancel' AND status = 'rejected'",
            )
          ).rowCount! >= 5,
        { timeoutMs: 30_000 },
      );
      expect((await t.outcome("op-dead")).status).toBe("signing");
      const { rows: sends } = await t.ctx.db.pool.query(
        "SELECT status FROM custody.tx_attempts WHERE request_id = 'op-dead' AND purpose = 'send'",
      );
      expect(sends).toEqual([{ status: "rejected" }]);

      // The node is fixed: a cancel uses the nonce, so the next request is not stuck behind it,
      // and the request fails (as the operator's) once the cancel's block is final.
      refuseCancels = false;
      const next = await waitFor("the next request confirmed", async () => {
        const o = await t.outcome("op-next");
        if (o.status === "broadcast") await t.rpc("evm_mine");
        return o.status === "confirmed" || o.status === "finalized" ? o : undefined;
      });
      expect(next.nonce).toBe(1n);
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(2);
      const dead = await waitFor("the cancelled request failed at a final block", async () => {
        const o = await t.outcome("op-dead");
        if (o.status !== "failed") await t.rpc("evm_mine");
        return o.status === "failed" ? o : undefined;
      });
      expect(dead).toMatchObject({
        errorCode: "OPERATOR_FAILED",
        errorMessage: "bytes can never be mined; customer refunded",
        cancelled: true,
      });
      expect(dead.finalizedAt).toBeInstanceOf(Date);
    } finally {
      proxy.setIntercept(undefined);
      await signer.stop();
    }
  });

  it("refuses a decision without who or why, with a stable code, before reading anything", async () => {
    const requestId = "no-such-request";
    await expect(operatorFail({ requestId, by: " ", reason: "stuck" })).rejects.toMatchObject({
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
    await expect(operatorFail({ requestId, by: "alice", reason: "stuck" })).rejects.toMatchObject({
      code: "SIGNER_REQUEST_NOT_FOUND",
    });
  });

  it("refuses to fail a request whose own transaction mined while every receipt was withheld", async () => {
    const dest = "0x000000000000000000000000000000000000d00d" as Hex;
    await withReceiptsWithheld(
      "paid-hidden",
      dest,
      ["receipt_unknown", "needs_review"],
      async () => {
        // The money left: the chain has the request's transaction.
        expect(await t.client.getBalance({ address: dest })).toBe(parseEther("1"));
        const { rows: attempts } = await t.ctx.db.pool.query<{ tx_hash: Hex }>(
          "SELECT tx_hash FROM custody.tx_attempts WHERE request_id = 'paid-hidden'",
        );
        const receipts = await Promise.all(
          attempts.map((a) =>
            t.client.getTransactionReceipt({ hash: a.tx_hash }).catch(() => null),
          ),
        );
        const mined = receipts.find((r) => r !== null)!;
        expect(mined).toBeDefined();
        await expect(
          operatorFail({ requestId: "paid-hidden", by: "alice", reason: "no receipt anywhere" }),
        ).rejects.toMatchObject({
          code: "SIGNER_REQUEST_MINED_ON_CHAIN",
          meta: { tx_hash: mined.transactionHash, block_number: String(mined.blockNumber) },
        });
        const viaCli = await cli([
          "fail",
          "paid-hidden",
          "--by",
          "alice",
          "--reason",
          "no receipt anywhere",
        ]);
        expect(viaCli.code).not.toBe(0);
        expect(viaCli.out).toContain(`has its transaction ${mined.transactionHash} in block`);
        // The operator changed nothing and nothing is audited for them. (The signer itself may have
        // moved the request from receipt_unknown to needs_review meanwhile, once the nonce's block
        // became final: session 16 saw it during the CLI call.)
        expect(["receipt_unknown", "needs_review"]).toContain(
          (await t.outcome("paid-hidden")).status,
        );
        const { rows } = await t.ctx.db.pool.query(
          "SELECT 1 FROM custody.tx_request_events WHERE request_id = 'paid-hidden' AND actor LIKE 'operator:%'",
        );
        expect(rows).toEqual([]);
      },
    );
  });

  it("refuses to retry a request whose nonce was used at a final block by nothing we have a receipt for", async () => {
    // Its own payment mined and every receipt is withheld: the nonce is used at a final block with
    // no attempt of ours found (NONCE_CONSUMED_NO_KNOWN_ATTEMPT). Resending cannot mine at a used
    // nonce: retried, it went back to broadcast, then receipt_unknown and needs_review again, an
    // outcome change and an alert each round. The signer keeps searching from needs_review anyway
    // (the payment is recorded from needs_review once receipts are back, with no retry).
    const dest = "0x000000000000000000000000000000000000d0d0" as Hex;
    await withReceiptsWithheld("consumed", dest, ["needs_review"], async () => {
      expect((await t.outcome("consumed")).reviewReason).toBe("NONCE_CONSUMED_NO_KNOWN_ATTEMPT");
      const decision = { requestId: "consumed", by: "alice", reason: "try again" };
      await expect(retryTxRequestByOperator(t.ctx.db.pool, decision)).rejects.toMatchObject({
        code: "SIGNER_REQUEST_NOT_RETRYABLE",
        meta: { id: "consumed", review_reason: "NONCE_CONSUMED_NO_KNOWN_ATTEMPT" },
      });
      const viaCli = await cli(["retry", "consumed", "--by", "alice", "--reason", "try again"]);
      expect(viaCli.code).not.toBe(0);
      expect(viaCli.out).toContain("needs_review (NONCE_CONSUMED_NO_KNOWN_ATTEMPT)");
      expect((await t.outcome("consumed")).status).toBe("needs_review");
      const { rows } = await t.ctx.db.pool.query(
        "SELECT 1 FROM custody.tx_request_events WHERE request_id = 'consumed' AND actor LIKE 'operator:%'",
      );
      expect(rows).toEqual([]);
    });
  });

  it("fails a request whose nonce another transaction used, once that block is final; not while no node can tell", async () => {
    const account = await t.wallet();
    const from = account.address.toLowerCase();
    let countsRefused = false;
    // As in the first test: the send can never be mined (above the block gas limit) and every
    // cancel is refused, so the signer puts the request in needs_review (CANCEL_UNSENDABLE).
    proxy.setIntercept((call) => {
      // A node without the history: counts at a given height are refused (the signer's own
      // reads at "latest" still work).
      if (
        countsRefused &&
        call.method === "eth_getTransactionCount" &&
        String(call.params?.[1]).startsWith("0x")
      )
        return { error: { code: -32000, message: "missing trie node (no archive state)" } };
      return refuseCancel(call, from);
    });
    const signer = t.run(account, QUICK_CANCELS);
    try {
      await t.withdraw([{ id: "op-foreign", gasLimit: 2_000_000n }], { from: account.address });
      await untilNeedsReview("op-foreign");
      const decision = { requestId: "op-foreign", by: "alice", reason: "nonce used elsewhere" };
      // Nodes without the state to answer: refused, nothing changed.
      countsRefused = true;
      await expect(operatorFail(decision)).rejects.toMatchObject({
        code: "SIGNER_CHAIN_CHECK_UNAVAILABLE",
        retryable: true,
      });
      countsRefused = false;
      expect((await t.outcome("op-foreign")).status).toBe("needs_review");

      // Someone else with the key (here anvil, impersonating the wallet) uses nonce 0, paying
      // more than the stuck send so it replaces it.
      await t.rpc("anvil_impersonateAccount", [account.address]);
      const foreign = (
        (await t.rpc("eth_sendTransaction", [
          {
            from: account.address,
            to: "0x000000000000000000000000000000000000f00d",
            value: toHex(7n),
            nonce: "0x0",
            gas: toHex(21_000n),
            maxFeePerGas: toHex(parseEther("0.000005")),
            maxPriorityFeePerGas: toHex(parseEther("0.000005")),
          },
        ])) as Hex
      ).toLowerCase() as Hex;
      await t.rpc("anvil_stopImpersonatingAccount", [account.address]);
      const receipt = await waitFor("the foreign transaction mined", async () => {
        await t.rpc("evm_mine");
        return t.client.getTransactionReceipt({ hash: foreign }).catch(() => undefined);
      });
      // Its block is the head: not final under the chain's rule (3 blocks).
      await publishFinal();
      await expect(operatorFail(decision)).rejects.toMatchObject({
        code: "SIGNER_NONCE_NOT_FINAL",
        retryable: true,
        meta: { tx_hash: foreign, block_number: String(receipt.blockNumber) },
      });
      expect((await t.outcome("op-foreign")).status).toBe("needs_review");
      await t.rpc("anvil_mine", [toHex(3)]);
      await publishFinal();
      // The nonce is spent for good by a transaction that is not ours: failed at once.
      expect(await operatorFail(decision)).toEqual({
        from: "needs_review",
        to: "failed",
        cancelling: false,
      });
      const { rows } = await t.ctx.db.pool.query(
        "SELECT details FROM custody.tx_request_events WHERE request_id = 'op-foreign' AND event = 'operator_failed'",
      );
      expect(rows[0].details).toMatchObject({
        chain_check: {
          nonce: "0",
          used: true,
          used_by: foreign,
          block_number: String(receipt.blockNumber),
        },
      });
    } finally {
      proxy.setIntercept(undefined);
      await signer.stop();
    }
  });

  it("a failure by cancel loses the race to the request's own send: it is paid once, confirmed, and alerted", async () => {
    const dest = "0x000000000000000000000000000000000000beef" as Hex;
    const account = await t.wallet();
    const from = account.address.toLowerCase();
    // Every node refuses the payment's bytes and every cancel for good; the payment's bytes are
    // kept, as a node that refused them to us may still have passed them on.
    const payments: Hex[] = [];
    proxy.setIntercept(
      (call) => refusePayment(call, dest, (raw) => payments.push(raw)) ?? refuseCancel(call, from),
    );
    const signer = t.run(account, QUICK_CANCELS);
    try {
      await t.withdraw("op-late", { from: account.address, to: dest, value: parseEther("2") });
      await untilNeedsReview("op-late");
      expect(
        await operatorFail({ requestId: "op-late", by: "alice", reason: "refused everywhere" }),
      ).toEqual({ from: "needs_review", to: "signed", cancelling: true });
      // The bytes mine after all (another node's pool); no cancel got through.
      await t.rpc("eth_sendRawTransaction", [payments[0]]);
      await t.rpc("evm_mine");
      expect(await t.client.getBalance({ address: dest })).toBe(parseEther("2"));
      // The signer still follows the request: the chain decided, the payment is confirmed.
      const paid = await waitFor("the payment confirmed", async () => {
        const o = await t.outcome("op-late");
        if (o.status !== "finalized") await t.rpc("evm_mine");
        return o.status === "finalized" ? o : undefined;
      });
      expect(paid).toMatchObject({ receiptSuccess: true, cancelled: false, errorCode: null });
      const { rows } = await t.ctx.db.pool.query(
        "SELECT to_status FROM custody.tx_request_events WHERE request_id = 'op-late' AND event = 'operator_fail_overridden'",
      );
      expect(rows).toEqual([{ to_status: "mined" }]);
      const alerts = await t.ctx.common.metrics.registry.getSingleMetricAsString(
        "custody_signer_alerts_total",
      );
      expect(alerts).toMatch(
        new RegExp(
          `(alert="operator_fail_overridden".*wallet="${from}"|wallet="${from}".*alert="operator_fail_overridden").*\\} [1-9]`,
        ),
      );
      // Paid once: nothing of ours but that payment and its refused attempts.
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(1);
    } finally {
      proxy.setIntercept(undefined);
      await signer.stop();
    }
  });

  it("a failure by cancel whose own send mined reverted: it fails as reverted, with no override alert (no money left)", async () => {
    const dest = "0x000000000000000000000000000000000000bad1" as Hex;
    const account = await t.wallet();
    const from = account.address.toLowerCase();
    const payments: Hex[] = [];
    proxy.setIntercept(
      (call) => refusePayment(call, dest, (raw) => payments.push(raw)) ?? refuseCancel(call, from),
    );
    const signer = t.run(account, QUICK_CANCELS);
    try {
      await t.withdraw("op-late-revert", {
        from: account.address,
        to: dest,
        value: parseEther("2"),
      });
      await untilNeedsReview("op-late-revert");
      expect(
        await operatorFail({
          requestId: "op-late-revert",
          by: "alice",
          reason: "refused everywhere",
        }),
      ).toEqual({ from: "needs_review", to: "signed", cancelling: true });
      // The bytes mine after all (another node's pool), but the destination now reverts.
      await t.rpc("anvil_setCode", [dest, "0x60006000fd"]);
      await t.rpc("eth_sendRawTransaction", [payments[0]]);
      await t.rpc("evm_mine");
      expect(await t.client.getBalance({ address: dest })).toBe(0n);
      const failed = await waitFor("failed at the revert's final block", async () => {
        const o = await t.outcome("op-late-revert");
        if (o.status !== "failed") await t.rpc("evm_mine");
        return o.status === "failed" ? o : undefined;
      });
      expect(failed).toMatchObject({ receiptSuccess: false, errorCode: "REVERTED" });
      // before the fix: expected [ { to_status: 'mined' } ] to deeply equal [] (an
      // operator_fail_overridden event and alert, though the operator's failure stood)
      const { rows } = await t.ctx.db.pool.query(
        "SELECT to_status FROM custody.tx_request_events WHERE request_id = 'op-late-revert' AND event = 'operator_fail_overridden'",
      );
      expect(rows).toEqual([]);
      expect(await t.alertCount("operator_fail_overridden", account.address)).toBe(0);
    } finally {
      proxy.setIntercept(undefined);
      await signer.stop();
    }
  });

  it("the operator's cancel outbids the payment a node still holds: no attempt refused as underpriced", async () => {
    const dest = "0x000000000000000000000000000000000000cafe" as Hex;
    const account = await t.wallet();
    const from = account.address.toLowerCase();
    // A node takes the payment into its pool but answers us with a refusal; cancels are refused
    // until the operator decides. Nothing mines on its own meanwhile.
    await t.rpc("evm_setAutomine", [false]);
    let refuseCancels = true;
    proxy.setIntercept(
      (call) =>
        refusePayment(call, dest, (raw) => {
          void t.rpc("eth_sendRawTransaction", [raw]).catch(() => {});
        }) ?? (refuseCancels ? refuseCancel(call, from) : undefined),
    );
    const signer = t.run(account, QUICK_CANCELS);
    try {
      await t.withdraw("op-outbid", { from: account.address, to: dest, value: parseEther("3") });
      await untilNeedsReview("op-outbid");
      expect(
        await operatorFail({ requestId: "op-outbid", by: "alice", reason: "customer cancelled" }),
      ).toMatchObject({ to: "signed", cancelling: true });
      refuseCancels = false;
      // The first cancel the node sees replaces the payment in its pool at once.
      await waitFor(
        "a cancel in the node's pool",
        async () =>
          (
            await t.ctx.db.pool.query(
              "SELECT 1 FROM custody.tx_attempts WHERE request_id = 'op-outbid' AND purpose = 'cancel' AND status = 'broadcast'",
            )
          ).rowCount! > 0,
      );
      const { rows } = await t.ctx.db.pool.query(
        "SELECT purpose, last_error_class FROM custody.tx_attempts WHERE request_id = 'op-outbid' AND last_error_class LIKE '%underpriced'",
      );
      expect(rows).toEqual([]);
      await t.rpc("evm_mine");
      const failed = await waitFor("failed at the cancel's final block", async () => {
        const o = await t.outcome("op-outbid");
        if (o.status !== "failed") await t.rpc("evm_mine");
        return o.status === "failed" ? o : undefined;
      });
      expect(failed).toMatchObject({ errorCode: "OPERATOR_FAILED", cancelled: true });
      expect(await t.client.getBalance({ address: dest })).toBe(0n);
    } finally {
      proxy.setIntercept(undefined);
      await t.rpc("evm_setAutomine", [true]);
      await signer.stop();
    }
  });

  it("a request an operator failed outright before migration 0107: its nonce is cancelled and the cancel is bumped until it mines", async () => {
    const dest = "0x000000000000000000000000000000000000d00d" as Hex;
    const account = await t.wallet();
    const from = account.address.toLowerCase();
    const pool = t.ctx.db.pool;
    const destBefore = await t.client.getBalance({ address: dest });
    // Nothing mines on its own: a cancel the node holds waits in its pool, unmined, until bumped.
    await t.rpc("evm_setAutomine", [false]);
    let refuseCancels = true;
    proxy.setIntercept(
      (call) =>
        refusePayment(call, dest, () => {}) ??
        (refuseCancels ? refuseCancel(call, from) : undefined),
    );
    const signer = t.run(account, { ...QUICK_CANCELS, chain: { ...t.chain, bumpIntervalMs: 300 } });
    try {
      await t.withdraw("op-legacy", { from: account.address, to: dest, value: parseEther("2") });
      await untilNeedsReview("op-legacy");
      // What the code before 0107 did (failed at once, hold released), and what 0107 did to such a
      // row's sends (replaced: never sent again).
      await pool.query(
        `UPDATE custody.tx_requests SET status = 'failed', error_code = 'OPERATOR_FAILED',
                error_message = 'failed before 0107', updated_at = now() WHERE id = 'op-legacy'`,
      );
      await pool.query(
        "UPDATE custody.tx_attempts SET status = 'replaced' WHERE request_id = 'op-legacy' AND status IN ('signed', 'broadcast')",
      );
      refuseCancels = false;
      // The next payment waits behind the gap; the wallet's followed requests wake the nonce stage.
      await t.withdraw("op-legacy-next", { from: account.address, value: 5n });
      const cancels = await waitFor("the legacy request's cancel bumped", async () => {
        const { rows } = await pool.query<{ fee: string }>(
          `SELECT coalesce(max_fee_per_gas, gas_price)::text AS fee FROM custody.tx_attempts
            WHERE request_id = 'op-legacy' AND purpose = 'cancel' AND status <> 'rejected'
            ORDER BY id`,
        );
        return rows.length >= 2 ? rows : undefined;
      });
      expect(BigInt(cancels[1]!.fee)).toBeGreaterThan(BigInt(cancels[0]!.fee));
      // Once mined, the gap is closed: the next payment goes through; nothing was paid to dest.
      await waitFor("the next payment mined", async () => {
        await t.rpc("evm_mine");
        return ["confirmed", "finalized"].includes((await t.outcome("op-legacy-next")).status);
      });
      expect(await t.client.getBalance({ address: dest })).toBe(destBefore);
      const { rows: sends } = await pool.query(
        "SELECT 1 FROM custody.tx_attempts WHERE request_id = 'op-legacy' AND purpose = 'send' AND status NOT IN ('replaced', 'rejected')",
      );
      expect(sends).toEqual([]);
    } finally {
      proxy.setIntercept(undefined);
      await t.rpc("evm_setAutomine", [true]);
      await signer.stop();
    }
  });

  it("fails a request the signer marked failed without evidence: by cancel while its nonce is unused, at its own cancel's final block, never one with evidence", async () => {
    const dest = "0x000000000000000000000000000000000000fa11" as Hex;
    const account = await t.wallet();
    const from = account.address.toLowerCase();
    const pool = t.ctx.db.pool;
    let refuseCancels = true;
    proxy.setIntercept(
      (call) =>
        refusePayment(call, dest, () => {}) ??
        (refuseCancels ? refuseCancel(call, from) : undefined),
    );
    // Cancels never given up on (no needs_review racing the test's own `failed`).
    const signer = t.run(account, {
      settings: { cancelBackoffMs: 200, maxCancelBackoffMs: 1_000, maxCancelAttempts: 1_000 },
    });
    /** What a signer bug leaves: `failed` at a nonce, with no final block and no operator. */
    const markFailed = async (id: string) => {
      // Its payment refused for good and the nonce stage's cancel signed (refused too): the trail
      // shows it left `signed` with no node taking anything, so the operator's fail sends it back
      // as `signed` (BACK_TO_BROADCASTER). Failed before that cancel, it has no trail: `broadcast`,
      // the cautious answer (1 run in 3 under load failed so).
      await waitFor("its payment refused for good, a cancel signed", async () => {
        const { rows } = await pool.query(
          `SELECT 1 FROM custody.tx_attempts WHERE request_id = $1 AND status = 'rejected'
              AND EXISTS (SELECT 1 FROM custody.tx_request_events
                           WHERE request_id = $1 AND event = 'cancel_signed')`,
          [id],
        );
        return rows.length > 0;
      });
      const { rowCount } = await pool.query(
        `UPDATE custody.tx_requests SET status = 'failed', error_code = 'SIGNER_BUG', updated_at = now()
          WHERE id = $1 AND status IN ('signed', 'broadcast')`,
        [id],
      );
      expect(rowCount).toBe(1);
      expect(failureIsEvidenced(await t.outcome(id))).toBe(false);
    };
    const mineFinal = async () => {
      await t.rpc("anvil_mine", [toHex(3)]);
      await publishFinal();
    };
    try {
      // Nonce 0, unused: failing it is a cancel, followed until the cancel's block is final.
      await t.withdraw("op-unevidenced", { from: account.address, to: dest, value: 9n });
      await markFailed("op-unevidenced");
      const decision = { requestId: "op-unevidenced", by: "alice", reason: "signer bug, refund" };
      expect(await operatorFail(decision)).toEqual({
        from: "failed",
        to: "signed",
        cancelling: true,
      });
      expect(await t.outcome("op-unevidenced")).toMatchObject({
        status: "signing",
        errorCode: null,
      });
      refuseCancels = false;
      const cancelled = await waitFor("failed at the cancel's final block", async () => {
        const o = await t.outcome("op-unevidenced");
        if (o.status !== "failed") await t.rpc("evm_mine");
        return o.status === "failed" ? o : undefined;
      });
      expect(cancelled).toMatchObject({ errorCode: "OPERATOR_FAILED" });
      expect(failureIsEvidenced(cancelled)).toBe(true);

      // Nonce 1: the signer cancels a `failed` request's unused nonce on its own (nonces.ts); its
      // cancel mined, not final yet, then final: the failure's evidence.
      refuseCancels = true;
      await t.withdraw("op-unevidenced-2", { from: account.address, to: dest, value: 9n });
      await markFailed("op-unevidenced-2");
      refuseCancels = false;
      await waitFor("its cancel mined", async () => {
        await t.rpc("evm_mine");
        return (await t.client.getTransactionCount({ address: account.address })) === 2;
      });
      await publishFinal();
      const second = { ...decision, requestId: "op-unevidenced-2" };
      await expect(operatorFail(second)).rejects.toMatchObject({ code: "SIGNER_NONCE_NOT_FINAL" });
      await mineFinal();
      expect(await operatorFail(second)).toEqual({
        from: "failed",
        to: "failed",
        cancelling: false,
      });
      const settled = await t.outcome("op-unevidenced-2");
      expect(settled).toMatchObject({ errorCode: "OPERATOR_FAILED" });
      expect(failureIsEvidenced(settled)).toBe(true);
      const { rows } = await pool.query(
        "SELECT actor, details FROM custody.tx_request_events WHERE request_id = 'op-unevidenced-2' AND event = 'operator_failed'",
      );
      expect(rows).toEqual([
        {
          actor: "operator:alice",
          details: expect.objectContaining({
            signer_error_code: "SIGNER_BUG",
            chain_check: expect.objectContaining({
              nonce: "1",
              used: true,
              used_by_own_cancel: true,
            }),
          }),
        },
      ]);
      // A failure with evidence is not decided again.
      await expect(operatorFail(second)).rejects.toMatchObject({
        code: "SIGNER_REQUEST_NOT_REVIEWABLE",
        meta: { status: "failed" },
      });
      expect(await t.client.getBalance({ address: dest })).toBe(0n);
    } finally {
      proxy.setIntercept(undefined);
      await signer.stop();
    }
  });

  it("refuses a chain it is not configured for", async () => {
    const reader = nonceEvidenceFromChains([t.chain]);
    await expect(
      reader({ chainId: 999_999_999, from: t.account.address, nonce: 0n, final: null }),
    ).rejects.toMatchObject({ code: "SIGNER_CHAIN_CHECK_UNAVAILABLE", retryable: true });
  });
});
