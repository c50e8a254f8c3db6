-- The record of a state-deciding request under its Idempotency-Key, written in the decision's
-- transaction, as api.withdrawal_decisions is for a withdrawal's (0017): a request whose answer was
-- lost (a 5xx after the commit leaves its key unanswered, and the same request may run again) is
-- answered from it with what it decided, not decided again on the state as it is by then (a break
-- a later run reopened, a delivery that died again after its re-drive).
CREATE TABLE api.recon_break_decisions (
  api_key_id       TEXT NOT NULL REFERENCES api.api_keys (id),
  idempotency_key  TEXT NOT NULL,
  request_hash     TEXT NOT NULL,
  action           TEXT NOT NULL CHECK (action IN ('acknowledge', 'resolve')),
  break_ref        TEXT NOT NULL,
  -- The break's state as the decision left it: the answer (api/routes/recon.ts BreakStateOut).
  result           JSONB NOT NULL,
  at               TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (api_key_id, idempotency_key)
);

CREATE TABLE api.webhook_redrives (
  api_key_id       TEXT NOT NULL REFERENCES api.api_keys (id),
  idempotency_key  TEXT NOT NULL,
  request_hash     TEXT NOT NULL,
  event_id         UUID NOT NULL REFERENCES api.webhook_events (id),
  -- The deliveries as the re-drive left them (pending): the answer.
  redriven         JSONB NOT NULL,
  at               TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (api_key_id, idempotency_key)
);
CREATE INDEX webhook_redrives_event ON api.webhook_redrives (event_id);
