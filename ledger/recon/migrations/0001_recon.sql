-- Reconciliation runs and their results (owned by ledger/recon). A run compares one chain's facts
-- (chain.transfers) and balances at one final block with the ledger, and keeps what it examined.

CREATE TABLE recon.runs (
  id               BIGSERIAL PRIMARY KEY,
  chain_id         BIGINT NOT NULL,
  block_number     BIGINT NOT NULL,
  block_hash       TEXT,
  mode             TEXT NOT NULL CHECK (mode IN ('full', 'incremental')),
  status           TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
  -- the completed run this incremental run continued from
  previous_run_id  BIGINT REFERENCES recon.runs (id),
  -- inputs: everything at or below these was visible to the run (the next incremental run starts here)
  fact_watermark   BIGINT NOT NULL DEFAULT 0,
  entry_watermark  BIGINT NOT NULL DEFAULT 0,
  snapshot_at      TIMESTAMPTZ,
  facts_examined   INTEGER NOT NULL DEFAULT 0,
  entries_examined INTEGER NOT NULL DEFAULT 0,
  matched          INTEGER NOT NULL DEFAULT 0,
  break_count      INTEGER NOT NULL DEFAULT 0,
  -- custody addresses, assets and confirmation rule used
  inputs           JSONB NOT NULL DEFAULT '{}',
  -- the balance checks (amounts as decimal strings)
  balances         JSONB NOT NULL DEFAULT '[]',
  error            TEXT,
  started_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at      TIMESTAMPTZ
);
CREATE INDEX runs_chain ON recon.runs (chain_id, id DESC);
CREATE INDEX runs_previous ON recon.runs (previous_run_id);

-- The breaks of a run. A break still open is carried into the next run (it is re-examined there).
CREATE TABLE recon.breaks (
  run_id         BIGINT NOT NULL REFERENCES recon.runs (id),
  n              INTEGER NOT NULL,
  type           TEXT NOT NULL,
  asset_id       TEXT NOT NULL,
  key            TEXT NOT NULL,
  direction      TEXT,
  -- the chain reference to re-examine (null for balance breaks and entries without one)
  tx_hash        TEXT,
  position       TEXT,
  entry_ids      UUID[] NOT NULL DEFAULT '{}',
  fact_ids       BIGINT[] NOT NULL DEFAULT '{}',
  chain_amount   NUMERIC(78, 0) NOT NULL,
  ledger_amount  NUMERIC(78, 0) NOT NULL,
  difference     NUMERIC(78, 0) NOT NULL,
  action         TEXT NOT NULL,
  -- the facts and entries involved (amounts as decimal strings)
  items          JSONB NOT NULL DEFAULT '{}',
  PRIMARY KEY (run_id, n)
);
CREATE INDEX breaks_type ON recon.breaks (type, run_id);
