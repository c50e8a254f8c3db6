/**
 * api: the Fastify app (`buildApp`) and the /v1 API: API keys with scopes, rate limits per key,
 * idempotent POSTs, deposits and chain reads, withdrawals with policies and M-of-N approvals, the
 * append-only audit log, and signed webhooks with retries and a dead-letter list. It owns the `api`
 * schema. Business rules of money movement live in the ledger and signer; the API decides policy.
 */

export { appendAudit, listAudit } from "../foundation/audit.js";
export {
  type ApiKey,
  createApiKey,
  hasScope,
  revokeApiKey,
  SCOPES,
  type Scope,
} from "./apiKeys.js";
export { buildApp, errorStatus, problem } from "./app.js";
export { apiRole, apiWorkerRole } from "./role.js";
export { createV1Plugin, type V1Options } from "./v1.js";
export { createWebhookDispatcher, type WebhookDispatcher } from "./webhooks/dispatcher.js";
export { type EventType, emitEvent } from "./webhooks/events.js";
export { signWebhook, verifyWebhook } from "./webhooks/signature.js";
