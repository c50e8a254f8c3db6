/**
 * A signer task that loses a wallet's lease (its lease connection dropped) stays up as a standby
 * while another task broadcasts. Its per-wallet gauges must not keep the figures of its last
 * session: HotWalletBelowFloor takes `max by (chain_id, wallet)` of
 * custody_signer_hot_wallet_balance_wei over every task, so a stale balance from before the
 * wallet drained hides the drain from the alert (withdrawals then fail for lack of gas).
 */
import { toHex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createCommon } from "../foundation/common.js";
import { createMetrics } from "../foundation/metrics.js";
import { waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";
import type { WalletSigner } from "./walletSigner.js";

let t: SignerTest;
let b: WalletSigner | undefined;

beforeAll(async () => {
  t = await startSignerTest();
});

afterAll(async () => {
  await b?.stop();
  await t?.stop();
});

async function balanceOn(registry: ReturnType<typeof createMetrics>["registry"]) {
  const text = await registry.getSingleMetricAsString("custody_signer_hot_wallet_balance_wei");
  const wallet = t.account.address.toLowerCase();
  const line = text
    .split("\n")
    .find((l) => l.startsWith("custody_signer_hot_wallet_balance_wei{") && l.includes(wallet));
  return line?.split(" ").at(-1) ?? "absent";
}

it("a task that lost the lease stops exporting the wallet's balance", async () => {
  const registryA = t.ctx.common.metrics.registry;
  t.signer = t.run(t.account, { applicationName: "custody-node signer A" });
  await waitFor("A to hold the lease", async () => t.signer!.isActive());
  await waitFor("A to export the balance", async () =>
    (await balanceOn(registryA)) !== "absent" ? true : undefined,
  );
  expect(Number(await balanceOn(registryA))).toBeGreaterThan(1e20);

  // Task B (its own registry, as another process) stands by.
  const metricsB = createMetrics({ defaults: false });
  const commonB = createCommon(t.ctx.config, { metrics: metricsB });
  b = t.run(t.account, { common: commonB, applicationName: "custody-node signer B" });
  await waitFor("B to load", async () => b!.isLoaded());

  // The wallet drains; A's lease connection drops; B takes over and reads the new balance.
  await t.rpc("anvil_setBalance", [t.account.address, toHex(1000n)]);
  await t.ctx.db.pool.query(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'custody-node signer A'",
  );
  await waitFor("B to hold the lease", async () => b!.isActive(), { timeoutMs: 20_000 });
  await waitFor("B to export the drained balance", async () =>
    (await balanceOn(metricsB.registry)) === "1000" ? true : undefined,
  );
  expect(t.signer.isActive()).toBe(false);
  // A, now a standby, no longer speaks for the wallet's balance.
  expect(await balanceOn(registryA)).toBe("absent");
});
