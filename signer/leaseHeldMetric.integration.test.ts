/**
 * The NoActiveBroadcaster alert (`sum by (chain_id, wallet) (custody_signer_lease_held) == 0`,
 * ops/observability/alerts.yml) needs a series to sum: a signer task waiting for a wallet's lease
 * must export 0 for it. Here the lease is held by a session that is no signer (a dead task's
 * connection the server has not noticed yet): the only signer running waits, nothing broadcasts,
 * and /metrics must say lease_held 0 for the wallet, not nothing at all (an absent series never
 * fires the alert).
 */
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { leaseKey } from "./lease.js";
import { waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest, TEST_CHAIN_ID } from "./testing/signerTest.js";

let t: SignerTest;
let holder: pg.Client;

beforeAll(async () => {
  t = await startSignerTest();
  holder = new pg.Client({ connectionString: t.ctx.db.url });
  await holder.connect();
  const { rows } = await holder.query<{ ok: boolean }>(
    "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok",
    [leaseKey(TEST_CHAIN_ID, t.account.address.toLowerCase())],
  );
  expect(rows[0]!.ok).toBe(true);
});

afterAll(async () => {
  await holder?.end();
  await t?.stop();
});

it("a signer waiting for the lease exports lease_held 0 for the wallet", async () => {
  t.signer = t.run();
  await waitFor("the wallet's key loaded", async () => t.signer!.isLoaded());
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(t.signer.isActive()).toBe(false);
  const text = await t.ctx.common.metrics.registry.getSingleMetricAsString(
    "custody_signer_lease_held",
  );
  const wallet = t.account.address.toLowerCase();
  const line = text
    .split("\n")
    .find((l) => l.startsWith("custody_signer_lease_held{") && l.includes(`wallet="${wallet}"`));
  expect(line?.split(" ").at(-1) ?? "absent").toBe("0");
});
