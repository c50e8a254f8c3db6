/** The api module's errors. Each code has a row in docs/errors.md and a status in app.ts. */
import { BaseError } from "../foundation/errors.js";

export class UnauthorizedError extends BaseError {
  override name = "UnauthorizedError";
  constructor(details: string) {
    super("Missing or invalid API key", { code: "AUTH_REQUIRED", details });
  }
}

export class ForbiddenScopeError extends BaseError {
  override name = "ForbiddenScopeError";
  constructor(scope: string) {
    super(`This API key lacks the scope ${scope}`, {
      code: "AUTH_SCOPE_MISSING",
      meta: { scope },
    });
  }
}

/**
 * An SSO console session asked to act (a scope other than a `:read` one) after the provider's word
 * on its groups went stale (api.console.oidc.groupsFreshForMs): signing in again asks the provider.
 */
export class SsoGroupsStaleError extends BaseError {
  override name = "SsoGroupsStaleError";
  constructor(ageS: number, freshForS: number) {
    super("The identity provider's word on this session's groups is too old to act on", {
      code: "AUTH_SSO_GROUPS_STALE",
      details: `your groups were given by the identity provider at sign-in ${ageS} s ago, and acting needs them given within ${freshForS} s (a person removed from a group must not go on approving): sign in again through SSO at /console/sso/start`,
      meta: { ageS, freshForS },
    });
  }
}

export class RateLimitedError extends BaseError {
  override name = "RateLimitedError";
  constructor(after: string) {
    super("Rate limit exceeded for this API key", {
      code: "RATE_LIMITED",
      details: `retry after ${after}`,
      retryable: true,
    });
  }
}

export class AuthRateLimitedError extends BaseError {
  override name = "AuthRateLimitedError";
  constructor(retryAfterS: number) {
    super("Too many failed authentication attempts from this address", {
      code: "AUTH_RATE_LIMITED",
      details: `retry after ${retryAfterS} s`,
      retryable: true,
      meta: { retry_after_s: retryAfterS },
    });
  }
}

export class IdempotencyKeyMissingError extends BaseError {
  override name = "IdempotencyKeyMissingError";
  constructor() {
    super("Every POST needs an Idempotency-Key header", {
      code: "IDEMPOTENCY_KEY_MISSING",
      meta: { field: "headers.idempotency-key" },
    });
  }
}

export class IdempotencyConflictError extends BaseError {
  override name = "IdempotencyConflictError";
  constructor(key: string, firstRoute: string) {
    super("This Idempotency-Key was already used with a different request", {
      code: "IDEMPOTENCY_KEY_REUSED",
      details: `Idempotency-Key "${key}" was first used for ${firstRoute} with another body; use a new key for a new request`,
      meta: { field: "headers.idempotency-key", idempotency_key: key },
    });
  }
}

export class IdempotencyInProgressError extends BaseError {
  override name = "IdempotencyInProgressError";
  constructor(key: string) {
    super("A request with this Idempotency-Key is still being processed", {
      code: "IDEMPOTENCY_IN_PROGRESS",
      retryable: true,
      meta: { field: "headers.idempotency-key", idempotency_key: key },
    });
  }
}

/** A request that passed the schema but names something invalid (field says which). */
export class InvalidFieldError extends BaseError {
  override name = "InvalidFieldError";
  constructor(code: string, field: string, message: string) {
    super(message, { code, meta: { field, errors: [{ field, message }] } });
  }
}

export class NotFoundError extends BaseError {
  override name = "NotFoundError";
  constructor(what: string, id: string) {
    super(`No ${what} ${id}`, { code: "RESOURCE_NOT_FOUND", meta: { resource: what, id } });
  }
}

export class WithdrawalStateError extends BaseError {
  override name = "WithdrawalStateError";
  constructor(id: string, status: string, action: string) {
    super(`Withdrawal ${id} is ${status}; cannot ${action}`, {
      code: "WITHDRAWAL_INVALID_STATE",
      meta: { withdrawal_id: id, withdrawal_status: status, action },
    });
  }
}

export class PolicyViolationError extends BaseError {
  override name = "PolicyViolationError";
  constructor(code: string, field: string, message: string, meta: Record<string, unknown> = {}) {
    super(message, { code, meta: { field, errors: [{ field, message }], ...meta } });
  }
}

/**
 * `apikeys create` refused: console SSO is configured and the key could approve withdrawals
 * (`withdrawals:approve` or `admin`) without naming its person (`--email`); nothing is created.
 */
export class ApiKeyEmailRequiredError extends BaseError {
  override name = "ApiKeyEmailRequiredError";
  constructor(scopes: readonly string[]) {
    super(
      `--email is required: console SSO is configured and a key with ${scopes.join(",")} can approve withdrawals; give the email of the person behind it (their SSO email) so their key and SSO session count as one approver`,
      { code: "APIKEY_EMAIL_REQUIRED", meta: { field: "email" } },
    );
  }
}

/**
 * `apikeys set-email` refused (the field that is wrong: `id`, `email`, `by` or `reason`); nothing
 * changed.
 */
export class ApiKeyEmailChangeRefusedError extends BaseError {
  override name = "ApiKeyEmailChangeRefusedError";
  constructor(field: "id" | "email" | "by" | "reason", message: string) {
    super(`--${field}: ${message}`, { code: "APIKEY_EMAIL_CHANGE_REFUSED", meta: { field } });
  }
}

export class ApprovalError extends BaseError {
  override name = "ApprovalError";
  constructor(code: string, message: string, meta: Record<string, unknown> = {}) {
    super(message, { code, meta });
  }
}
