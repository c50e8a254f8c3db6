-- The money-safety half of idempotency for decisions on a withdrawal (approve, reject, cancel), as
-- api.withdrawals' UNIQUE (api_key_id, idempotency_key) is for a create: written in the decision's
-- transaction, so a retry whose stored HTTP answer was lost (a 5xx after the commit, a crash before
-- it was stored) gets the decision's result instead of ALREADY_DECIDED or WITHDRAWAL_INVALID_STATE,
-- and the same key with another request is refused (api/withdrawals/decisions.ts).
CREATE TABLE api.withdrawal_decisions (
  api_key_id       TEXT NOT NULL REFERENCES api.api_keys (id),
  idempotency_key  TEXT NOT NULL,
  withdrawal_id    UUID NOT NULL REFERENCES api.withdrawals (id),
  action           TEXT NOT NULL CHECK (action IN ('approve', 'reject', 'cancel')),
  reason           TEXT,
  at               TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (api_key_id, idempotency_key)
);
CREATE INDEX withdrawal_decisions_withdrawal ON api.withdrawal_decisions (withdrawal_id);
