-- The signer's tables (schema custody). Callers (withdrawals, sweeps, cold moves) insert into
-- tx_requests through requestTransaction() in their own transaction; only the signer writes the
-- rest. Addresses are lowercase hex; amounts and fees NUMERIC(78,0) in wei.

-- One row per transaction a caller wants sent. Identity is the caller's id (idempotent insert).
--   status: pending   -> no nonce yet
--           signed    -> nonce allocated, signed bytes stored, not yet known to be out
--           broadcast -> at least one attempt handed to a node
--           mined     -> an attempt is in a canonical block, confirmation rule not yet met
--           confirmed -> the chain's confirmation rule is met (final for the caller)
--           failed    -> will not be sent, or its nonce was used by a cancel (see error_code)
CREATE TABLE custody.tx_requests (
  id                   TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
  chain_id             BIGINT NOT NULL,
  from_address         TEXT NOT NULL CHECK (from_address ~ '^0x[0-9a-f]{40}$'),
  to_address           TEXT NOT NULL CHECK (to_address ~ '^0x[0-9a-f]{40}$'),
  value                NUMERIC(78, 0) NOT NULL CHECK (value >= 0),
  data                 TEXT NOT NULL DEFAULT '0x' CHECK (data ~ '^0x([0-9a-f]{2})*$'),
  gas_limit            NUMERIC(78, 0) CHECK (gas_limit > 0),
  -- what the caller does with the outcome: withdrawal, sweep, cold_move, test, ...
  kind                 TEXT NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
  ref_id               TEXT NOT NULL,
  status               TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'signed', 'broadcast', 'mined', 'confirmed', 'failed')),
  nonce                BIGINT CHECK (nonce >= 0),
  -- the attempt that mined (or the last one sent)
  tx_hash              TEXT,
  block_number         BIGINT,
  block_hash           TEXT,
  -- receipt status of the mined attempt: true success, false reverted (the nonce is used either way)
  receipt_success      BOOLEAN,
  gas_used             NUMERIC(78, 0),
  effective_gas_price  NUMERIC(78, 0),
  fee                  NUMERIC(78, 0),
  error_code           TEXT,
  error_message        TEXT,
  -- set when the fee cap stopped a bump (an alert was raised)
  fee_capped_at        TIMESTAMPTZ,
  -- set once the tx-outcomes doorbell for the final status is enqueued; a sweep re-rings NULLs
  notified_at          TIMESTAMPTZ,
  created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One request per nonce per wallet: a nonce is never given twice.
CREATE UNIQUE INDEX tx_requests_nonce ON custody.tx_requests (chain_id, from_address, nonce)
  WHERE nonce IS NOT NULL;
-- The broadcaster's work queue (pending in arrival order) and the tracker's (in-flight by nonce).
CREATE INDEX tx_requests_open ON custody.tx_requests (chain_id, from_address, status, created_at)
  WHERE status IN ('pending', 'signed', 'broadcast', 'mined');
CREATE INDEX tx_requests_unnotified ON custody.tx_requests (updated_at)
  WHERE status IN ('confirmed', 'failed') AND notified_at IS NULL;
CREATE INDEX tx_requests_ref ON custody.tx_requests (kind, ref_id);

-- Every signed transaction, stored before it is sent. Only these bytes are ever (re)sent: KMS
-- signatures are not deterministic, so re-signing would make a second transaction.
--   status: signed     stored, not yet sent
--           broadcast  handed to a node (or the node already knew it)
--           mined      in a canonical block (the winner at its nonce)
--           replaced   another attempt at the same nonce mined
--           rejected   a node refused the bytes for good (they can never be included)
CREATE TABLE custody.tx_attempts (
  id                        BIGSERIAL PRIMARY KEY,
  request_id                TEXT NOT NULL REFERENCES custody.tx_requests (id),
  chain_id                  BIGINT NOT NULL,
  from_address              TEXT NOT NULL CHECK (from_address ~ '^0x[0-9a-f]{40}$'),
  nonce                     BIGINT NOT NULL CHECK (nonce >= 0),
  -- 'send' carries the request; 'cancel' is a 0-value self-transfer that uses up the nonce
  purpose                   TEXT NOT NULL DEFAULT 'send' CHECK (purpose IN ('send', 'cancel')),
  tx_hash                   TEXT NOT NULL UNIQUE CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
  raw_tx                    TEXT NOT NULL CHECK (raw_tx ~ '^0x([0-9a-f]{2})+$'),
  gas_limit                 NUMERIC(78, 0) NOT NULL,
  max_fee_per_gas           NUMERIC(78, 0),
  max_priority_fee_per_gas  NUMERIC(78, 0),
  gas_price                 NUMERIC(78, 0),
  status                    TEXT NOT NULL DEFAULT 'signed'
                            CHECK (status IN ('signed', 'broadcast', 'mined', 'replaced', 'rejected')),
  last_error_class          TEXT,
  last_error                TEXT,
  created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
  broadcast_at              TIMESTAMPTZ,
  CHECK ((max_fee_per_gas IS NOT NULL AND max_priority_fee_per_gas IS NOT NULL) OR gas_price IS NOT NULL)
);
CREATE INDEX tx_attempts_request ON custody.tx_attempts (request_id);
CREATE INDEX tx_attempts_nonce ON custody.tx_attempts (chain_id, from_address, nonce);
