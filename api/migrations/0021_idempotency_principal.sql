-- An Idempotency-Key is the calling principal's, not one API key's (api/idempotency.ts): the
-- principal is the keys' owner (normalised, api/apiKeys.ts `principalOf`), the service or person
-- the keys belong to. A service that rotates its key (old and new both valid for a while) and
-- retries a request that timed out under the new key gets the first answer, and a withdrawal is
-- unique on (principal, key), so the retry can never create and pay a second one.
--
-- Nullable: rows of the previous revision (a rolling deploy runs both) carry none and keep their
-- per-key uniqueness (UNIQUE (api_key_id, idempotency_key) stays; lookups match either). Existing
-- rows are given their owner where that is unique; where one owner already used one key under two
-- API keys (the double this fixes), those rows keep none, so the index can be built.
ALTER TABLE api.idempotency_keys ADD COLUMN principal TEXT;
ALTER TABLE api.withdrawals ADD COLUMN principal TEXT;

UPDATE api.idempotency_keys i SET principal = c.owner
  FROM (SELECT i2.api_key_id, i2.idempotency_key, k.owner,
               count(*) OVER (PARTITION BY k.owner, i2.idempotency_key) AS n
          FROM api.idempotency_keys i2 JOIN api.api_keys k ON k.id = i2.api_key_id) c
 WHERE c.api_key_id = i.api_key_id AND c.idempotency_key = i.idempotency_key AND c.n = 1;

UPDATE api.withdrawals w SET principal = c.requested_by
  FROM (SELECT id, requested_by,
               count(*) OVER (PARTITION BY requested_by, idempotency_key) AS n
          FROM api.withdrawals) c
 WHERE c.id = w.id AND c.n = 1;

CREATE UNIQUE INDEX idempotency_keys_principal ON api.idempotency_keys (principal, idempotency_key);
CREATE UNIQUE INDEX withdrawals_principal_idempotency ON api.withdrawals (principal, idempotency_key);

-- The same for a withdrawal's decisions (approve, reject, cancel: 0017), so a decision's retry
-- under a rotated key gets its result, and its key is refused for a create.
ALTER TABLE api.withdrawal_decisions ADD COLUMN principal TEXT;
UPDATE api.withdrawal_decisions d SET principal = c.owner
  FROM (SELECT d2.api_key_id, d2.idempotency_key, k.owner,
               count(*) OVER (PARTITION BY k.owner, d2.idempotency_key) AS n
          FROM api.withdrawal_decisions d2 JOIN api.api_keys k ON k.id = d2.api_key_id) c
 WHERE c.api_key_id = d.api_key_id AND c.idempotency_key = d.idempotency_key AND c.n = 1;
CREATE UNIQUE INDEX withdrawal_decisions_principal
  ON api.withdrawal_decisions (principal, idempotency_key);
