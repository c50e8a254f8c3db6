-- A break's acknowledgement or resolution and a webhook re-drive (0018) are recorded under the
-- calling principal's Idempotency-Key, as a request's record, a withdrawal and a decision on one
-- are (0021): a retry under a rotated key of the same owner (old and new both valid, or the old
-- revoked since) whose answer was lost gets what the first request decided, not a second decision
-- on the state as it is by then (a break a later run reopened, a delivery that died again).
--
-- Nullable, as in 0021: rows of the previous revision (a rolling deploy runs both) carry none and
-- keep their per-key primary key; lookups match either. Existing rows get their key's owner where
-- that is unique for the Idempotency-Key; where one owner used one key under two API keys, those
-- keep none, so the index can be built.
ALTER TABLE api.recon_break_decisions ADD COLUMN principal TEXT;
UPDATE api.recon_break_decisions d SET principal = c.owner
  FROM (SELECT d2.api_key_id, d2.idempotency_key, k.owner,
               count(*) OVER (PARTITION BY k.owner, d2.idempotency_key) AS n
          FROM api.recon_break_decisions d2 JOIN api.api_keys k ON k.id = d2.api_key_id) c
 WHERE c.api_key_id = d.api_key_id AND c.idempotency_key = d.idempotency_key AND c.n = 1;
CREATE UNIQUE INDEX recon_break_decisions_principal
  ON api.recon_break_decisions (principal, idempotency_key);

ALTER TABLE api.webhook_redrives ADD COLUMN principal TEXT;
UPDATE api.webhook_redrives r SET principal = c.owner
  FROM (SELECT r2.api_key_id, r2.idempotency_key, k.owner,
               count(*) OVER (PARTITION BY k.owner, r2.idempotency_key) AS n
          FROM api.webhook_redrives r2 JOIN api.api_keys k ON k.id = r2.api_key_id) c
 WHERE c.api_key_id = r.api_key_id AND c.idempotency_key = r.idempotency_key AND c.n = 1;
CREATE UNIQUE INDEX webhook_redrives_principal ON api.webhook_redrives (principal, idempotency_key);
