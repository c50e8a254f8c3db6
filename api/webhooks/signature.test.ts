import { createHmac, randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { signWebhook, verifyWebhook, webhookKey } from "./signature.js";

describe("webhook signatures (Standard Webhooks)", () => {
  const body = JSON.stringify({ id: "e1", type: "withdrawal.approved" });
  const specSecret = `whsec_${randomBytes(32).toString("base64")}`;

  it("is v1,<base64 HMAC-SHA256> over id.timestamp.body, keyed by the decoded whsec_ secret", () => {
    const key = Buffer.from(specSecret.slice(6), "base64");
    const mac = createHmac("sha256", key).update(`e1.1700000000.${body}`).digest("base64");
    expect(signWebhook(specSecret, "e1", 1700000000, body)).toBe(`v1,${mac}`);
    // a plain secret is its UTF-8 bytes
    const raw = createHmac("sha256", "s3cret").update(`e1.1700000000.${body}`).digest("base64");
    expect(signWebhook("s3cret", "e1", 1700000000, body)).toBe(`v1,${raw}`);
  });

  it("matches the standardwebhooks package, both ways, for spec and raw secrets", () => {
    const now = Math.floor(Date.now() / 1000);
    const headers = {
      "webhook-id": "msg_1",
      "webhook-timestamp": String(now),
      "webhook-signature": signWebhook(specSecret, "msg_1", now, body),
    };
    expect(new Webhook(specSecret).verify(body, headers)).toEqual(JSON.parse(body));
    const theirs = new Webhook(specSecret).sign("msg_1", new Date(now * 1000), body);
    expect(theirs).toBe(headers["webhook-signature"]);
    expect(
      verifyWebhook({ secret: specSecret, id: "msg_1", timestamp: now, body, signature: theirs }),
    ).toBe(true);
    const rawHeaders = {
      ...headers,
      "webhook-signature": signWebhook("s3cret", "msg_1", now, body),
    };
    expect(new Webhook("s3cret", { format: "raw" }).verify(body, rawHeaders)).toEqual(
      JSON.parse(body),
    );
    expect(() => new Webhook(specSecret).verify(`${body} `, headers)).toThrow();
  });

  it("verifies a fresh signature and rejects tampering, other secrets and stale timestamps", () => {
    const sig = signWebhook("s3cret", "e1", 1700000000, body);
    const base = { secret: "s3cret", id: "e1", timestamp: 1700000000, body, signature: sig };
    expect(verifyWebhook({ ...base, nowS: 1700000010 })).toBe(true);
    expect(verifyWebhook({ ...base, timestamp: "1700000000", nowS: 1700000010 })).toBe(true);
    expect(verifyWebhook({ ...base, body: `${body} `, nowS: 1700000010 })).toBe(false);
    expect(verifyWebhook({ ...base, secret: "other", nowS: 1700000010 })).toBe(false);
    expect(verifyWebhook({ ...base, id: "e2", nowS: 1700000010 })).toBe(false);
    expect(verifyWebhook({ ...base, nowS: 1700000000 + 301 })).toBe(false);
    // from the future beyond tolerance, too
    expect(verifyWebhook({ ...base, nowS: 1700000000 - 301 })).toBe(false);
  });

  it("refuses NaN, fractional, negative, exponent and empty timestamps", () => {
    for (const timestamp of [
      Number.NaN,
      "NaN",
      1700000000.5,
      "1.7e9",
      "-1700000000",
      "",
      " ",
      "0x1",
    ]) {
      const sig = signWebhook("s3cret", "e1", Number(timestamp), body);
      expect(
        verifyWebhook({
          secret: "s3cret",
          id: "e1",
          timestamp,
          body,
          signature: sig,
          nowS: 1700000000,
        }),
        String(timestamp),
      ).toBe(false);
    }
    expect(
      verifyWebhook({
        secret: "s3cret",
        id: "e1",
        timestamp: 1700000000,
        body,
        signature: signWebhook("s3cret", "e1", 1700000000, body),
        nowS: Number.NaN,
      }),
    ).toBe(false);
  });

  it("accepts any one of several space-separated signatures (secret rotation)", () => {
    const good = signWebhook("new", "e1", 1700000000, body);
    const old = signWebhook("old", "e1", 1700000000, body);
    const base = { secret: "new", id: "e1", timestamp: 1700000000, body, nowS: 1700000000 };
    expect(verifyWebhook({ ...base, signature: `${old} ${good}` })).toBe(true);
    expect(verifyWebhook({ ...base, signature: old })).toBe(false);
    expect(verifyWebhook({ ...base, signature: good.replace("v1,", "v1=") })).toBe(false);
  });

  it("refuses an empty secret and a whsec_ secret that is not base64", () => {
    expect(() => webhookKey("")).toThrow();
    expect(() => webhookKey("whsec_not base64!")).toThrow();
  });
});
