-- Idempotency keys held by a request in flight carry a lease its process renews every few seconds;
-- a process that dies (kill -9) stops renewing, so its key is free again within seconds, not 120 s.
-- Rows from before this migration (lease NULL) keep the old rule (free 120 s after created_at).
ALTER TABLE api.idempotency_keys ADD COLUMN lease_until TIMESTAMPTZ;
