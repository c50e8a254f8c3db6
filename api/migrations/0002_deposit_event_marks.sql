-- Which deposit webhook events have been produced for which chain fact, so the producer does not
-- rescan history (the events themselves are deduplicated by their deterministic id anyway).
CREATE TABLE api.deposit_event_marks (
  transfer_id  BIGINT NOT NULL,
  event        TEXT NOT NULL CHECK (event IN ('detected', 'confirmed', 'credited', 'orphaned')),
  event_id     UUID NOT NULL REFERENCES api.webhook_events (id),
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (transfer_id, event)
);
CREATE INDEX deposit_event_marks_event ON api.deposit_event_marks (event_id);
