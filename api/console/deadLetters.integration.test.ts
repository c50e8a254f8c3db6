/**
 * The console's webhook dead letters in a real browser (Debian's chromium driven by playwright-core):
 * a real HTTP receiver on loopback refuses an event until it is dead-lettered (real Postgres and
 * BullMQ on Redis); the dead letter appears on the console's webhooks page and its Redrive button
 * redelivers it to the receiver, now up. Screenshots go to .artifacts/console/ (git-ignored).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../ops/testing/wait.js";
import { emitEvent } from "../webhooks/events.js";
import { createWebhookTestContext, type WebhookTestContext } from "../webhooks/testing/receiver.js";
import { type ConsoleBrowser, launchConsoleBrowser, shot, shows } from "./testing/browser.js";

let hookUrl: string;
let receiverUp = false;
const received: string[] = [];
let t: WebhookTestContext;
let browser: ConsoleBrowser | undefined;
let url: string;

beforeAll(async () => {
  t = await createWebhookTestContext({
    receive: ({ headers }, res) => {
      received.push(String(headers["webhook-id"]));
      res.statusCode = receiverUp ? 204 : 500;
    },
    webhooks: (origin) => [
      { url: `${origin}/hook`, secretEnv: "WH_CONSOLE", events: ["withdrawal.*"] },
    ],
    webhookSecrets: { WH_CONSOLE: "console-secret" },
    dispatcher: { attempts: 2, backoffMs: 20, sweepIntervalMs: 100 },
  });
  hookUrl = `${t.receiverUrl}/hook`;
  url = await t.app.listen({ port: 0, host: "127.0.0.1" });
  browser = await launchConsoleBrowser(url);
});
afterAll(async () => {
  await browser?.close();
  await t?.cleanup();
});

const deliveryOf = async (eventId: string) =>
  (
    await t.ctx.db.pool.query<{ status: string; attempts: number }>(
      "SELECT status, attempts FROM api.webhook_deliveries WHERE event_id = $1 AND endpoint = $2",
      [eventId, hookUrl],
    )
  ).rows[0];

describe("console webhook dead letters", () => {
  it("shows a dead letter and its Redrive button redelivers it", async () => {
    const eventId = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "withdrawal.failed",
      name: "withdrawal:console-w1:failed",
      data: { withdrawal_id: "console-w1" },
    });
    await waitFor(
      "the delivery to go dead",
      async () => (await deliveryOf(eventId))?.status === "dead",
      {
        timeoutMs: 60_000,
      },
    );
    expect(received.filter((id) => id === eventId)).toHaveLength(2);

    const { context, page } = await browser!.signIn(t.keys.admin);

    await page.goto(`${url}/console/webhooks`);
    const row = page.locator("tr", { hasText: eventId });
    expect(await row.count()).toBe(1);
    const text = (await row.textContent()) ?? "";
    expect(text).toContain("withdrawal.failed");
    expect(text).toContain(hookUrl);
    expect(text).toContain("HTTP 500");
    await shot(page, "webhooks-dead-letter");

    receiverUp = true;
    await page.getByRole("button", { name: `Redrive ${eventId}` }).click();
    await page.waitForURL(/\/console\/webhooks\?notice=/);
    expect(await page.getByRole("status").first().textContent()).toContain("redriven");
    await waitFor(
      "the redriven delivery",
      async () => (await deliveryOf(eventId))?.status === "delivered",
      { timeoutMs: 60_000 },
    );
    expect(received.filter((id) => id === eventId)).toHaveLength(3);
    await page.goto(`${url}/console/webhooks`);
    expect(await page.locator("tr", { hasText: eventId }).count()).toBe(0);
    expect(await page.locator("main").textContent()).toContain("No dead letters.");
    await shot(page, "webhooks-redriven");
    await context.close();
  }, 180_000);

  it("a re-drive the API refuses as out of order shows why and offers a forced re-drive behind a confirm", async () => {
    // The receiver is down through every attempt of the withdrawal's `confirmed`...
    receiverUp = false;
    const confirmed = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "withdrawal.confirmed",
      name: "withdrawal:console-w2:confirmed",
      data: { withdrawal_id: "console-w2" },
    });
    await waitFor(
      "the delivery to go dead",
      async () => (await deliveryOf(confirmed))?.status === "dead",
      {
        timeoutMs: 60_000,
      },
    );
    // ...and back for its reorg: `broadcast` again is delivered, after the dead `confirmed`.
    receiverUp = true;
    const broadcast = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "withdrawal.broadcast",
      name: "withdrawal:console-w2:broadcast:2",
      data: { withdrawal_id: "console-w2" },
    });
    await waitFor(
      "the later event delivered",
      async () => (await deliveryOf(broadcast))?.status === "delivered",
      {
        timeoutMs: 60_000,
      },
    );

    const { context, page } = await browser!.signIn(t.keys.admin);
    await page.goto(`${url}/console/webhooks`);
    await page.getByRole("button", { name: `Redrive ${confirmed}` }).click();
    // The API's reason, the later event the receiver already has, and nothing re-driven.
    await shows(page.getByRole("alert"), "WEBHOOK_REDRIVE_OUT_OF_ORDER");
    const later = page.locator("tr", { hasText: broadcast });
    expect(await later.count()).toBe(1);
    expect((await later.textContent()) ?? "").toContain("withdrawal.broadcast");
    expect(await deliveryOf(confirmed)).toMatchObject({ status: "dead" });
    await shot(page, "webhooks-redrive-out-of-order");

    // Forced without the confirm (a form posted by hand): refused, nothing re-driven.
    const form = page.locator(`form[action="/console/webhooks/dead-letters/${confirmed}/redrive"]`);
    const unconfirmed = await page.request.post(
      `${url}/console/webhooks/dead-letters/${confirmed}/redrive`,
      {
        form: {
          _csrf: await form.locator("input[name=_csrf]").inputValue(),
          _idem: await form.locator("input[name=_idem]").inputValue(),
          force: "true",
        },
      },
    );
    expect(unconfirmed.status()).toBe(400);
    expect(await unconfirmed.text()).toContain("CONSOLE_FORM_INVALID");
    expect(await deliveryOf(confirmed)).toMatchObject({ status: "dead" });

    // Confirmed: forced, it is sent.
    await page.getByLabel(/receiver drops events older/).check();
    await page.getByRole("button", { name: `Redrive ${confirmed} anyway` }).click();
    await page.waitForURL(/\/console\/webhooks\?notice=/);
    expect(await page.getByRole("status").first().textContent()).toContain("out of order");
    await waitFor(
      "the forced re-drive",
      async () => (await deliveryOf(confirmed))?.status === "delivered",
      { timeoutMs: 60_000 },
    );
    await context.close();
  }, 180_000);
});
