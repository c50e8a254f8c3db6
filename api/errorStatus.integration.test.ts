/**
 * The error handler's statuses where a failure is not the caller's: a chain RPC outage during a
 * request that reads the chain is an upstream failure (502/503, retry the same request), a code
 * the handler has no status for is ours (500, its code kept), never the 400 that tells a caller
 * its request was wrong and not to retry it. On real Postgres, Redis and anvil; the app is the one
 * `buildApp` builds (the /v1 API for the operator's fail, extra routes for the rest).
 */
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRpcClient } from "../chains/index.js";
import { BaseError } from "../foundation/errors.js";
import { createHealth } from "../foundation/health.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { buildApp } from "./app.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "./testing/apiTestContext.js";
import { withdrawalInReview } from "./testing/lostAnswer.js";

const ETH = 10n ** 18n;
const NATIVE = "31337:0x0000000000000000000000000000000000000000";
/** Nothing listens on port 1: every request to it is refused at once. */
const DEAD_RPC = "http://127.0.0.1:1";

describe("statuses of failures that are not the caller's", () => {
  let ctx: TestContext;
  let app: FastifyInstance;

  beforeAll(async () => {
    ctx = await createTestContext();
    app = await buildApp({
      common: ctx.common,
      health: createHealth(),
      plugins: [
        async (a) => {
          // A request that needs the chain: the head, read through chains/' RPC client.
          a.get("/test/chain-head", async () => {
            const rpc = createRpcClient({ chainId: 31337, urls: [DEAD_RPC], rounds: 1 });
            return { head: String(await rpc.request<string>("eth_blockNumber")) };
          });
          // A query whose NUMERIC is a fraction: the amount parser refuses it (a bug of ours).
          a.get("/test/fractional", async () => {
            const { rows } = await ctx.db.pool.query("SELECT 1.5::numeric AS amount");
            return { amount: String(rows[0]?.amount) };
          });
          // A framework refusal no table names (as a plugin's error would be): status, code.
          a.get("/test/framework-refusal", async () => {
            throw Object.assign(new Error("Not Acceptable"), {
              statusCode: 406,
              code: "FST_ERR_TEST_UNNAMED",
            });
          });
          // A module's refusal naming a request field, with a code the handler does not map.
          a.get("/test/unmapped-field", async () => {
            throw new BaseError("the widget is not a widget", {
              code: "TEST_UNMAPPED_FIELD",
              meta: {
                field: "query.widget",
                errors: [{ field: "query.widget", message: "not a widget" }],
              },
            });
          });
        },
      ],
    });
  });
  afterAll(async () => {
    await app?.close();
    await ctx?.cleanup();
  });

  it("an RPC outage while a request reads the chain is 502 CHAIN_RPC_UNAVAILABLE (problem+json)", async () => {
    const res = await app.inject({ method: "GET", url: "/test/chain-head" });
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json()).toMatchObject({ code: "CHAIN_RPC_UNAVAILABLE", chain_id: 31337 });
    expect(res.statusCode).toBe(502);
    expect(res.json().status).toBe(502);
  });

  it("a code the handler has no status for is a 500 with its code kept, not the caller's 400", async () => {
    const res = await app.inject({ method: "GET", url: "/test/fractional" });
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json()).toMatchObject({ code: "DB_FRACTIONAL_NUMERIC" });
    expect(res.statusCode).toBe(500);
    expect(res.json().status).toBe(500);
  });

  it("a framework refusal no table names keeps its 4xx status under BAD_REQUEST, not its FST_ code", async () => {
    const res = await app.inject({ method: "GET", url: "/test/framework-refusal" });
    expect(res.statusCode).toBe(406);
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json()).toMatchObject({
      status: 406,
      code: "BAD_REQUEST",
      framework_code: "FST_ERR_TEST_UNNAMED",
    });
  });

  it("an unmapped code that names request fields (a validation error) stays 400", async () => {
    const res = await app.inject({ method: "GET", url: "/test/unmapped-field" });
    expect(res.statusCode).toBe(400);
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json()).toMatchObject({
      code: "TEST_UNMAPPED_FIELD",
      errors: [{ field: "query.widget", message: "not a widget" }],
    });
  });
});

describe("/readyz while a check of the process's roles fails", () => {
  let ctx: TestContext;
  let app: FastifyInstance;

  beforeAll(async () => {
    ctx = await createTestContext();
    const health = createHealth();
    health.add({ name: "postgres", check: async () => ({ ok: true }) });
    health.add({ name: "redis", check: async () => ({ ok: false, detail: "connection refused" }) });
    app = await buildApp({ common: ctx.common, health });
  });
  afterAll(async () => {
    await app?.close();
    await ctx?.cleanup();
  });

  it("answers 503 SERVICE_NOT_READY as problem+json, naming each check", async () => {
    const res = await app.inject({ method: "GET", url: "/readyz" });
    expect(res.statusCode).toBe(503);
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json()).toEqual({
      type: "https://custody-node.local/errors/SERVICE_NOT_READY",
      title: expect.any(String),
      status: 503,
      code: "SERVICE_NOT_READY",
      detail: "failing: redis",
      checks: {
        postgres: { ok: true },
        redis: { ok: false, detail: "connection refused" },
      },
    });
  });
});

describe("POST /v1/withdrawals/{id}/fail while the chain's node is down", () => {
  let t: WithdrawalApiTestContext;

  beforeAll(async () => {
    t = await createWithdrawalApiTestContext({ fund: { customers: ["gus"], amount: 10n * ETH } });
  }, 120_000);
  afterAll(async () => {
    await t?.cleanup();
  });

  it("answers 503 SIGNER_CHAIN_CHECK_UNAVAILABLE (retry later), fails nothing and keeps the hold", async () => {
    // The signer's tracker gave up finding a receipt for nonce 0: an operator must decide.
    const id = await withdrawalInReview(t, "gus", 2n * ETH, 0);
    const statusOf = async () =>
      (
        await t.ctx.db.pool.query<{ status: string }>(
          "SELECT status FROM api.withdrawals WHERE id = $1",
          [id],
        )
      ).rows[0]?.status;
    expect(await statusOf()).toBe("needs_review");

    // The chain's only node goes away: what used nonce 0 cannot be read.
    await t.ctx.anvils[0]!.stop();
    const res = await t.call(t.keys.admin, {
      method: "POST",
      url: `/v1/withdrawals/${id}/fail`,
      headers: { "idempotency-key": "fail-while-node-down" },
      payload: { reason: "no receipt anywhere" },
    });
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json()).toMatchObject({ code: "SIGNER_CHAIN_CHECK_UNAVAILABLE" });
    expect(res.statusCode).toBe(503);
    expect(await statusOf()).toBe("needs_review");
    expect((await t.ledger.balance({ assetId: NATIVE, name: "user:gus" })).debitsPending).toBe(
      2n * ETH,
    );
  });
});
