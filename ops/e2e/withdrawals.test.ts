/**
 * End to end on anvil: the whole service (every role, started as in production) with the KMS
 * emulator; deposits credited, a withdrawal under the threshold, one with two approvals (both
 * signed by KMS, sent and confirmed), one rejected with its hold voided; then the ledger and the
 * chain agree.
 */

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  createPublicClient,
  createWalletClient,
  formatEther,
  getAddress,
  http,
  parseEther,
} from "viem";
import { mnemonicToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../api/apiKeys.js";
import { verifyWebhook } from "../../api/webhooks/signature.js";
import { adapterPerChain } from "../../chains/index.js";
import { ROLE_NAMES } from "../../foundation/roles.js";
import { createReconciler } from "../../ledger/recon/index.js";
import { TX_OUTCOMES_QUEUE } from "../../signer/index.js";
import { type KmsEmulator, startKmsEmulator } from "../../signer/kms-emulator/server.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { runScenario } from "../devstack/scenario.js";
import { type Service, startService } from "../start.js";
import { createTestContext, type TestContext } from "../testing/context.js";
import { waitFor } from "../testing/wait.js";
import { prepareTestCustody } from "./setup.js";

let ctx: TestContext;
let kms: KmsEmulator;
let service: Service | undefined;
let hookServer: Server;
let hookUrl: string;
/** What the exchange's webhook endpoint received, with the signature checked on arrival. */
const hooks: { id: string; type: string; valid: boolean; data: Record<string, unknown> }[] = [];

beforeAll(async () => {
  hookServer = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      const parsed = JSON.parse(body) as {
        id: string;
        type: string;
        data: Record<string, unknown>;
      };
      hooks.push({
        id: parsed.id,
        type: parsed.type,
        data: parsed.data,
        valid: verifyWebhook({
          secret: "e2e-hook-secret",
          id: String(req.headers["webhook-id"]),
          timestamp: Number(req.headers["webhook-timestamp"]),
          body,
          signature: String(req.headers["webhook-signature"]),
        }),
      });
      res.statusCode = 200;
      res.end();
    });
  });
  await new Promise<void>((r) => hookServer.listen(0, "127.0.0.1", r));
  hookUrl = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/hooks`;
  ctx = await createTestContext({
    chains: [
      { chainId: 31337, key: "local-a", config: { confirmations: { kind: "blocks", blocks: 2 } } },
    ],
  });
  kms = await startKmsEmulator();
});
afterAll(async () => {
  await service?.stop();
  await kms?.stop();
  await ctx?.cleanup();
  await new Promise((r) => hookServer?.close(r));
});

describe("withdrawals end to end", () => {
  it("credits deposits, confirms approved withdrawals, voids rejected and failed ones", async () => {
    const chain = ctx.config.chains[0]!;
    const prepared = await prepareTestCustody(ctx, kms);
    const config = Object.freeze({
      ...prepared.config,
      webhooks: [{ url: hookUrl, secretEnv: "E2E_HOOK", events: ["*"] }],
      webhookSecrets: { E2E_HOOK: "e2e-hook-secret" },
    });
    service = await startService(config, { roles: [...ROLE_NAMES] });
    const rpc = async (method: string, params: unknown[] = []) =>
      fetch(chain.rpcUrls[0]!, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      });
    const result = await runScenario({
      url: service.url,
      pool: ctx.db.pool,
      chain,
      hotWallet: prepared.hotWallet,
      tick: async () => {
        await rpc("evm_mine");
      },
      timeoutMs: 90_000,
    });

    expect(["confirmed", "finalized"]).toContain(result.withdrawals.small.status);
    expect(result.withdrawals.small).toMatchObject({ requiredApprovals: 0 });
    expect(["confirmed", "finalized"]).toContain(result.withdrawals.approved.status);
    expect(result.withdrawals.approved).toMatchObject({ requiredApprovals: 2 });
    // Followed to the chain's finality rule: both end `finalized` (terminal) as blocks are mined.
    const statusOf = async (id: unknown) =>
      (
        await ctx.db.pool.query<{ status: string }>(
          "SELECT status FROM api.withdrawals WHERE id = $1",
          [id],
        )
      ).rows[0]?.status;
    for (const w of [result.withdrawals.small, result.withdrawals.approved]) {
      const deadline = Date.now() + 60_000;
      while ((await statusOf(w.id)) !== "finalized") {
        if (Date.now() > deadline)
          throw new Error(`withdrawal ${String(w.id)} not finalized: ${await statusOf(w.id)}`);
        await rpc("evm_mine");
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    expect((result.withdrawals.approved.approvals as unknown[]).length).toBe(2);
    expect(result.withdrawals.rejected).toMatchObject({ status: "rejected" });
    // the chain: exactly the two confirmed withdrawals left the custody
    expect(formatEther(result.external.after - result.external.before)).toBe("2.5");
    // the ledger: alice 5 - 0.5 - 2, nothing held; bob untouched by the rejected 1.5
    expect(result.balances.alice).toMatchObject({
      posted: parseEther("2.5").toString(),
      pending: "0",
      available: parseEther("2.5").toString(),
    });
    expect(result.balances.bob).toMatchObject({
      posted: parseEther("3").toString(),
      pending: "0",
    });
    // gas was booked to fees:gas for each confirmed withdrawal: once, for what its receipt paid
    const chainReader = createPublicClient({ transport: http(chain.rpcUrls[0]) });
    const expectGasBooked = async (withdrawalId: unknown) => {
      const { rows: tx } = await ctx.db.pool.query<{ tx_hash: `0x${string}` }>(
        "SELECT tx_hash FROM api.withdrawals WHERE id = $1",
        [withdrawalId],
      );
      const receipt = await chainReader.getTransactionReceipt({ hash: tx[0]!.tx_hash });
      const { rows: fees } = await ctx.db.pool.query<{ amount: bigint }>(
        `SELECT amount FROM ledger.transfers
          WHERE kind = 'fee' AND tx_hash = $1 AND type IN ('single', 'post')
            AND debit_account_id = (SELECT id FROM ledger.accounts WHERE name = 'fees:gas' AND asset_id = $2)`,
        [
          tx[0]!.tx_hash.toLowerCase(),
          `${chain.chainId}:0x0000000000000000000000000000000000000000`,
        ],
      );
      expect(fees.map((f) => f.amount)).toEqual([receipt.gasUsed * receipt.effectiveGasPrice]);
      return receipt;
    };
    for (const w of [result.withdrawals.small, result.withdrawals.approved]) {
      expect((await expectGasBooked(w.id)).status).toBe("success");
    }
    // every state change of the approved withdrawal is in the audit log, in order
    const audit = await ctx.db.pool.query(
      "SELECT action, actor FROM audit.audit_log WHERE entity_id = $1 ORDER BY id",
      [result.withdrawals.approved.id],
    );
    expect(audit.rows.map((r) => r.action)).toEqual([
      "withdrawal.requested",
      "withdrawal.pending_approval",
      "withdrawal.approved_by",
      "withdrawal.approved_by",
      "withdrawal.approved",
      "withdrawal.signing",
      "withdrawal.broadcast",
      "withdrawal.confirmed",
      "withdrawal.finalized",
    ]);
    // and the rejection: who rejected it, then the state change
    const rejectedAudit = await ctx.db.pool.query(
      "SELECT action FROM audit.audit_log WHERE entity_id = $1 ORDER BY id",
      [result.withdrawals.rejected.id],
    );
    expect(rejectedAudit.rows.map((r) => r.action)).toEqual(
      expect.arrayContaining(["withdrawal.rejected_by", "withdrawal.rejected"]),
    );

    // A withdrawal the chain refuses (a contract that reverts on any call): it fails, the hold is
    // voided, alice's balance is whole again, and the failure is audited and announced.
    const deployer = createWalletClient({
      account: mnemonicToAccount("test test test test test test test test test test test junk", {
        addressIndex: 3,
      }),
      transport: http(chain.rpcUrls[0]),
    });
    const reader = createPublicClient({ transport: http(chain.rpcUrls[0]) });
    const hash = await deployer.deployContract({
      chain: null,
      abi: [],
      // runtime PUSH1 0 PUSH1 0 REVERT, returned by a 12-byte constructor
      bytecode: "0x6005600c60003960056000f360006000fd",
    });
    const reverter = getAddress(
      (await reader.waitForTransactionReceipt({ hash })).contractAddress!,
    );
    const backend = (
      await createApiKey(ctx.db.pool, {
        owner: "backend-2",
        scopes: ["withdrawals:write", "ledger:read"],
      })
    ).plaintext;
    const call = async (method: string, path: string, body?: object) => {
      const res = await fetch(`${service!.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${backend}`,
          ...(body
            ? { "content-type": "application/json", "idempotency-key": `fail-${path}` }
            : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return (await res.json()) as Record<string, unknown>;
    };
    const w = await call("POST", "/v1/withdrawals", {
      customerId: "alice",
      chain: chain.key,
      asset: "native",
      to: reverter,
      amount: parseEther("0.1").toString(),
    });
    expect(w).toMatchObject({ status: "signing" });
    // Gas is always estimated first, and the estimate reverts: the signer refuses it before a
    // nonce is taken (ESTIMATE_REVERTED), so nothing is broadcast and the hold is voided.
    const final = await waitFor(
      "the reverting withdrawal to end",
      async () => {
        await rpc("evm_mine");
        const got = await call("GET", `/v1/withdrawals/${String(w.id)}`);
        return got.status === "failed" || got.status === "confirmed" ? got : undefined;
      },
      { timeoutMs: 120_000, everyMs: 200 },
    );
    expect(final).toMatchObject({ status: "failed" });
    expect(final.failureReason).toEqual(expect.any(String));
    expect(String(final.failureReason)).toMatch(/ESTIMATE_REVERTED/);
    const { rows: failedRow } = await ctx.db.pool.query<{
      tx_hash: string | null;
      fee: bigint | null;
    }>("SELECT tx_hash, fee FROM api.withdrawals WHERE id = $1", [w.id]);
    expect(failedRow[0]).toMatchObject({ tx_hash: null });
    expect(failedRow[0]!.fee ?? 0n).toBe(0n);
    const balances = (await call("GET", "/v1/customers/alice/balances")).balances as {
      assetId: string;
      available: string;
      pending: string;
    }[];
    expect(
      balances.find((b) => b.assetId.endsWith(":0x0000000000000000000000000000000000000000")),
    ).toMatchObject({
      available: parseEther("2.5").toString(),
      pending: "0",
    });
    const failedEvents = await ctx.db.pool.query(
      "SELECT 1 FROM api.webhook_events WHERE type = 'withdrawal.failed' AND payload->>'withdrawal_id' = $1",
      [w.id],
    );
    expect(failedEvents.rowCount).toBe(1);

    // The exchange heard about all of it, signed, once per event.
    const want = [
      "deposit.detected",
      "deposit.confirmed",
      "deposit.credited",
      "withdrawal.approved",
      "withdrawal.broadcast",
      "withdrawal.confirmed",
      "withdrawal.finalized",
      "withdrawal.rejected",
      "withdrawal.failed",
    ];
    await waitFor(
      "every kind of webhook",
      () => want.every((w) => hooks.some((h) => h.type === w)),
      { timeoutMs: 60_000, everyMs: 200 },
    );
    expect(new Set(hooks.map((h) => h.type))).toEqual(new Set(want));
    expect(hooks.every((h) => h.valid)).toBe(true);
    expect(new Set(hooks.map((h) => h.id)).size).toBe(hooks.length);
    expect(
      hooks
        .filter((h) => h.type === "deposit.credited")
        .map((h) => h.data.customer_id)
        .sort(),
    ).toEqual(["alice", "bob"]);
    expect(
      hooks
        .filter((h) => h.type === "withdrawal.confirmed")
        .map((h) => h.data.withdrawal_id)
        .sort(),
    ).toEqual([result.withdrawals.small.id, result.withdrawals.approved.id].sort());

    // Reconciliation of the whole story, read back through the API (recon:read).
    for (let i = 0; i < 4; i++) await rpc("evm_mine");
    const run = await createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common),
    }).run({
      chain,
      full: true,
    });
    const auditor = (await createApiKey(ctx.db.pool, { owner: "auditor", scopes: ["recon:read"] }))
      .plaintext;
    const get = (path: string) =>
      fetch(`${service!.url}${path}`, { headers: { authorization: `Bearer ${auditor}` } });
    const runs = (await (await get("/v1/recon/runs")).json()) as { runs: { id: number }[] };
    expect(runs.runs.map((r) => r.id)).toContain(run.runId);
    const html = await get(`/v1/recon/runs/${run.runId}?format=html`);
    expect(html.headers.get("content-type")).toContain("text/html");
    const report = (await (await get(`/v1/recon/runs/${run.runId}`)).json()) as object;
    expect(JSON.stringify(report)).toContain(String(run.block));
    // the withdrawals and their gas, and the factory deploy's gas (booked by
    // signer/deposit-addresses/deployFactory.ts), are each matched to a chain fact
    const withdrawalBreaks = run.breaks.filter((b) =>
      [
        "unmatched_withdrawal",
        "fee_not_booked",
        "amount_mismatch",
        "unmatched_ledger_transfer",
      ].includes(b.type),
    );
    expect(withdrawalBreaks).toEqual([]);

    // The signer's tx-outcomes doorbells were consumed by the worker role, not left in Redis.
    const outcomes = ctx.queues.queue(TX_OUTCOMES_QUEUE);
    await expect
      .poll(async () => await outcomes.getJobCounts("waiting", "delayed", "completed"), {
        timeout: 15_000,
      })
      .toMatchObject({ waiting: 0, delayed: 0 });
    expect((await outcomes.getJobCounts("completed")).completed).toBeGreaterThan(0);
  });
});
