-- Which of the ledger's customer events (the ledger.customer_events view: reorg holds placed,
-- voided and posted on deposit credits; operators' inflow credits) have been turned into webhook
-- events (api/webhooks/ledgerEvents.ts). Kept per ledger event, not as a high-water mark: ids are
-- taken in insertion order and committed in another, so a mark would skip a late commit.
CREATE TABLE api.ledger_event_marks (
  ledger_event_id  BIGINT PRIMARY KEY,
  -- NULL for the events recorded before these webhooks existed (below): not sent
  event_id         UUID REFERENCES api.webhook_events (id),
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ledger_event_marks_event ON api.ledger_event_marks (event_id);

-- History is not replayed to receivers: what happened before the upgrade stays unsent (a hold
-- placed before it and resolved after is announced by its outcome alone).
INSERT INTO api.ledger_event_marks (ledger_event_id) SELECT id FROM ledger.customer_events;
