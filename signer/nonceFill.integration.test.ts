/**
 * A hot wallet wedged behind a nonce that nothing holds (the key used outside custody, that
 * transaction dropped: `nonce_gap`) is unblocked by an operator: `custody-node tx-requests
 * fill-nonce`, as a real process, stores an audited `nonce_fill` request at that nonce; the signer
 * signs a 0-value transfer of the wallet to itself there and follows it to final, and the
 * withdrawal queued behind it goes out. Refused (nothing changed) while a node holds a
 * transaction at the nonce in its pool, when a node does not answer or lags the best head, on a
 * halted chain, for a nonce used on chain, for one a request of ours holds, and at or above the
 * wallet's next nonce. Real anvil, Postgres, KMS emulator; a proxy for the unanswering node.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Hex, parseGwei } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../chains/index.js";
import { setPublishedFinalized } from "../indexers/testing/chain.js";
import { startTreasuryTest } from "../ledger/testing/treasury.js";
import { bookTreasuryMove } from "../ledger/treasury.js";
import { spawnCli, writeChainConfig } from "../ops/testing/process.js";
import { within } from "../ops/testing/wait.js";
import type { KmsAccount } from "./kmsAccount.js";
import { nonceUnusedFromChains } from "./nonceEvidence.js";
import { fillNonceByOperator } from "./operator.js";
import { getTxOutcomes } from "./outcomes.js";
import { getTxRequest } from "./requests.js";
import { haltChain, resumeChain } from "./testing/chainHalt.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

const RULES = { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 3 } as const;
let t: SignerTest<RpcProxy>;
let dir: string;
let configFile: string;

beforeAll(async () => {
  t = await startSignerTest({ chain: { config: RULES }, proxy: startRpcProxy });
  dir = mkdtempSync(path.join(tmpdir(), "signer-fill-"));
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

const rpc = (method: string, params: unknown[] = []) =>
  t.client.request({ method: method as never, params: params as never });
const automine = (on: boolean) => rpc("evm_setAutomine", [on]);
const mined = (address: Hex) => t.client.getTransactionCount({ address });

/** A transaction of the wallet's key the signer never stored (the key used outside custody). */
async function sendOutside(account: KmsAccount, nonce: number): Promise<Hex> {
  const raw = await account.signTransaction({
    chainId: t.chain.chainId,
    type: "eip1559",
    to: account.address,
    value: 0n,
    gas: 21_000n,
    nonce,
    maxFeePerGas: parseGwei("100"),
    maxPriorityFeePerGas: parseGwei("1"),
  });
  return t.client.sendRawTransaction({ serializedTransaction: raw });
}

/** The operator's fill of `from`'s `nonce` as the CLI makes it, checked on `chain`'s nodes (default: the signer's). */
const fill = (from: Hex, nonce: bigint, chain: ChainConfig = t.chain) =>
  fillNonceByOperator(
    t.ctx.db.pool,
    {
      chainId: t.chain.chainId,
      from,
      nonce,
      by: "alice",
      reason: "key used outside custody; its tx dropped",
    },
    nonceUnusedFromChains([chain]),
  );

/** Waits until request `id` is `status`; returns it. */
const untilStatus = (id: string, status: string) =>
  waitFor(`${id} ${status}`, async () => {
    const r = await getTxRequest(t.ctx.db.pool, id);
    return r?.status === status ? r : undefined;
  });

/** A new funded wallet: its key, its address (lowercase) and its next nonce. */
async function freshWallet(): Promise<{ account: KmsAccount; from: Hex; first: number }> {
  const account = await t.wallet();
  return {
    account,
    from: account.address.toLowerCase() as Hex,
    first: await mined(account.address),
  };
}

/**
 * A new wallet wedged behind a hole at its first nonce: the key used outside custody there, while a
 * signer (then stopped) sent withdrawal `id` above it, and the outside transaction dropped.
 */
async function wedgedWallet(
  id: string,
): Promise<{ account: KmsAccount; from: Hex; first: number }> {
  const wallet = await freshWallet();
  const { account, first } = wallet;
  await automine(false);
  try {
    const outside = await sendOutside(account, first);
    // A stored request above it, as a signer started meanwhile would give.
    const signer = t.run(account);
    try {
      await t.withdraw([id], { from: account.address });
      await untilStatus(id, "broadcast");
    } finally {
      await signer.stop();
    }
    await rpc("anvil_dropTransaction", [outside]);
  } finally {
    await automine(true);
  }
  return wallet;
}

async function refusal(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e as { code?: string; message: string },
  );
  expect(error, "refused").toBeDefined();
  return error!;
}

const fillRequests = async (from: string) =>
  (
    await t.ctx.db.pool.query(
      "SELECT id, status FROM custody.tx_requests WHERE kind = 'nonce_fill' AND from_address = $1",
      [from.toLowerCase()],
    )
  ).rows;

describe("an operator fills a nonce held by nothing", () => {
  // old code: TypeError: nonceUnusedFromChains is not a function (and `custody-node tx-requests
  // fill-nonce` printed the tx-requests help: no such command): no tool unblocked a wedged wallet.
  // With only ledger/treasury.ts old: TreasuryMoveError: treasury gas 0x… cannot be booked: … was
  // sent by the custody's signer for tx request nonce_fill:…: its flow books it (no flow does).
  it("a wedged wallet: refused while a node holds the outside transaction, a node lags or is silent, or the chain is halted; then filled by the CLI, the queued withdrawal goes out and the fill is final", async () => {
    const { account, from, first } = await freshWallet();
    await automine(false);
    const signer = t.run(account, { settings: { stallResendMs: 300 } });
    try {
      const outside = await sendOutside(account, first);
      await t.withdraw(["fill-queued"], { from: account.address });
      await untilStatus("fill-queued", "broadcast");
      expect((await getTxRequest(t.ctx.db.pool, "fill-queued"))!.nonce).toBe(BigInt(first) + 1n);

      // The outside transaction is in the node's pool: it may still mine, nothing is filled.
      const pooled = await refusal(fill(from, BigInt(first)));
      expect(pooled.code).toBe("SIGNER_NONCE_IN_USE");
      expect(pooled.message).toContain("pool");

      // The node drops it: the wallet is wedged behind the hole.
      await rpc("anvil_dropTransaction", [outside]);
      await automine(true);
      await rpc("evm_mine");
      await waitFor(
        "nonce_gap raised",
        async () => (await t.alertCount("nonce_gap", account.address)) >= 1,
      );
      expect(await mined(account.address)).toBe(first);
      expect((await getTxRequest(t.ctx.db.pool, "fill-queued"))!.status).toBe("broadcast");

      // A node that does not answer, or answers from behind the best head, refuses.
      const anvil = t.ctx.config.chains[0]!.rpcUrls[0]!;
      const twoNodes = { ...t.chain, rpcUrls: [anvil, t.proxy!.url] };
      t.proxy!.setIntercept((call) =>
        call.method === "eth_getTransactionCount"
          ? { error: { code: -32603, message: "header not found" } }
          : undefined,
      );
      const silent = await refusal(fill(from, BigInt(first), twoNodes));
      expect(silent.code).toBe("SIGNER_CHAIN_CHECK_UNAVAILABLE");
      const head = await t.client.getBlockNumber();
      t.proxy!.setIntercept((call) =>
        call.method === "eth_blockNumber" ? { result: `0x${(head - 1n).toString(16)}` } : undefined,
      );
      const lagging = await refusal(fill(from, BigInt(first), twoNodes));
      expect(lagging.code).toBe("SIGNER_CHAIN_CHECK_UNAVAILABLE");
      expect(lagging.message).toContain("behind the best head");
      // A block behind for one answer only (heads arrive apart): read again, it has caught up.
      let lagOnce = true;
      t.proxy!.setIntercept((call) => {
        if (call.method !== "eth_blockNumber" || !lagOnce) return undefined;
        lagOnce = false;
        return { result: `0x${(head - 1n).toString(16)}` };
      });
      // before the fix: ChainEvidenceUnavailableError: … is at block 0, behind the best head 1:
      // its counts are as of an older block (SIGNER_CHAIN_CHECK_UNAVAILABLE, retryable)
      const caughtUp = await nonceUnusedFromChains([twoNodes])({
        chainId: t.chain.chainId,
        from,
        nonce: BigInt(first),
      });
      expect(lagOnce).toBe(false);
      expect(new Set(caughtUp.map((v) => v.head)).size).toBe(1);
      t.proxy!.setIntercept(undefined);

      // A halted chain: nothing new leaves the wallet.
      await haltChain(t.ctx.db.pool, t.chain.chainId);
      try {
        const halted = await refusal(fill(from, BigInt(first)));
        expect(halted.code).toBe("SIGNER_CHAIN_HALTED");
      } finally {
        await resumeChain(t.ctx.db.pool, t.chain.chainId);
      }
      expect(await fillRequests(from)).toEqual([]);

      // The operator fills it, by the CLI.
      const p = spawnCli(
        [
          "tx-requests",
          "fill-nonce",
          "--chain",
          t.chain.key,
          "--wallet",
          account.address,
          "--nonce",
          String(first),
          "--by",
          "alice",
          "--reason",
          "key used outside custody (CloudTrail); its tx dropped",
        ],
        { DATABASE_URL: t.ctx.db.url, CUSTODY_CONFIG: configFile, LOG_LEVEL: "silent" },
      );
      const { code } = await within("custody-node tx-requests fill-nonce", p.exited, 60_000);
      expect(code, p.output()).toBe(0);
      expect(p.output()).toContain(`filling nonce ${first} of ${from}`);
      const fills = await fillRequests(from);
      expect(fills).toHaveLength(1);
      const fillId = fills[0].id as string;

      // The signer signs it at the nonce; the queued withdrawal goes out behind it; both final.
      const outcomes = await waitFor("both finalized", async () => {
        const os = await getTxOutcomes(t.ctx.db.pool, { requestIds: ["fill-queued", fillId] });
        if (os.length === 2 && os.every((o) => o.status === "finalized")) return os;
        await rpc("evm_mine");
        return undefined;
      });
      const queued = outcomes.find((o) => o.requestId === "fill-queued")!;
      const filled = outcomes.find((o) => o.requestId === fillId)!;
      expect(filled).toMatchObject({
        nonce: BigInt(first),
        to: from,
        value: 0n,
        kind: "nonce_fill",
      });
      expect(queued.nonce).toBe(BigInt(first) + 1n);
      const tx = await t.client.getTransaction({ hash: filled.txHash! });
      expect(tx).toMatchObject({ nonce: first, value: 0n });
      expect(tx.to?.toLowerCase()).toBe(from);
      expect(await mined(account.address)).toBeGreaterThanOrEqual(first + 2);

      // Audited: who, why, and what every node showed.
      const { rows: audit } = await t.ctx.db.pool.query(
        `SELECT from_status, to_status, event, actor, reason, details FROM custody.tx_request_events
          WHERE request_id = $1 ORDER BY id`,
        [fillId],
      );
      expect(audit[0]).toMatchObject({
        from_status: null,
        to_status: "pending",
        event: "operator_nonce_fill",
        actor: "operator:alice",
        reason: "key used outside custody (CloudTrail); its tx dropped",
        details: {
          nonce: String(first),
          chain_check: [{ mined_count: String(first), pending_count: String(first) }],
        },
      });
      expect(audit.map((a) => a.event)).toContain("nonce_fill_signed");

      // No flow books its gas: the operator's, as `treasury gas` books it; nothing else of it.
      const treasury = await startTreasuryTest(t.ctx, from);
      try {
        await treasury.fact({
          tx: filled.txHash!,
          position: "fee",
          kind: "fee",
          from,
          to: "0x0000000000000000000000000000000000000000",
          amount: filled.fee!,
        });
        const move = {
          chainId: t.chain.chainId,
          wallet: from,
          txHash: filled.txHash!,
          by: "alice",
        };
        const booked = await bookTreasuryMove(treasury.deps, {
          ...move,
          move: "gas",
          reason: "gas of the nonce fill",
        });
        expect(booked.move).toBe("gas");
        await expect(
          bookTreasuryMove(treasury.deps, { ...move, move: "defund", amount: 1n, reason: "no" }),
        ).rejects.toMatchObject({ code: "TREASURY_MOVE_REFUSED" });
      } finally {
        await treasury.close();
      }

      // A repeat answers the fill there is, and changes nothing.
      const again = await fill(from, BigInt(first));
      expect(again).toMatchObject({ requestId: fillId, repeated: true });
      expect(await fillRequests(from)).toHaveLength(1);
    } finally {
      t.proxy!.setIntercept(undefined);
      await automine(true);
      await signer.stop();
    }
  });

  it("refused for a nonce used on chain, one a request of ours holds, and one at or above the wallet's next", async () => {
    const { account, from, first } = await freshWallet();
    // The key used outside custody, and that transaction mined: no gap.
    await t.client.waitForTransactionReceipt({ hash: await sendOutside(account, first) });
    expect(await mined(account.address)).toBe(first + 1);
    const signer = t.run(account);
    try {
      await t.withdraw(["fill-used"], { from: account.address });
      await untilStatus("fill-used", "confirmed");
    } finally {
      await signer.stop();
    }
    expect((await getTxRequest(t.ctx.db.pool, "fill-used"))!.nonce).toBe(BigInt(first) + 1n);

    const used = await refusal(fill(from, BigInt(first)));
    expect(used.code).toBe("SIGNER_NONCE_IN_USE");
    const held = await refusal(fill(from, BigInt(first) + 1n));
    expect(held.code).toBe("SIGNER_NONCE_HELD");
    expect(held.message).toContain("fill-used");
    const above = await refusal(fill(from, BigInt(first) + 2n));
    expect(above.code).toBe("SIGNER_NONCE_NOT_A_GAP");
    expect(await fillRequests(from)).toEqual([]);
  });

  it("a fill whose nonce the chain used before the signer signed it fails unsigned, paying nothing", async () => {
    const { account, from, first } = await wedgedWallet("fill-late");
    // The signer is stopped: the operator's fill waits for it.
    const out = await fill(from, BigInt(first));
    expect(out.repeated).toBe(false);
    // Meanwhile the outside transaction is sent again and mines.
    await t.client.waitForTransactionReceipt({ hash: await sendOutside(account, first) });
    expect(await mined(account.address)).toBeGreaterThan(first);
    const signer = t.run(account);
    try {
      await untilStatus(out.requestId, "failed");
      const r = (await getTxRequest(t.ctx.db.pool, out.requestId))!;
      expect(r).toMatchObject({ errorCode: "NONCE_FILL_USED", nonce: null });
      const { rows } = await t.ctx.db.pool.query(
        "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = $1",
        [out.requestId],
      );
      expect(rows[0].n).toBe(0);
      await untilStatus("fill-late", "confirmed");
    } finally {
      await signer.stop();
    }
  });

  it("a fill signed at its nonce that the outside transaction then used at a final block ends failed by itself (NONCE_FILL_USED), without a review", async () => {
    // old code: "expected 'needs_review' to be 'failed'": the fill went receipt_unknown ->
    // needs_review (NONCE_CONSUMED_NO_KNOWN_ATTEMPT, alerted) and waited for `tx-requests fail`.
    const { account, from, first } = await wedgedWallet("fill-signed-late");
    const out = await fill(from, BigInt(first));
    // Every send through the signer's node refused as node trouble: the fill is signed and
    // stored, never taken.
    t.proxy!.setIntercept((call) =>
      call.method === "eth_sendRawTransaction"
        ? { error: { code: -32000, message: "503 temporarily unavailable" } }
        : undefined,
    );
    const signer = t.run(account, { settings: { receiptGraceMs: 300, fullSearchIntervalMs: 300 } });
    try {
      await untilStatus(out.requestId, "signed");
      // The outside transaction is sent again (straight to the node) and mines at the nonce.
      const used = await sendOutside(account, first);
      const receipt = await t.client.waitForTransactionReceipt({ hash: used });
      // Final by the signer's count, but the indexer has published no final block at or above
      // it: no evidence yet, so the fill waits (neither failed nor in review).
      await rpc("anvil_mine", ["0x5"]);
      await untilStatus(out.requestId, "receipt_unknown");
      await new Promise((r) => setTimeout(r, 1_500));
      expect((await getTxRequest(t.ctx.db.pool, out.requestId))!.status).toBe("receipt_unknown");
      // Blocks on top, the indexer publishing its final block as it goes.
      const end = await waitFor("the fill failed or in review", async () => {
        const r = await getTxRequest(t.ctx.db.pool, out.requestId);
        if (r?.status === "failed" || r?.status === "needs_review") return r;
        await rpc("evm_mine");
        const head = await t.client.getBlockNumber();
        await setPublishedFinalized(
          t.ctx.db.pool,
          t.chain.chainId,
          await t.client.getBlock({ blockNumber: head - 2n }),
        );
        return undefined;
      });
      expect(end.status).toBe("failed");
      expect(end).toMatchObject({ errorCode: "NONCE_FILL_USED", nonce: BigInt(first) });
      const { rows } = await t.ctx.db.pool.query(
        "SELECT from_status, to_status, event, details FROM custody.tx_request_events WHERE request_id = $1 AND event <> 'operator_nonce_fill' ORDER BY id",
        [out.requestId],
      );
      expect(rows.map((e) => [e.from_status, e.to_status, e.event])).toEqual([
        ["pending", "signed", "nonce_fill_signed"],
        ["signed", "receipt_unknown", "receipt_unknown"],
        ["receipt_unknown", "failed", "nonce_fill_used"],
      ]);
      expect(rows[2].details).toMatchObject({
        used_by: used.toLowerCase(),
        block_number: String(receipt.blockNumber),
      });
      expect(await t.alertCount("needs_review", account.address)).toBe(0);
      // The withdrawal behind it goes out.
      t.proxy!.setIntercept(undefined);
      await waitFor("the withdrawal confirmed", async () => {
        const w = await getTxRequest(t.ctx.db.pool, "fill-signed-late");
        if (w?.status === "mined") await rpc("evm_mine");
        return w?.status === "confirmed" ? w : undefined;
      });
    } finally {
      t.proxy!.setIntercept(undefined);
      await signer.stop();
    }
  });
});
