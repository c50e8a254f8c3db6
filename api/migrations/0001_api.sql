-- The api module's tables: API keys, idempotency records, the append-only audit log, webhook
-- events and deliveries, withdrawals and their approvals.

-- API keys. The secret is never stored: only its SHA-256. `owner` is the person or service the key
-- belongs to; approvals count distinct owners, so one operator with two keys is still one approver.
CREATE TABLE api.api_keys (
  id           TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
  owner        TEXT NOT NULL CHECK (length(owner) BETWEEN 1 AND 100),
  description  TEXT NOT NULL DEFAULT '',
  secret_hash  TEXT NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
  scopes       TEXT[] NOT NULL,
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  revoked_at   TIMESTAMPTZ
);

-- One row per (key, Idempotency-Key). status_code NULL while the first request is in flight.
CREATE TABLE api.idempotency_keys (
  api_key_id       TEXT NOT NULL REFERENCES api.api_keys (id),
  idempotency_key  TEXT NOT NULL,
  method           TEXT NOT NULL,
  route            TEXT NOT NULL,
  request_hash     TEXT NOT NULL,
  status_code      INTEGER,
  response_body    TEXT,
  content_type     TEXT,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  completed_at     TIMESTAMPTZ,
  PRIMARY KEY (api_key_id, idempotency_key)
);

-- Append-only: who did what to which entity, when.
CREATE TABLE api.audit_log (
  id           BIGSERIAL PRIMARY KEY,
  at           TIMESTAMPTZ NOT NULL DEFAULT now(),
  actor        TEXT NOT NULL,
  action       TEXT NOT NULL,
  entity_type  TEXT NOT NULL,
  entity_id    TEXT NOT NULL,
  details      JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_entity ON api.audit_log (entity_type, entity_id, id);

CREATE FUNCTION api.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'api.audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON api.audit_log
  FOR EACH ROW EXECUTE FUNCTION api.audit_log_append_only();

-- Webhook events, identified by a deterministic id (UUID v5 of what happened), so producing the same
-- event twice stores it once.
CREATE TABLE api.webhook_events (
  id          UUID PRIMARY KEY,
  type        TEXT NOT NULL,
  payload     JSONB NOT NULL,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One delivery per (event, endpoint). 'dead' after the retries ran out; re-drive sets it pending.
CREATE TABLE api.webhook_deliveries (
  event_id      UUID NOT NULL REFERENCES api.webhook_events (id),
  endpoint      TEXT NOT NULL,
  status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts      INTEGER NOT NULL DEFAULT 0,
  redrives      INTEGER NOT NULL DEFAULT 0,
  last_error    TEXT,
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  delivered_at  TIMESTAMPTZ,
  PRIMARY KEY (event_id, endpoint)
);
CREATE INDEX webhook_deliveries_status ON api.webhook_deliveries (status, updated_at);

-- Withdrawals requested through the API. Amounts in base units; addresses lowercase.
CREATE TABLE api.withdrawals (
  id                  UUID PRIMARY KEY,
  customer_id         TEXT NOT NULL,
  chain_id            BIGINT NOT NULL,
  asset               TEXT NOT NULL CHECK (asset ~ '^0x[0-9a-f]{40}$'),
  to_address          TEXT NOT NULL CHECK (to_address ~ '^0x[0-9a-f]{40}$'),
  amount              NUMERIC(78, 0) NOT NULL CHECK (amount > 0),
  status              TEXT NOT NULL CHECK (status IN ('requested', 'pending_approval', 'approved',
                        'signing', 'broadcast', 'confirmed', 'rejected', 'cancelled', 'failed')),
  required_approvals  INTEGER NOT NULL DEFAULT 0,
  requested_by        TEXT NOT NULL,
  api_key_id          TEXT NOT NULL REFERENCES api.api_keys (id),
  idempotency_key     TEXT NOT NULL,
  from_address        TEXT,
  tx_hash             TEXT,
  fee                 NUMERIC(78, 0),
  failure_reason      TEXT,
  created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  -- The money-safety half of idempotency: even if the stored HTTP response is lost, the same key
  -- can never create a second withdrawal.
  UNIQUE (api_key_id, idempotency_key)
);
CREATE INDEX withdrawals_customer ON api.withdrawals (customer_id, created_at);
CREATE INDEX withdrawals_status ON api.withdrawals (status, updated_at);
CREATE INDEX withdrawals_rolling ON api.withdrawals (customer_id, chain_id, asset, created_at);

CREATE TABLE api.withdrawal_approvals (
  withdrawal_id  UUID NOT NULL REFERENCES api.withdrawals (id),
  approver       TEXT NOT NULL,
  api_key_id     TEXT NOT NULL REFERENCES api.api_keys (id),
  decision       TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
  reason         TEXT,
  at             TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (withdrawal_id, approver)
);
CREATE INDEX withdrawal_approvals_key ON api.withdrawal_approvals (api_key_id);
