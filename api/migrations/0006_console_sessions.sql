-- Operator console sessions (api/console). A session is a short-lived API key of its own (same
-- owner and scopes as the key that signed in), so the console calls /v1 with the API's own auth,
-- scope checks, idempotency and audit. Only hashes are stored; the key is revoked at sign-out or
-- when the session is found idle or expired.
CREATE TABLE api.console_sessions (
  key_id         TEXT PRIMARY KEY REFERENCES api.api_keys (id),
  signed_in_with TEXT NOT NULL REFERENCES api.api_keys (id),
  csrf_hash      TEXT NOT NULL CHECK (csrf_hash ~ '^[0-9a-f]{64}$'),
  created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  ended_at       TIMESTAMPTZ,
  ended_reason   TEXT
);
CREATE INDEX console_sessions_signed_in_with ON api.console_sessions (signed_in_with);
