/**
 * The alerts on rare events (ReorgHoldShortfall, ReorgBeyondWindow, HotWalletInsufficientFunds,
 * SignerNeedsHuman, FeeCapReached, ReconciliationFailing, WebhookDeadLetters, KmsKeyUnusable,
 * BlockedWithdrawalInFlight, WithdrawalFailureUndoneUnheld) are
 * `increase(counter[…]) > 0` (SignerSendsLost and KmsThrottling count increases the same way). Prometheus computes increase()
 * from the samples it has: a labelled counter that first appears at 1 (prom-client exports no
 * series before the first inc()) shows no increase, so the first such event of a process never
 * fires its alert (promtool: a series "_ _ _ 1 1 1" does not fire ReorgHoldShortfall; "0 0 0 1"
 * does). The counters the alerts read must be exported at 0 from the start, for each chain (and
 * each hot wallet) the process serves.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { createMetrics } from "../foundation/metrics.js";
import { waitFor as waitForSigner } from "../signer/testing/harness.js";
import { type SignerTest, startSignerTest } from "../signer/testing/signerTest.js";
import { migrate } from "./migrate.js";
import { type Service, startService } from "./start.js";
import { createTestContext, type TestContext } from "./testing/context.js";

type Registry = ReturnType<typeof createMetrics>["registry"];

function sample(text: string, name: string, labels: Record<string, string>): string {
  const line = text
    .split("\n")
    .find(
      (l) =>
        l.startsWith(`${name}{`) &&
        Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)),
    );
  return line?.split(" ").at(-1) ?? "absent";
}

describe("a service running the indexer, worker, reconciler and api roles", () => {
  let ctx: TestContext;
  let service: Service;
  beforeAll(async () => {
    ctx = await createTestContext({ chains: [{ chainId: 31337 }] });
    await migrate(ctx.config.env.DATABASE_URL);
    service = await startService(ctx.config, {
      roles: ["indexer", "worker", "reconciler", "api"],
    });
  }, 120_000);
  afterAll(async () => {
    await service?.stop();
    await ctx?.cleanup();
  });

  it("exports the shortfall, beyond-window reorg, failed-run and dead-delivery counters at 0 before any event", async () => {
    const text = await (await fetch(`${service.url}/metrics`)).text();
    expect(sample(text, "custody_ledger_reorg_shortfalls_total", { chain_id: "31337" })).toBe("0");
    for (const depth of ["1", "2-5", "6-20", "21+"])
      expect(
        sample(text, "custody_indexer_reorgs_total", {
          chain_id: "31337",
          depth,
          beyond_window: "true",
        }),
      ).toBe("0");
    // ReconciliationFailing and WebhookDeadLetters read these.
    expect(sample(text, "custody_recon_runs_total", { chain_id: "31337", result: "failed" })).toBe(
      "0",
    );
    expect(sample(text, "custody_api_webhook_deliveries_total", { result: "dead" })).toBe("0");
    // BlockedWithdrawalInFlight reads this.
    expect(sample(text, "custody_api_blocked_withdrawals_total", { outcome: "in_flight" })).toBe(
      "0",
    );
    // WithdrawalFailureUndoneUnheld reads this (no labels of its own: exported at 0).
    expect(sample(text, "custody_api_withdrawal_failure_undone_unheld_total", {})).toBe("0");
  });
});

describe("a wallet signer", () => {
  let t: SignerTest;
  beforeAll(async () => {
    t = await startSignerTest();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("exports its alert counters at 0 once the wallet's key is loaded", async () => {
    t.signer = t.run();
    await waitForSigner("the wallet's key loaded", async () => t.signer!.isLoaded());
    const registry: Registry = t.ctx.common.metrics.registry;
    const text = await registry.metrics();
    const wallet = t.account.address.toLowerCase();
    for (const alert of [
      "insufficient_funds",
      "nonce_gap",
      "nonce_cancelled",
      "cancel_unsendable",
      "confirmed_tx_reorged_out",
      "operator_fail_overridden",
    ])
      expect(sample(text, "custody_signer_alerts_total", { wallet, alert }), alert).toBe("0");
    expect(sample(text, "custody_signer_fee_cap_hits_total", { wallet })).toBe("0");
    // SignerSendsLost: each action's first heal would otherwise go uncounted.
    for (const action of ["resend", "bump"])
      expect(sample(text, "custody_signer_stall_heals_total", { wallet, action }), action).toBe(
        "0",
      );
    // KmsThrottling: unlabelled, so prom-client exports it at 0 once the KMS account is made.
    expect(sample(text, "custody_kms_throttles_total", {})).toBe("0");
    // KmsKeyUnusable: per key and reason, from the moment the key is loaded.
    for (const reason of ["disabled", "invalid_state", "not_found", "access_denied", "other_key"])
      expect(sample(text, "custody_kms_key_refusals_total", { key: t.keyId, reason }), reason).toBe(
        "0",
      );
  });
});
