/**
 * The broadcaster lease: one holder per (chain, wallet); a holder whose connection is gone can
 * no longer write (the connection is the fencing token), and a standby takes over.
 */
import { keccak256 } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTcpProxy } from "../ops/testing/tcpProxy.js";
import { within } from "../ops/testing/wait.js";
import type { Attempt } from "./broadcaster/attempts.js";
import type { BroadcasterContext } from "./broadcaster/context.js";
import { sendInOrder } from "./broadcaster/send.js";
import { acquireLease, leaseKey } from "./lease.js";
import { statusCounts, waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";
import type { WalletSigner } from "./walletSigner.js";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 } } },
  });
});

afterAll(async () => {
  await t?.stop();
});

/** Cut one named connection of this test's own database (never another run's backends). */
async function terminate(applicationName: string): Promise<void> {
  const { rows } = await t.ctx.db.pool.query(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = $1`,
    [applicationName],
  );
  expect(rows).toEqual([{ ok: true }]);
}

describe("lease", () => {
  it("is held by one connection at a time, and a lost holder cannot write", async () => {
    const key = leaseKey(31337, "0x00000000000000000000000000000000000000ab");
    const controller = new AbortController();
    const first = await acquireLease({
      databaseUrl: t.ctx.db.url,
      key,
      signal: controller.signal,
      applicationName: "lease-first",
    });
    expect(first?.isHeld()).toBe(true);
    let standbySettled = false;
    const standby = acquireLease({
      databaseUrl: t.ctx.db.url,
      key,
      signal: controller.signal,
      retryMs: 50,
      applicationName: "lease-second",
    }).finally(() => {
      standbySettled = true;
    });
    // The standby has asked for the lock (on its own connection) and been refused at least once.
    await waitFor("the standby to poll for the lock", async () => {
      const { rows } = await t.ctx.db.pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
            AND application_name = 'lease-second' AND query LIKE '%pg_try_advisory_lock%'`,
      );
      return rows.length > 0;
    });
    expect(standbySettled).toBe(false);
    expect(first?.isHeld()).toBe(true);
    await terminate("lease-first");
    const second = await standby;
    expect(second?.isHeld()).toBe(true);
    expect(first?.isHeld()).toBe(false);
    await expect(first!.query("SELECT 1")).rejects.toMatchObject({ code: "SIGNER_LEASE_LOST" });
    await second?.release();
    controller.abort();
  });

  it("notices a connection gone silent (no FIN, no RST), and Postgres frees the lock only then", async () => {
    const key = leaseKey(31337, "0x00000000000000000000000000000000000000ac");
    const controller = new AbortController();
    const target = new URL(t.ctx.db.url);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    try {
      const first = await acquireLease({
        databaseUrl: proxy.urlFor(t.ctx.db.url),
        key,
        signal: controller.signal,
        applicationName: "lease-silent",
        lostAfterMs: 1_000,
      });
      expect(first?.isHeld()).toBe(true);
      proxy.blackhole();
      // A write sent into the silence fails as a lost lease instead of hanging (it never reached
      // Postgres, and nothing more can be written through this lease).
      await expect(
        within("the write to fail", first!.query("SELECT 1"), 30_000),
      ).rejects.toMatchObject({ code: "SIGNER_LEASE_LOST" });
      expect(first?.isHeld()).toBe(false);
      await within("the lease to report lost", first!.lost, 1_000);
      // Postgres ends the silent session itself (it would otherwise keep it, and the lock, for
      // hours of TCP keepalive), so a standby takes over; the old holder had stopped before.
      const second = await within(
        "a standby to take the lock",
        acquireLease({
          databaseUrl: t.ctx.db.url,
          key,
          signal: controller.signal,
          retryMs: 50,
          applicationName: "lease-after-silence",
        }),
        30_000,
      );
      expect(second?.isHeld()).toBe(true);
      expect(first?.isHeld()).toBe(false);
      await second?.release();
      await first?.release();
    } finally {
      controller.abort();
      await proxy.close();
    }
  });

  it("fails over between two signers of one wallet without a gap or a double send", async () => {
    const start = (name: string): WalletSigner => t.run(t.account, { applicationName: name });
    const a = start("signer-a");
    const b = start("signer-b");
    try {
      await waitFor("one active", async () => a.isActive() !== b.isActive());
      const [active, activeName, standby] = a.isActive() ? [a, "signer-a", b] : [b, "signer-b", a];
      await t.request(5, { prefix: "before" });
      await waitFor("first five confirmed", async () => {
        await t.rpc("evm_mine");
        return (await statusCounts(t.ctx)).confirmed === 5;
      });
      await terminate(activeName);
      await waitFor("standby took over", async () => standby.isActive());
      await t.request(5, { prefix: "after" });
      await waitFor("all ten confirmed", async () => {
        await t.rpc("evm_mine");
        return (await statusCounts(t.ctx)).confirmed === 10;
      });
      expect(active.isActive() && standby.isActive()).toBe(false);
      const { rows } = await t.ctx.db.pool.query(
        "SELECT array_agg(nonce::int ORDER BY nonce) AS nonces FROM custody.tx_requests",
      );
      expect(rows[0].nonces).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(await t.client.getTransactionCount({ address: t.account.address })).toBe(10);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it("stops a signer whose lease connection went silent before its standby sends", async () => {
    const target = new URL(t.ctx.db.url);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const cut = t.run(t.account, {
      applicationName: "signer-cut",
      databaseUrl: proxy.urlFor(t.ctx.db.url),
      leaseLostAfterMs: 1_000,
    });
    let standby: WalletSigner | undefined;
    try {
      await waitFor("the signer behind the proxy to hold the lease", async () => cut.isActive());
      standby = t.run(t.account, { applicationName: "signer-standby", leaseLostAfterMs: 1_000 });
      const base = await t.client.getTransactionCount({ address: t.account.address });
      const before = (await statusCounts(t.ctx)).confirmed ?? 0;
      await t.request(3, { prefix: "silent-before" });
      await waitFor("three confirmed", async () => {
        await t.rpc("evm_mine");
        return (await statusCounts(t.ctx)).confirmed === before + 3;
      });
      expect(standby.isActive()).toBe(false);
      proxy.blackhole();
      await waitFor("the standby to take over", async () => standby!.isActive(), {
        timeoutMs: 30_000,
      });
      // Postgres freed the lock only after the cut signer had counted its lease lost.
      expect(cut.isActive()).toBe(false);
      await t.request(3, { prefix: "silent-after" });
      await waitFor("six confirmed", async () => {
        await t.rpc("evm_mine");
        return (await statusCounts(t.ctx)).confirmed === before + 6;
      });
      expect(cut.isActive()).toBe(false);
      const { rows } = await t.ctx.db.pool.query(
        `SELECT array_agg(nonce::int ORDER BY nonce) AS nonces FROM custody.tx_requests
          WHERE id LIKE 'silent-%'`,
      );
      expect(rows[0].nonces).toEqual([0, 1, 2, 3, 4, 5].map((n) => base + n));
      expect(await t.client.getTransactionCount({ address: t.account.address })).toBe(base + 6);
    } finally {
      await Promise.all([cut.stop(), standby?.stop()]);
      await proxy.close();
    }
  });

  it("a lost lease sends no stored bytes (the rest of the tick that lost it)", async () => {
    const key = leaseKey(31337, "0x00000000000000000000000000000000000000ad");
    const controller = new AbortController();
    const lease = await acquireLease({
      databaseUrl: t.ctx.db.url,
      key,
      signal: controller.signal,
      applicationName: "lease-lost-send",
    });
    await terminate("lease-lost-send");
    await within("the lease to report lost", lease!.lost, 30_000);
    // Real stored bytes: signed by the test's KMS wallet at its next nonce.
    const nonce = await t.client.getTransactionCount({
      address: t.account.address,
      blockTag: "pending",
    });
    const raw = await t.account.signTransaction({
      chainId: 31337,
      type: "eip1559",
      nonce,
      to: "0x00000000000000000000000000000000000000ad",
      value: 1n,
      gas: 21_000n,
      maxFeePerGas: 100_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
    });
    // sendInOrder reads only the node client from the context before its lease check.
    const ctx = { client: t.client } as unknown as BroadcasterContext;
    const attempt = { id: "1", requestId: "lost-send", nonce: BigInt(nonce), raw } as Attempt;
    await expect(sendInOrder(ctx, lease!, [attempt])).rejects.toMatchObject({
      code: "SIGNER_LEASE_LOST",
    });
    expect(await t.rpc("eth_getTransactionByHash", [keccak256(raw)])).toBeNull();
    controller.abort();
  });
});
