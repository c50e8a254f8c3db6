/**
 * A halted chain (docs/chain-halts.md): nothing new leaves the hot wallet. A request handed to the
 * signer before the halt waits, neither failed nor cancelled: unsigned while pending, its stored
 * bytes unsent while no node has taken them; the wait is exported
 * (`custody_signer_held_requests{reason="chain_halted"}`). Once an operator resumes the chain it is
 * sent, once. The halt is opened and closed with the indexer's own functions (indexers/halts.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Hex, parseGwei } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnCli, writeChainConfig } from "../ops/testing/process.js";
import { within } from "../ops/testing/wait.js";
import type { KmsAccount } from "./kmsAccount.js";
import { nonceEvidenceFromChains } from "./nonceEvidence.js";
import { failTxRequestByOperator, retryTxRequestByOperator } from "./operator.js";
import { getTxRequest } from "./requests.js";
import { haltChain, heldGauge, resumeChain } from "./testing/chainHalt.js";
import { waitFor } from "./testing/harness.js";
import { readStoredDeploy, storeKilledDeploy } from "./testing/killedDeploy.js";
import { moreCalls, type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest, TEST_CHAIN_ID } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
let dir: string;
let configFile: string;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 } } },
    proxy: startRpcProxy,
  });
  dir = mkdtempSync(path.join(tmpdir(), "signer-halted-"));
  configFile = writeChainConfig(path.join(dir, "config.json"), t.chain);
});

afterAll(async () => {
  await t?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `custody-node tx-requests held`: the requests a halted chain holds, one line each. */
async function heldList(): Promise<string[]> {
  const p = spawnCli(["tx-requests", "held"], {
    DATABASE_URL: t.ctx.db.url,
    CUSTODY_CONFIG: configFile,
    LOG_LEVEL: "silent",
  });
  const { code } = await within("custody-node tx-requests held", p.exited, 60_000);
  expect(code, p.output()).toBe(0);
  return p.output().split("\n").filter(Boolean);
}

const halt = () => haltChain(t.ctx.db.pool, TEST_CHAIN_ID);
const resume = () => resumeChain(t.ctx.db.pool, TEST_CHAIN_ID);

/** The wallet's transactions the node has, mined or pooled (anvil, not through the proxy). */
const sentBy = async (a: KmsAccount) =>
  t.client.getTransactionCount({ address: a.address, blockTag: "pending" });

/** Let the signer run at least `n` more ticks (each reads the head once). */
const ticks = (n: number) => moreCalls(t.proxy!, "eth_blockNumber", n);

const held = (wallet: Hex) => heldGauge(t.ctx.common.metrics.registry, wallet);

/** custody_signer_stall_heals_total for `wallet`, both actions. */
async function stallHeals(wallet: Hex): Promise<number> {
  const m = await t.ctx.common.metrics.registry
    .getSingleMetric("custody_signer_stall_heals_total")
    ?.get();
  return (m?.values ?? [])
    .filter((v) => v.labels.wallet === wallet.toLowerCase())
    .reduce((n, v) => n + v.value, 0);
}

async function attemptsOf(id: string): Promise<{ status: string }[]> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT status FROM custody.tx_attempts WHERE request_id = $1 ORDER BY id",
    [id],
  );
  return rows;
}

const confirmed = (id: string) =>
  waitFor(
    `${id} confirmed`,
    async () => {
      const r = await getTxRequest(t.ctx.db.pool, id);
      return r?.status === "confirmed" ? r : undefined;
    },
    { timeoutMs: 20_000 },
  );

/**
 * `id` (to be requested from `account`, whose signer runs with a short receipt grace) is signed and
 * stored but no node takes it (every send refused as node trouble, until the caller lifts the
 * intercept); the key is used from outside custody at its nonce, mined: the request goes to
 * receipt_unknown from `signed`. Returns the outside transaction's block.
 */
async function usedOutsideBeforeSent(account: KmsAccount, id: string): Promise<bigint> {
  t.proxy!.setIntercept((call) =>
    call.method === "eth_sendRawTransaction"
      ? { error: { code: -32000, message: "503 temporarily unavailable" } }
      : undefined,
  );
  await t.withdraw(id, { from: account.address });
  await waitFor("stored, unsent", async () => {
    const r = await getTxRequest(t.ctx.db.pool, id);
    return r?.status === "signed";
  });
  // The key used from outside custody at the same nonce (straight to the node): mined.
  const outside = await account.signTransaction({
    chainId: t.chain.chainId,
    type: "eip1559",
    to: account.address,
    value: 0n,
    gas: 21_000n,
    nonce: 0,
    maxFeePerGas: parseGwei("100"),
    maxPriorityFeePerGas: parseGwei("2"),
  });
  const hash = await t.rpc<Hex>("eth_sendRawTransaction", [outside]);
  const mined = await t.client.waitForTransactionReceipt({ hash });
  // No receipt of ours for a used nonce: receipt_unknown, from `signed`.
  await waitFor("receipt_unknown", async () => {
    const r = await getTxRequest(t.ctx.db.pool, id);
    return r?.status === "receipt_unknown" || r?.status === "needs_review";
  });
  return mined.blockNumber;
}

/** Waits until the tracker saw `id`'s nonce free again (event `nonce_unmined`): its status then. */
const nonceSeenFree = (id: string) =>
  waitFor("the nonce seen free again", async () => {
    const { rows } = await t.ctx.db.pool.query<{ to_status: string }>(
      "SELECT to_status FROM custody.tx_request_events WHERE request_id = $1 AND event = 'nonce_unmined'",
      [id],
    );
    return rows[0]?.to_status;
  });

describe("a halted chain", () => {
  it("leaves a pending request unsigned and waiting, and sends it once after the resume", async () => {
    const account = await t.wallet();
    await halt();
    const signer = t.run(account);
    try {
      await t.withdraw("halted-pending", { from: account.address });
      await ticks(10);
      const waiting = (await getTxRequest(t.ctx.db.pool, "halted-pending"))!;
      expect(waiting.status).toBe("pending");
      expect(waiting.nonce).toBeNull();
      expect(await attemptsOf("halted-pending")).toEqual([]);
      expect(await sentBy(account)).toBe(0);
      expect(await held(account.address)).toBe(1);

      await resume();
      const sent = await confirmed("halted-pending");
      expect(sent.nonce).toBe(0n);
      expect(await sentBy(account)).toBe(1);
      expect(await attemptsOf("halted-pending")).toEqual([{ status: "mined" }]);
      await waitFor("held gauge back to 0", async () => (await held(account.address)) === 0);
    } finally {
      await signer.stop();
      await resume();
    }
  });

  it("does not send the stored bytes of a request no node took before the halt", async () => {
    const account = await t.wallet();
    // Every send refused as node trouble: the bytes are stored, the request stays `signed`.
    t.proxy!.setIntercept((call) =>
      call.method === "eth_sendRawTransaction"
        ? { error: { code: -32000, message: "503 temporarily unavailable" } }
        : undefined,
    );
    const signer = t.run(account);
    try {
      await t.withdraw("halted-signed", { from: account.address });
      await waitFor("stored, unsent", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "halted-signed");
        return r?.status === "signed";
      });
      await halt();
      // The halt is read once per tick: a tick under way may still send; the next ones see it.
      await ticks(3);
      t.proxy!.setIntercept(undefined);
      await ticks(10);
      expect((await getTxRequest(t.ctx.db.pool, "halted-signed"))!.status).toBe("signed");
      expect(await attemptsOf("halted-signed")).toEqual([{ status: "signed" }]);
      expect(await sentBy(account)).toBe(0);
      expect(await held(account.address)).toBe(1);

      await resume();
      const sent = await confirmed("halted-signed");
      expect(sent.nonce).toBe(0n);
      expect(await sentBy(account)).toBe(1);
      expect(await attemptsOf("halted-signed")).toEqual([{ status: "mined" }]);
    } finally {
      t.proxy!.setIntercept(undefined);
      await signer.stop();
      await resume();
    }
  });

  it("does not send the stored bytes of a request no node took once its nonce, used by another transaction, is free again", async () => {
    // old code: "expected 1 to be +0" (sentBy, after the nonce was free again): the tracker moved
    // the request from receipt_unknown to `broadcast`, and the resync sent its stored bytes (no
    // node had ever taken them) while the halt was open; with only the tracker fixed, the resync
    // still sent them from receipt_unknown, in the tick before the tracker moved it.
    const account = await t.wallet();
    const id = "halted-unmined-unsent";
    const signer = t.run(account, { settings: { receiptGraceMs: 300, fullSearchIntervalMs: 300 } });
    try {
      const usedAt = await usedOutsideBeforeSent(account, id);
      await halt();
      await ticks(3);
      // A reorg takes the outside transaction out: the nonce is free again.
      await t.rpc("anvil_reorg", [Number((await t.client.getBlockNumber()) - usedAt + 1n), []]);
      expect(await sentBy(account)).toBe(0);
      // The node would now take whatever is sent: nothing may be.
      t.proxy!.setIntercept(undefined);
      await nonceSeenFree(id);
      await ticks(10);
      expect(await sentBy(account)).toBe(0);
      // No node took it: held like any request not out yet.
      expect((await getTxRequest(t.ctx.db.pool, id))!.status).toBe("signed");
      expect(await attemptsOf(id)).toEqual([{ status: "signed" }]);
      expect(await held(account.address)).toBe(1);

      await resume();
      const sent = await confirmed(id);
      expect(sent.nonce).toBe(0n);
      expect(await sentBy(account)).toBe(1);
    } finally {
      t.proxy!.setIntercept(undefined);
      await signer.stop();
      await resume();
    }
  });

  it("follows a request a node took while receipt_unknown (its nonce free again) as sent, not held as one no node has", async () => {
    const account = await t.wallet();
    const id = "unmined-taken";
    const signer = t.run(account, { settings: { receiptGraceMs: 300, fullSearchIntervalMs: 300 } });
    try {
      const usedAt = await usedOutsideBeforeSent(account, id);
      // The node pools what it is given from now on (no block mined while it is): a reorg takes
      // the outside transaction out, the nonce is free again, and the node takes what is sent.
      await t.rpc("evm_setAutomine", [false]);
      await t.rpc("anvil_reorg", [Number((await t.client.getBlockNumber()) - usedAt + 1n), []]);
      t.proxy!.setIntercept(undefined);
      // The resync sends its stored bytes from receipt_unknown (the chain is running), in the tick
      // before the tracker sees the nonce free: the node has them.
      // before the fix: expected 'signed' to be 'broadcast' (no take recorded from
      // receipt_unknown: held as a request no node has, its held gauge 1 under a halt)
      expect(await nonceSeenFree(id)).toBe("broadcast");
      expect(await sentBy(account)).toBe(1);
      expect((await getTxRequest(t.ctx.db.pool, id))!.status).toBe("broadcast");
      await halt();
      await ticks(3);
      expect(await held(account.address)).toBe(0);
      await resume();
      await t.rpc("evm_setAutomine", [true]);
      await t.rpc("evm_mine");
      expect((await confirmed(id)).nonce).toBe(0n);
      expect(await sentBy(account)).toBe(1);
    } finally {
      await t.rpc("evm_setAutomine", [true]);
      t.proxy!.setIntercept(undefined);
      await signer.stop();
      await resume();
    }
  });

  it("does not send or replace a request whose only sends a node refused as underpriced", async () => {
    const account = await t.wallet();
    // Every send refused for its fees: the node takes nothing; the bump stage re-signs each pass.
    t.proxy!.setIntercept((call) =>
      call.method === "eth_sendRawTransaction"
        ? { error: { code: -32000, message: "transaction underpriced" } }
        : undefined,
    );
    // The stall stage resends a stuck lowest nonce's bytes (here 400 ms after its last send, once
    // the halt is seen): it must hold them as well.
    const signer = t.run(account, { settings: { stallResendMs: 400 } });
    try {
      await t.withdraw("halted-underpriced", { from: account.address });
      await waitFor("a send refused as underpriced", async () => {
        const { rows } = await t.ctx.db.pool.query(
          "SELECT 1 FROM custody.tx_attempts WHERE request_id = $1 AND last_error_class = 'underpriced'",
          ["halted-underpriced"],
        );
        return rows.length > 0;
      });
      await halt();
      // The halt is read once per tick: a tick under way may still bump; the next ones see it.
      await ticks(3);
      const before = (await attemptsOf("halted-underpriced")).length;
      const tried = t.proxy!.calls("eth_sendRawTransaction");
      const heals = await stallHeals(account.address);
      // The node would now take whatever is sent: nothing may be, nor signed.
      t.proxy!.setIntercept(undefined);
      await ticks(30);
      expect(await sentBy(account)).toBe(0);
      expect(t.proxy!.calls("eth_sendRawTransaction")).toBe(tried);
      // Nor does the stall stage count (or log) a heal it does not attempt.
      expect(await stallHeals(account.address)).toBe(heals);
      expect(await attemptsOf("halted-underpriced")).toHaveLength(before);
      // No node took it: it is held like any request not out yet (callers see `signing`).
      expect((await getTxRequest(t.ctx.db.pool, "halted-underpriced"))!.status).toBe("signed");
      expect(await held(account.address)).toBe(1);
      // The operator sees which requests wait, not only how many.
      expect(await heldList()).toEqual([
        expect.stringMatching(
          new RegExp(
            `^halted-underpriced\tsigned\tchain ${TEST_CHAIN_ID}\t${account.address.toLowerCase()}\tnonce 0\t`,
          ),
        ),
      ]);

      await resume();
      const sent = await confirmed("halted-underpriced");
      expect(sent.nonce).toBe(0n);
      expect(await sentBy(account)).toBe(1);
    } finally {
      t.proxy!.setIntercept(undefined);
      await signer.stop();
      await resume();
    }
  });

  it("does not cancel the nonce of a request no node took: the cancel goes out after the resume", async () => {
    const account = await t.wallet();
    // Every send refused for good: the payment, then each cancel of its nonce (the nonce stage's
    // job, retried after a backoff), is `rejected`; no node takes anything.
    t.proxy!.setIntercept((call) =>
      call.method === "eth_sendRawTransaction"
        ? { error: { code: -32000, message: "intrinsic gas too low" } }
        : undefined,
    );
    const signer = t.run(account, {
      settings: { cancelBackoffMs: 200, maxCancelBackoffMs: 400, maxCancelAttempts: 1_000 },
    });
    try {
      await t.withdraw("halted-dead", { from: account.address });
      await waitFor("a cancel of its nonce refused", async () => {
        const { rows } = await t.ctx.db.pool.query(
          "SELECT 1 FROM custody.tx_attempts WHERE request_id = $1 AND purpose = 'cancel'",
          ["halted-dead"],
        );
        return rows.length > 0;
      });
      await halt();
      // The halt is read once per tick: a tick under way may still cancel; the next ones see it.
      await ticks(3);
      const before = (await attemptsOf("halted-dead")).length;
      // The node would now take whatever is sent: over several cancel backoffs, nothing may be
      // signed or sent.
      t.proxy!.setIntercept(undefined);
      const since = Date.now();
      await ticks(20);
      await waitFor("two maximum cancel backoffs", async () => Date.now() - since >= 800);
      await ticks(3);
      expect(await sentBy(account)).toBe(0);
      expect(await attemptsOf("halted-dead")).toHaveLength(before);
      expect((await getTxRequest(t.ctx.db.pool, "halted-dead"))!.status).toBe("signed");
      expect(await held(account.address)).toBe(1);

      await resume();
      await waitFor(
        "its cancel mined after the resume",
        async () => {
          const { rows } = await t.ctx.db.pool.query(
            "SELECT 1 FROM custody.tx_attempts WHERE request_id = $1 AND purpose = 'cancel' AND status = 'mined'",
            ["halted-dead"],
          );
          return rows.length > 0;
        },
        { timeoutMs: 20_000 },
      );
      expect(await sentBy(account)).toBe(1);
    } finally {
      t.proxy!.setIntercept(undefined);
      await signer.stop();
      await resume();
    }
  });

  for (const decision of ["fail", "retry"] as const)
    it(`an operator's ${decision} of a request no node took, made while halted, sends no cancel until the resume; then its nonce is used`, async () => {
      const account = await t.wallet();
      const id = `halted-review-${decision}`;
      // Every send refused for good: the payment, then its cancels (budget 2): needs_review.
      t.proxy!.setIntercept((call) =>
        call.method === "eth_sendRawTransaction"
          ? { error: { code: -32000, message: "intrinsic gas too low" } }
          : undefined,
      );
      const signer = t.run(account, {
        settings: { cancelBackoffMs: 200, maxCancelBackoffMs: 400, maxCancelAttempts: 2 },
      });
      try {
        await t.withdraw(id, { from: account.address });
        await waitFor("needs_review", async () => {
          const r = await getTxRequest(t.ctx.db.pool, id);
          return r?.status === "needs_review";
        });
        await halt();
        await ticks(3);
        // The operator decides while the chain is halted (`tx-requests fail|retry`).
        const d = { requestId: id, by: "ops", reason: "test: decided during a halt" };
        const decided =
          decision === "fail"
            ? await failTxRequestByOperator(t.ctx.db.pool, d, nonceEvidenceFromChains([t.chain]))
            : await retryTxRequestByOperator(t.ctx.db.pool, d);
        expect(decided.from).toBe("needs_review");
        const before = (await attemptsOf(id)).length;
        // The node would now take whatever is sent: over several cancel backoffs, nothing may be
        // signed or sent (a cancel is new bytes: its gas and the nonce, on a halted chain).
        t.proxy!.setIntercept(undefined);
        const since = Date.now();
        await ticks(20);
        await waitFor("two maximum cancel backoffs", async () => Date.now() - since >= 800);
        await ticks(3);
        expect(await sentBy(account)).toBe(0);
        expect(await attemptsOf(id)).toHaveLength(before);
        // Held like any request no node has taken: counted and listed as such.
        expect((await getTxRequest(t.ctx.db.pool, id))!.status).toBe("signed");
        expect(await held(account.address)).toBe(1);

        await resume();
        // After the resume its nonce is used by a cancel, so the wallet's later nonces are free.
        await waitFor(
          "its cancel mined after the resume",
          async () => {
            const { rows } = await t.ctx.db.pool.query(
              "SELECT 1 FROM custody.tx_attempts WHERE request_id = $1 AND purpose = 'cancel' AND status = 'mined'",
              [id],
            );
            return rows.length > 0;
          },
          { timeoutMs: 20_000 },
        );
        expect(await sentBy(account)).toBe(1);
        expect((await getTxRequest(t.ctx.db.pool, id))!.status).not.toBe("signed");
        await waitFor("held gauge back to 0", async () => (await held(account.address)) === 0);
      } finally {
        t.proxy!.setIntercept(undefined);
        await signer.stop();
        await resume();
      }
    });

  it("keeps bumping a request a node took before the halt, even after its resend is refused as underpriced", async () => {
    const account = await t.wallet();
    await t.rpc("evm_setAutomine", [false]);
    const signer = t.run(account, { chain: { ...t.chain, bumpIntervalMs: 300 } });
    const sends = async () =>
      (
        await t.ctx.db.pool.query(
          "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = $1 AND purpose = 'send'",
          ["halted-taken"],
        )
      ).rows[0].n as number;
    try {
      await t.withdraw("halted-taken", { from: account.address });
      await waitFor("taken", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "halted-taken");
        return r?.status === "broadcast";
      });
      await halt();
      await ticks(3);
      // The node now refuses what it is sent as underpriced: the request was taken all the same.
      t.proxy!.setIntercept((call) =>
        call.method === "eth_sendRawTransaction"
          ? { error: { code: -32000, message: "transaction underpriced" } }
          : undefined,
      );
      const seen = await sends();
      await waitFor("bumped while halted", async () => (await sends()) > seen + 1);
      t.proxy!.setIntercept(undefined);
      await t.rpc("evm_mine", []);
      await t.rpc("evm_mine", []);
      const out = await confirmed("halted-taken");
      expect(out.nonce).toBe(0n);
      expect(await held(account.address)).toBe(0);
    } finally {
      t.proxy!.setIntercept(undefined);
      await t.rpc("evm_setAutomine", [true]);
      await signer.stop();
      await resume();
    }
  });

  it("keeps following what was already sent: a request broadcast before the halt is confirmed", async () => {
    const account = await t.wallet();
    await t.rpc("evm_setAutomine", [false]);
    const signer = t.run(account);
    try {
      await t.withdraw("halted-out", { from: account.address });
      await waitFor("broadcast", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "halted-out");
        return r?.status === "broadcast";
      });
      await halt();
      await t.rpc("evm_mine", []);
      await t.rpc("evm_mine", []);
      const out = await confirmed("halted-out");
      expect(out.nonce).toBe(0n);
      expect(await held(account.address)).toBe(0);
    } finally {
      await t.rpc("evm_setAutomine", [true]);
      await signer.stop();
      await resume();
    }
  });

  it("does not send the stored bytes of a CLI deploy no node took before the halt; sends them once resumed", async () => {
    const account = await t.wallet();
    const first = await sentBy(account);
    // `contracts deploy` killed after storing its signed bytes, before sending them (before the halt).
    expect(await storeKilledDeploy(t, account, "HaltedDeploy")).toMatchObject({ status: "signed" });
    const stored = () => readStoredDeploy(t.ctx.db.pool, account.address, "HaltedDeploy");
    await halt();
    const signer = t.run(account);
    try {
      await ticks(20);
      expect(await sentBy(account)).toBe(first);
      expect(await stored()).toMatchObject({ status: "signed" });

      await resume();
      // Mined (the node counts it) and then recorded as sent (after the node's answer).
      await waitFor(
        "the stored deploy sent",
        async () => (await sentBy(account)) > first && (await stored()).status === "broadcast",
        { timeoutMs: 20_000 },
      );
      const receipt = await t.client.getTransactionReceipt({ hash: (await stored()).txHash });
      expect(receipt.status).toBe("success");
      expect(await sentBy(account)).toBe(first + 1);
    } finally {
      await signer.stop();
    }
  });
});
