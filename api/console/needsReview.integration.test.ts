/**
 * The `needs_review` operator action in a real browser (Debian's chromium driven by playwright-core)
 * and in the API (POST /v1/withdrawals/{id}/fail), on real Postgres, Redis and the real ledger. The
 * signer's request row is moved to needs_review the way its tracker records it (the tracker's own
 * path on anvil is tested in signer/ and ops/e2e); the withdrawal follows through syncOutcomes.
 * An approver without admin is refused in the console and the API; a reason-less and a CSRF-less
 * POST change nothing; an admin's Fail button fails it, releases the hold and is audited with the
 * reason; one whose nonce nothing used is cancelled instead (the notice says so, the hold stands);
 * a withdrawal the chain can still decide is refused 409. Screenshots in .artifacts/console/.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Ledger } from "../../ledger/index.js";
import { setTxRequestState } from "../../signer/testing/txRequestState.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";
import { createWithdrawals, type Withdrawals } from "../withdrawals/service.js";
import {
  type ConsoleBrowser,
  expectNoHorizontalOverflow,
  expectWordsWhole,
  launchConsoleBrowser,
  shot,
  shows,
} from "./testing/browser.js";

const ETH = 10n ** 18n;
const NATIVE = "31337:0x0000000000000000000000000000000000000000";

let t: WithdrawalApiTestContext;
let ledger: Ledger;
let withdrawals: Withdrawals;
let browser: ConsoleBrowser | undefined;
let url: string;
let n = 0;

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    fund: { customers: ["erin", "fay"], amount: 10n * ETH },
  });
  ledger = t.ledger;
  withdrawals = createWithdrawals({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
  url = await t.app.listen({ port: 0, host: "127.0.0.1" });
  browser = await launchConsoleBrowser(url);
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await t?.cleanup();
});

const withdraw = async (customer: string, amount: bigint) =>
  (await t.withdrawNative(t.keys["withdrawals:write"], customer, amount)).id;

/** Move the signer's request row as its tracker records it, then let the withdrawal follow. */
async function signerRecords(id: string, status: string, reviewReason?: string, nonce?: number) {
  await setTxRequestState(t.ctx.db.pool, `withdrawal:${id}`, {
    status,
    txHash: `0x${"d4".repeat(32)}`,
    ...(reviewReason ? { reviewReason } : {}),
    ...(nonce !== undefined ? { nonce } : {}),
  });
  await withdrawals.syncOutcomes();
}

/** POST /v1/withdrawals/{id}/fail with `key`. */
const failViaApi = (key: string, id: string, reason: string) =>
  t.call(key, {
    method: "POST",
    url: `/v1/withdrawals/${id}/fail`,
    headers: { "idempotency-key": `nr-${++n}` },
    payload: { reason },
  });
const statusOf = async (id: string) =>
  (
    await t.ctx.db.pool.query<{ status: string }>(
      "SELECT status FROM api.withdrawals WHERE id = $1",
      [id],
    )
  ).rows[0]?.status;
const held = async (customer: string) =>
  (await ledger.balance({ assetId: NATIVE, name: `user:${customer}` })).debitsPending;

describe("console needs_review action", () => {
  it("fails a needs_review withdrawal from its button (admin), releasing the hold; refuses the rest", async () => {
    const stuck = await withdraw("erin", 3n * ETH);
    await signerRecords(stuck, "broadcast");
    await signerRecords(stuck, "receipt_unknown");
    await signerRecords(
      stuck,
      "needs_review",
      "nonce consumed at a final block by no known attempt",
    );
    expect(await statusOf(stuck)).toBe("needs_review");
    expect(await held("erin")).toBe(3n * ETH);
    const moving = await withdraw("fay", ETH);
    await signerRecords(moving, "broadcast");
    expect(await statusOf(moving)).toBe("broadcast");
    const short = stuck.slice(0, 8);

    // an approver (no admin) sees the item and its button; the API refuses the action, nothing changes
    const approver = await browser!.signIn(t.keys["withdrawals:approve"], "/console/withdrawals");
    await approver.page.goto(`${url}/console/withdrawals`);
    const section = approver.page.locator("section", {
      has: approver.page.locator("h2#needs-review"),
    });
    await shows(section, short);
    await section.getByLabel(`What you checked on chain for ${short}`).fill("looked at it");
    await section
      .getByRole("button", { name: `Fail withdrawal ${short} and release its hold` })
      .click();
    await shows(approver.page.getByRole("alert"), "AUTH_SCOPE_MISSING");
    expect(await statusOf(stuck)).toBe("needs_review");
    const viaApi = await failViaApi(t.keys["withdrawals:approve"], stuck, "looked at it");
    expect(viaApi.statusCode).toBe(403);
    expect(viaApi.headers["content-type"]).toContain("application/problem+json");
    expect(viaApi.json()).toMatchObject({ code: "AUTH_SCOPE_MISSING" });
    await approver.context.close();

    // the admin: a reason-less POST (the API names the field) and a CSRF-less one change nothing
    const admin = await browser!.signIn(t.keys.admin, "/console/withdrawals");
    const page = admin.page;
    await page.goto(`${url}/console/withdrawals`);
    await shot(page, "withdrawals-needs-review");
    await expectNoHorizontalOverflow(page, "/console/withdrawals");
    await expectWordsWhole(page, "/console/withdrawals");
    const form = page.locator(`form[action="/console/withdrawals/${stuck}/fail"]`);
    const guard = {
      _csrf: await form.locator("input[name=_csrf]").inputValue(),
      _idem: await form.locator("input[name=_idem]").inputValue(),
    };
    const reasonless = await page.request.post(`${url}/console/withdrawals/${stuck}/fail`, {
      form: { ...guard, reason: "  " },
    });
    expect(reasonless.status()).toBe(400);
    expect(await reasonless.text()).toContain("VALIDATION_FAILED");
    const forged = await page.request.post(`${url}/console/withdrawals/${stuck}/fail`, {
      form: { reason: "forged" },
    });
    expect(forged.status()).toBe(403);
    expect(await forged.text()).toContain("CONSOLE_CSRF");
    expect(await statusOf(stuck)).toBe("needs_review");
    expect(await held("erin")).toBe(3n * ETH);

    // the button: failed, hold released, audited as the admin's owner with the reason
    await page.goto(`${url}/console/withdrawals/${stuck}`);
    await page
      .getByLabel(`What you checked on chain for ${short}`)
      .fill("nonce 7 used by a foreign tx at final block 1200");
    await page
      .getByRole("button", { name: `Fail withdrawal ${short} and release its hold` })
      .click();
    await shows(page.getByRole("status").first(), `withdrawal ${short}: failed, hold released`);
    expect(await statusOf(stuck)).toBe("failed");
    expect(await held("erin")).toBe(0n);
    expect((await ledger.balance({ assetId: NATIVE, name: "user:erin" })).available).toBe(
      10n * ETH,
    );
    const audit = await t.ctx.db.pool.query<{ actor: string; reason: string }>(
      `SELECT actor, details->>'reason' AS reason FROM audit.audit_log
        WHERE entity_type = 'withdrawal' AND entity_id = $1 AND action = 'withdrawal.failed'`,
      [stuck],
    );
    expect(audit.rows).toEqual([
      { actor: "owner-admin", reason: "nonce 7 used by a foreign tx at final block 1200" },
    ]);
    await page.goto(`${url}/console/withdrawals/${stuck}`);
    await shows(page.getByRole("main"), "withdrawal.failed");
    await shot(page, "withdrawal-failed-by-operator");

    // a withdrawal whose nonce nothing used (far above the wallet's mined count): the button's
    // failure is a cancel, and the notice says the hold stays until the cancel is final
    const unsent = await withdraw("erin", 2n * ETH);
    await signerRecords(unsent, "broadcast");
    await signerRecords(unsent, "needs_review", "CANCEL_UNSENDABLE", 1_000);
    const unsentShort = unsent.slice(0, 8);
    await page.goto(`${url}/console/withdrawals/${unsent}`);
    await page
      .getByLabel(`What you checked on chain for ${unsentShort}`)
      .fill("every send and cancel refused");
    await page
      .getByRole("button", { name: `Fail withdrawal ${unsentShort} and release its hold` })
      .click();
    await shows(
      page.getByRole("status").first(),
      `withdrawal ${unsentShort}: its nonce is being cancelled; it fails and its hold is released once the cancel is final`,
    );
    expect(await statusOf(unsent)).toBe("broadcast");
    expect(await held("erin")).toBe(2n * ETH);
    // its page says the failure is under way, not only `broadcast`
    await page.goto(`${url}/console/withdrawals/${unsent}`);
    await shows(
      page.locator(`tr[data-withdrawal="${unsent}"]`),
      "failing: its nonce is being cancelled (owner-admin)",
    );

    // the API: a withdrawal the chain can still decide is refused 409; an unknown id 404
    const refused = await failViaApi(t.keys.admin, moving, "looked stuck");
    expect(refused.statusCode).toBe(409);
    expect(refused.headers["content-type"]).toContain("application/problem+json");
    expect(refused.json()).toMatchObject({ code: "WITHDRAWAL_INVALID_STATE" });
    expect(await statusOf(moving)).toBe("broadcast");
    expect(await held("fay")).toBe(ETH);
    const unknown = await failViaApi(t.keys.admin, "00000000-0000-4000-8000-000000000000", "x");
    expect(unknown.statusCode).toBe(404);
    await admin.context.close();
  }, 180_000);
});
