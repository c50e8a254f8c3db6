import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { signWebhook, verifyWebhook } from "./signature.js";

describe("webhook signatures", () => {
  const body = JSON.stringify({ id: "e1", type: "withdrawal.approved" });
  it("is HMAC-SHA256 over id.timestamp.body", () => {
    const mac = createHmac("sha256", "s3cret").update(`e1.1700000000.${body}`).digest("hex");
    expect(signWebhook("s3cret", "e1", 1700000000, body)).toBe(`v1=${mac}`);
  });
  it("verifies a fresh signature and rejects tampering, other secrets and stale timestamps", () => {
    const sig = signWebhook("s3cret", "e1", 1700000000, body);
    const base = { secret: "s3cret", id: "e1", timestamp: 1700000000, body, signature: sig };
    expect(verifyWebhook({ ...base, nowS: 1700000010 })).toBe(true);
    expect(verifyWebhook({ ...base, body: `${body} `, nowS: 1700000010 })).toBe(false);
    expect(verifyWebhook({ ...base, secret: "other", nowS: 1700000010 })).toBe(false);
    expect(verifyWebhook({ ...base, id: "e2", nowS: 1700000010 })).toBe(false);
    expect(verifyWebhook({ ...base, nowS: 1700000000 + 301 })).toBe(false);
  });
});
