/**
 * An SSO console session acts with the scopes its groups map to under the configuration the api
 * task runs now, not the one it signed in under: a group's mapping reduced (or SSO turned off) and
 * the api restarted takes the scope from live sessions at once, through /v1 (which the console
 * calls with the session's key) as well as directly. Real Postgres, Redis and anvil; the session
 * minted as the SSO callback mints it (sessions.ts mintSession).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Common } from "../../foundation/common.js";
import { withTransaction } from "../../foundation/db.js";
import { createApiKey } from "../apiKeys.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";
import { mintSession } from "./sessions.js";

const ETH = 10n ** 18n;
const OIDC = {
  issuer: "https://login.example.com",
  clientId: "custody-console",
  redirectUrl: "https://custody.example.com/console/sso/callback",
  groups: { "custody-approvers": ["withdrawals:approve"], "custody-viewers": ["ledger:read"] },
};

let t: WithdrawalApiTestContext;
beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    policy: {
      perTransaction: 10n * ETH,
      rolling24h: 100n * ETH,
      approvalThreshold: ETH,
      requiredApprovals: 2,
    },
    fund: { customers: ["alice"], amount: 50n * ETH },
    file: { api: { console: { oidc: OIDC } } },
  });
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
}, 180_000);

/** This context's config with the console's SSO group mapping replaced (undefined: no SSO). */
function withGroups(groups: Record<string, string[]> | undefined): Common {
  const { config } = t.ctx.common;
  const api = config.api;
  if (!api?.console?.oidc) throw new Error("the test config has no SSO");
  const { oidc, ...consoleRest } = api.console;
  return {
    ...t.ctx.common,
    config: {
      ...config,
      api: {
        ...api,
        console: { ...consoleRest, ...(groups ? { oidc: { ...oidc, groups } } : {}) },
      },
    },
  };
}

describe("SSO session scopes", () => {
  it("a reduced group mapping or SSO turned off takes the scope from live sessions", async () => {
    const pool = t.ctx.db.pool;
    const requester = await createApiKey(pool, {
      owner: "exchange-backend",
      scopes: ["withdrawals:write"],
    });
    const zoe = await withTransaction(pool, (c) =>
      mintSession(c, {
        owner: "oidc:zoe@example.com",
        email: "zoe@example.com",
        scopes: ["withdrawals:approve"],
        origin: {
          kind: "oidc",
          issuer: OIDC.issuer,
          subject: "zoe",
          groups: ["custody-approvers"],
        },
        idleTimeoutMs: 15 * 60_000,
        absoluteTimeoutMs: 8 * 3_600_000,
      }),
    );
    const w = await t.withdrawNative(requester.plaintext, "alice", 2n * ETH);
    let n = 0;
    const approveOn = (app: typeof t.app) =>
      app.inject({
        method: "POST",
        url: `/v1/withdrawals/${w.id}/approve`,
        headers: { authorization: `Bearer ${zoe.plaintext}`, "idempotency-key": `sso-${++n}` },
        payload: {},
      });
    const read = await t.app.inject({
      method: "GET",
      url: `/v1/withdrawals/${w.id}`,
      headers: { authorization: `Bearer ${zoe.plaintext}` },
    });
    expect(read.statusCode, read.body).not.toBe(401);

    // The custody team finds custody-approvers was mapped too widely: it now only reads.
    const reduced = await t.addApp({
      common: withGroups({ ...OIDC.groups, "custody-approvers": ["ledger:read"] }),
    });
    const refused = await approveOn(reduced);
    expect(refused.statusCode, refused.body).toBe(403);
    expect(refused.json().code).toBe("AUTH_SCOPE_MISSING");

    const noSso = await t.addApp({ common: withGroups(undefined) });
    const off = await approveOn(noSso);
    expect(off.statusCode, off.body).toBe(403);

    const { rows } = await pool.query(
      "SELECT count(*)::int AS n FROM api.withdrawal_approvals WHERE withdrawal_id = $1",
      [w.id],
    );
    expect(rows[0].n).toBe(0);
    // Under the mapping it signed in with, the session still approves.
    const granted = await approveOn(t.app);
    expect(granted.statusCode, granted.body).toBe(200);
  }, 180_000);
});
