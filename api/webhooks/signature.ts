/**
 * Webhook signatures: HMAC-SHA256 over `<event id>.<unix timestamp>.<body>`, sent as
 * `Webhook-Signature: v1=<hex>` with `Webhook-Id` and `Webhook-Timestamp`. Receivers verify the MAC
 * and reject timestamps outside their tolerance (replays), and dedupe on the id.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  return `v1=${createHmac("sha256", secret).update(`${id}.${timestamp}.${body}`).digest("hex")}`;
}

export function verifyWebhook(input: {
  secret: string;
  id: string;
  timestamp: number;
  body: string;
  signature: string;
  nowS?: number;
  toleranceS?: number;
}): boolean {
  const now = input.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - input.timestamp) > (input.toleranceS ?? 300)) return false;
  const expected = Buffer.from(signWebhook(input.secret, input.id, input.timestamp, input.body));
  const actual = Buffer.from(input.signature);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
