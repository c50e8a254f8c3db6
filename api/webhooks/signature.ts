/**
 * Webhook signatures per Standard Webhooks (standardwebhooks.com): headers `webhook-id`,
 * `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "<id>.<timestamp>.<body>">`, so stock verifiers (the `standardwebhooks` package, svix) accept our
 * deliveries. The HMAC key is the secret's bytes: a spec secret `whsec_<base64>` is base64-decoded
 * (what those verifiers do); any other string is used as its UTF-8 bytes (what they do with
 * `format: "raw"`), so secrets configured before this change keep working. Receivers verify the MAC,
 * refuse timestamps outside their tolerance either way (replays), and dedupe on the id.
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { BaseError } from "../../foundation/errors.js";

const SPEC_PREFIX = "whsec_";
/** The spec's (and its libraries') default tolerance. */
export const WEBHOOK_TOLERANCE_S = 300;

export function webhookKey(secret: string): Buffer {
  if (secret.startsWith(SPEC_PREFIX)) {
    const b64 = secret.slice(SPEC_PREFIX.length);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64))
      throw new BaseError("a whsec_ webhook secret must be base64 after its prefix", {
        code: "WEBHOOK_SECRET_INVALID",
      });
    return Buffer.from(b64, "base64");
  }
  if (secret.length === 0)
    throw new BaseError("a webhook secret cannot be empty", { code: "WEBHOOK_SECRET_INVALID" });
  return Buffer.from(secret, "utf8");
}

/** The `webhook-signature` header value: `v1,<base64>`. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const mac = createHmac("sha256", webhookKey(secret)).update(`${id}.${timestamp}.${body}`);
  return `v1,${mac.digest("base64")}`;
}

/** Unix seconds as the header carries them: digits only (no NaN, no fractions, no exponents). */
function parseTimestamp(value: number | string): number | undefined {
  const text = typeof value === "number" ? String(value) : value.trim();
  if (!/^[0-9]{1,12}$/.test(text)) return undefined;
  return Number(text);
}

/**
 * True when one of the header's space-separated `v1,<base64>` signatures matches and the timestamp
 * is a whole number of seconds within `toleranceS` of now (past or future).
 */
export function verifyWebhook(input: {
  secret: string;
  id: string;
  timestamp: number | string;
  body: string;
  signature: string;
  nowS?: number;
  toleranceS?: number;
}): boolean {
  const timestamp = parseTimestamp(input.timestamp);
  if (timestamp === undefined) return false;
  const now = input.nowS ?? Math.floor(Date.now() / 1000);
  if (
    !Number.isFinite(now) ||
    Math.abs(now - timestamp) > (input.toleranceS ?? WEBHOOK_TOLERANCE_S)
  )
    return false;
  const expected = Buffer.from(signWebhook(input.secret, input.id, timestamp, input.body));
  return input.signature.split(" ").some((candidate) => {
    const actual = Buffer.from(candidate);
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  });
}
