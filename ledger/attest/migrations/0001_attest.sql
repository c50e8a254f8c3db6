-- Proof of reserves and liabilities (owned by ledger/attest). An attestation is one asset's figures at
-- one final block whose reconciliation run had no open break; it is sent on chain through the signer
-- (custody.tx_requests id `attest:<id>`) and its leaves are kept so any customer's proof can be
-- rebuilt later exactly as attested.

-- A customer's random salt per asset: the leaf carries keccak256(salt ‖ id), so the published tree
-- names nobody and two assets' trees cannot be linked by leaf. Kept for good (old proofs need it).
CREATE TABLE attest.salts (
  customer_id TEXT NOT NULL,
  asset_id    TEXT NOT NULL,
  salt        TEXT NOT NULL CHECK (salt ~ '^0x[0-9a-f]{64}$'),
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, asset_id)
);

CREATE TABLE attest.attestations (
  id               BIGSERIAL PRIMARY KEY,
  chain_id         BIGINT NOT NULL,
  asset_id         TEXT NOT NULL,
  token            TEXT NOT NULL CHECK (token ~ '^0x[0-9a-f]{40}$'),
  block_number     BIGINT NOT NULL,
  -- the completed reconciliation run at that block that had no open break
  run_id           BIGINT NOT NULL,
  contract         TEXT NOT NULL,
  reserves         NUMERIC(78, 0) NOT NULL CHECK (reserves >= 0),
  liabilities      NUMERIC(78, 0) NOT NULL CHECK (liabilities >= 0),
  liabilities_root TEXT NOT NULL,
  addresses_root   TEXT NOT NULL,
  report_hash      TEXT NOT NULL,
  leaf_count       INTEGER NOT NULL,
  -- the custody addresses the reserves were read from, with their balances (decimal strings)
  addresses        JSONB NOT NULL,
  request_id       TEXT NOT NULL UNIQUE,
  -- requested: handed to the signer; confirmed: mined (confirmation rule), its gas booked; failed:
  -- the signer gave up (a later block is attested instead)
  status           TEXT NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'confirmed', 'failed')),
  tx_hash          TEXT,
  error            TEXT,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  confirmed_at     TIMESTAMPTZ,
  UNIQUE (chain_id, asset_id, block_number)
);
CREATE INDEX attestations_latest ON attest.attestations (asset_id, status, block_number DESC);

CREATE TABLE attest.leaves (
  attestation_id BIGINT NOT NULL REFERENCES attest.attestations (id),
  customer_id    TEXT NOT NULL,
  balance        NUMERIC(78, 0) NOT NULL CHECK (balance >= 0),
  PRIMARY KEY (attestation_id, customer_id)
);
