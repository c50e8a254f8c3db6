-- The dispatcher delivers a deposit's (or withdrawal's) events to an endpoint in created_at order
-- (api/webhooks/dispatcher.ts). Events written in one transaction (a withdrawal moved
-- signing -> broadcast -> confirmed by one outcome) all had the transaction's now(): the order
-- among them was the random id's. The statement's clock orders them as written.
ALTER TABLE api.webhook_events ALTER COLUMN created_at SET DEFAULT clock_timestamp();
