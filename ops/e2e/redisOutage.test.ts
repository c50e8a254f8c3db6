/**
 * Redis is only a doorbell (issue 13 item 9). The whole service (every role) runs on a dedicated
 * redis-server that this test kills for 30 s while withdrawals are in flight, and restarts empty:
 * POSTs keep answering (a request never waits on Redis), withdrawals are signed, sent and confirmed
 * from Postgres, and afterwards nothing is lost: every withdrawal paid exactly once, every hold
 * resolved, every webhook delivered. Never the shared Redis on 6379.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createPublicClient, http, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../api/apiKeys.js";
import { ROLE_NAMES } from "../../foundation/roles.js";
import { createLedger, transferId } from "../../ledger/index.js";
import { type KmsEmulator, startKmsEmulator } from "../../signer/kms-emulator/server.js";
import { EXTERNAL } from "../devstack/scenario.js";
import { type Service, startService } from "../start.js";
import { createTestContext, type TestContext } from "../testing/context.js";
import { waitFor } from "../testing/wait.js";
import { type RedisServer, startRedisServer } from "./redisServer.js";
import { prepareTestCustody } from "./setup.js";

const OUTAGE_MS = 30_000;

let ctx: TestContext;
let kms: KmsEmulator;
let redis: RedisServer;
let service: Service | undefined;
let hookServer: Server;
let hookUrl: string;
const hookIds = new Set<string>();
let miner: NodeJS.Timeout | undefined;

beforeAll(async () => {
  hookServer = createServer((req, res) => {
    hookIds.add(String(req.headers["webhook-id"]));
    req.resume();
    req.on("end", () => {
      res.statusCode = 200;
      res.end();
    });
  });
  await new Promise<void>((r) => hookServer.listen(0, "127.0.0.1", r));
  hookUrl = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/hooks`;
  redis = await startRedisServer();
  ctx = await createTestContext({
    chains: [
      { chainId: 31337, key: "local-a", config: { confirmations: { kind: "blocks", blocks: 2 } } },
    ],
  });
  kms = await startKmsEmulator();
}, 120_000);
afterAll(async () => {
  clearInterval(miner);
  await service?.stop();
  await kms?.stop();
  await ctx?.cleanup();
  await redis?.stop();
  await new Promise((r) => hookServer?.close(r));
});

describe("Redis outage", () => {
  it("30 s without Redis: POSTs answer, withdrawals confirm, nothing is lost after", async () => {
    const chain = ctx.config.chains[0]!;
    const prepared = await prepareTestCustody(ctx, kms);
    const config = Object.freeze({
      ...prepared.config,
      env: Object.freeze({ ...prepared.config.env, REDIS_URL: redis.url }),
      webhooks: [{ url: hookUrl, secretEnv: "E2E_HOOK", events: ["withdrawal.*"] }],
      webhookSecrets: { E2E_HOOK: "e2e-hook-secret" },
    });
    // alice's money (booked directly: deposits are not what this test is about)
    const ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
    await ledger.ensureAssetsFromConfig([chain]);
    const NATIVE = `${chain.chainId}:0x0000000000000000000000000000000000000000`;
    await ledger.transfer({
      id: transferId("outage:fund:alice"),
      assetId: NATIVE,
      debit: "custody:deposits",
      credit: "user:alice",
      amount: parseEther("10"),
      kind: "manual",
    });
    service = await startService(config, { roles: [...ROLE_NAMES] });
    const client = createPublicClient({ cacheTime: 0, transport: http(chain.rpcUrls[0]) });
    miner = setInterval(() => {
      client.request({ method: "evm_mine" as never }).catch(() => {});
    }, 300);
    const key = (
      await createApiKey(ctx.db.pool, {
        owner: "backend",
        scopes: ["withdrawals:write", "ledger:read"],
      })
    ).plaintext;
    let n = 0;
    const amount = parseEther("0.1");
    const withdraw = async () => {
      const started = Date.now();
      const res = await fetch(`${service!.url}/v1/withdrawals`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${key}`,
          "content-type": "application/json",
          "idempotency-key": `outage-${++n}`,
        },
        body: JSON.stringify({
          customerId: "alice",
          chain: chain.key,
          asset: "native",
          to: EXTERNAL,
          amount: amount.toString(),
        }),
        signal: AbortSignal.timeout(15_000),
      });
      const body = (await res.json()) as { id: string; status: string };
      return { status: res.status, body, ms: Date.now() - started };
    };
    const statusOf = async (id: string) =>
      (
        await ctx.db.pool.query<{ status: string }>(
          "SELECT status FROM api.withdrawals WHERE id = $1",
          [id],
        )
      ).rows[0]!.status;
    const externalBefore = await client.getBalance({ address: EXTERNAL });

    // Before: Redis up, two withdrawals go in.
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await withdraw();
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      ids.push(r.body.id);
    }

    // The outage, with those two in flight.
    await redis.stop();
    const outageStarted = Date.now();
    const during: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await withdraw();
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      expect(r.body.status).toBe("signing");
      during.push(r.ms);
      ids.push(r.body.id);
    }
    // Every POST answered, none waited on Redis: the webhook doorbell is bounded at ~1 s (usually
    // instant); 10 s leaves a loaded machine its slack and is still far from waiting on Redis.
    expect(Math.max(...during)).toBeLessThan(10_000);
    // All five are signed, sent and confirmed from Postgres while Redis is still down (it stays
    // down until they are: the outage lasts at least OUTAGE_MS and as long as this takes).
    for (const id of ids)
      await waitFor(
        `withdrawal ${id} confirmed during the outage`,
        async () => (["confirmed", "finalized"].includes(await statusOf(id)) ? true : undefined),
        { timeoutMs: 180_000, everyMs: 250 },
      );
    // Readiness says why, promptly: the probe fails fast (2 s connect/command timeouts) instead of
    // waiting on Redis for the whole outage; the 15 s abort is that bound with room for load.
    const ready = (await (
      await fetch(`${service!.url}/readyz`, { signal: AbortSignal.timeout(15_000) })
    ).json()) as { status: string; checks: Record<string, { ok: boolean }> };
    expect(ready.checks.redis?.ok).toBe(false);
    expect(ready.checks.postgres?.ok).toBe(true);
    // Redis stays down for at least the full 30 s (a floor, not a budget); the service keeps
    // answering reads meanwhile (at least 3 of them, however slow the machine).
    for (let reads = 0; reads < 3 || Date.now() - outageStarted < OUTAGE_MS; reads++) {
      const res = await fetch(`${service!.url}/v1/withdrawals/${ids[0]}`, {
        headers: { authorization: `Bearer ${key}` },
        signal: AbortSignal.timeout(15_000),
      });
      expect(res.status).toBe(200);
      await new Promise((r) => setTimeout(r, 1_000));
    }

    // After: Redis back, empty (no persistence). One more withdrawal, then everything settles.
    await redis.start();
    await waitFor(
      "readiness to see Redis again",
      async () => {
        const r = (await (await fetch(`${service!.url}/readyz`)).json()) as {
          checks: Record<string, { ok: boolean }>;
        };
        return r.checks.redis?.ok ? true : undefined;
      },
      { timeoutMs: 60_000, everyMs: 250 },
    );
    const last = await withdraw();
    expect(last.status).toBe(201);
    ids.push(last.body.id);
    for (const id of ids)
      await waitFor(
        `withdrawal ${id} finalized`,
        async () => ((await statusOf(id)) === "finalized" ? true : undefined),
        { timeoutMs: 90_000, everyMs: 250 },
      );

    // Paid exactly once each, on chain and in the ledger; no hold left.
    const externalAfter = await client.getBalance({ address: EXTERNAL });
    expect(externalAfter - externalBefore).toBe(amount * BigInt(ids.length));
    const alice = await ledger.balance({ assetId: NATIVE, name: "user:alice" });
    expect(alice.debitsPending).toBe(0n);
    expect(alice.available).toBe(parseEther("10") - amount * BigInt(ids.length));
    const { rows: requests } = await ctx.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM api.withdrawals WHERE customer_id = 'alice'",
    );
    expect(requests[0]!.n).toBe(ids.length);

    // Every webhook event of those withdrawals reaches the endpoint, Redis outage or not.
    const events = async () =>
      (
        await ctx.db.pool.query<{ id: string; status: string }>(
          `SELECT e.id::text, d.status FROM api.webhook_events e
             JOIN api.webhook_deliveries d ON d.event_id = e.id
            WHERE e.payload->>'withdrawal_id' = ANY($1)`,
          [ids],
        )
      ).rows;
    await waitFor(
      "every webhook delivery delivered",
      async () => {
        const rows = await events();
        return rows.length > 0 && rows.every((r) => r.status === "delivered") ? rows : undefined;
      },
      { timeoutMs: 60_000, everyMs: 250 },
    );
    const delivered = await events();
    // broadcast, confirmed, finalized (and approved) per withdrawal
    expect(delivered.length).toBeGreaterThanOrEqual(ids.length * 3);
    for (const e of delivered) expect(hookIds.has(e.id)).toBe(true);
    await ledger.close();
  }, 600_000);
});
