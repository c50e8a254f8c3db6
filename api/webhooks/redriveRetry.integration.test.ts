/**
 * A re-drive retried under its Idempotency-Key after its answer was lost (a 5xx after the commit
 * leaves the key bound to the request, unanswered, and the same request may run again): the retry
 * is answered with what the re-drive answered, whether its deliveries are still under way (not
 * DEAD_LETTER_NOT_FOUND) or died again meanwhile (not re-driven a second time). Real HTTP
 * receiver on loopback, Postgres and BullMQ on Redis, through /v1.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../ops/testing/wait.js";
import { answerLost } from "../testing/lostAnswer.js";
import { emitEvent } from "./events.js";
import { createWebhookTestContext, type WebhookTestContext } from "./testing/receiver.js";

let t: WebhookTestContext;
/** Event ids whose next request the receiver holds unanswered until `release` is called. */
const holdIds = new Set<string>();
const held = new Map<string, () => void>();

beforeAll(async () => {
  t = await createWebhookTestContext({
    // The receiver is down throughout: every delivery dies after its two attempts.
    receive: async ({ headers }, res) => {
      const id = String(headers["webhook-id"]);
      if (holdIds.has(id)) {
        holdIds.delete(id);
        await new Promise<void>((r) => held.set(id, r));
      }
      res.statusCode = 500;
    },
    webhooks: (origin) => [{ url: `${origin}/hook`, secretEnv: "WH", events: ["*"] }],
    webhookSecrets: { WH: "secret" },
    // The held request must outlast the test's steps rather than time out as a failed attempt.
    dispatcher: { attempts: 2, backoffMs: 20, sweepIntervalMs: 100, timeoutMs: 30_000 },
  });
});
afterAll(async () => {
  for (const release of held.values()) release();
  await t?.cleanup();
});

const delivery = async (eventId: string) =>
  (
    await t.ctx.db.pool.query<{ status: string; redrives: number }>(
      "SELECT status, redrives FROM api.webhook_deliveries WHERE event_id = $1",
      [eventId],
    )
  ).rows[0];

async function deadEvent(withdrawalId: string): Promise<string> {
  const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
    type: "withdrawal.confirmed",
    name: `withdrawal:${withdrawalId}:confirmed`,
    data: { withdrawal_id: withdrawalId },
  });
  await waitFor("the dead letter", async () => (await delivery(id))?.status === "dead");
  return id;
}

const redrive = (eventId: string, idem: string, key = t.keys.admin) =>
  t.call(key, {
    method: "POST",
    url: `/v1/webhooks/dead-letters/${eventId}/redrive`,
    headers: { "idempotency-key": idem },
    payload: {},
  });

describe("a re-drive retried after its answer was lost", () => {
  it("while its delivery is still under way: the retry gets the re-drive's answer", async () => {
    const id = await deadEvent("w-under-way");
    holdIds.add(id);
    const first = await redrive(id, "redrive-under-way");
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().redriven).toMatchObject([{ eventId: id, status: "pending", redrives: 1 }]);
    await waitFor("the receiver holding the re-driven delivery", () => held.has(id));
    await answerLost(t.ctx.db.pool, "redrive-under-way");

    const retry = await redrive(id, "redrive-under-way");
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.json()).toEqual(first.json());
    expect(await delivery(id)).toEqual({ status: "pending", redrives: 1 });
    held.get(id)!();
  });

  it("after its delivery died again: the retry gets the re-drive's answer and re-drives nothing", async () => {
    const id = await deadEvent("w-died-again");
    const first = await redrive(id, "redrive-died-again");
    expect(first.statusCode, first.body).toBe(200);
    await waitFor("the re-driven delivery dead again", async () => {
      const d = await delivery(id);
      return d?.status === "dead" && d.redrives === 1;
    });
    await answerLost(t.ctx.db.pool, "redrive-died-again");

    const retry = await redrive(id, "redrive-died-again");
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.json()).toEqual(first.json());
    expect(await delivery(id)).toEqual({ status: "dead", redrives: 1 });
    // A new request (another key) is a new re-drive.
    const again = await redrive(id, "redrive-again");
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json().redriven).toMatchObject([{ eventId: id, redrives: 2 }]);
  });

  it("under the rotated key of the same owner, after its delivery died again: the re-drive's answer, nothing re-driven again", async () => {
    // old code: expected { redriven: [ { …(9) } ] } to deeply equal { redriven: [ { …(9) } ] }
    // (redrives 2, not 1: the retry under the new key found no record under it and re-drove the
    // dead delivery a second time)
    const old = await t.newKey("ops-rotating", ["admin"]);
    const rotated = await t.newKey("ops-rotating", ["admin"]);
    const id = await deadEvent("w-rotated");
    const first = await redrive(id, "redrive-rotated", old);
    expect(first.statusCode, first.body).toBe(200);
    await waitFor("the re-driven delivery dead again", async () => {
      const d = await delivery(id);
      return d?.status === "dead" && d.redrives === 1;
    });
    await answerLost(t.ctx.db.pool, "redrive-rotated");

    const retry = await redrive(id, "redrive-rotated", rotated);
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.json()).toEqual(first.json());
    expect(await delivery(id)).toEqual({ status: "dead", redrives: 1 });
    // Its HTTP record gone too: the re-drive's own record still answers, and refuses another body.
    await t.ctx.db.pool.query("DELETE FROM api.idempotency_keys WHERE idempotency_key = $1", [
      "redrive-rotated",
    ]);
    const other = await t.call(rotated, {
      method: "POST",
      url: `/v1/webhooks/dead-letters/${id}/redrive`,
      headers: { "idempotency-key": "redrive-rotated" },
      payload: { force: true },
    });
    expect(other.statusCode, other.body).toBe(409);
    expect(other.json().code).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(await delivery(id)).toEqual({ status: "dead", redrives: 1 });
  });
});
