-- Unattributed inflows an operator credited (custody-node recon credit-inflow): value that arrived
-- at a deposit address with no chain fact behind it (e.g. an internal transfer on a chain whose
-- node cannot trace), found by reconciliation as an `unattributed_inflow` break. One row per break
-- (exactly once), with who and why; reconciliation counts these as explained inflows.
CREATE TABLE ledger.inflow_credits (
  transfer_id   UUID PRIMARY KEY,
  chain_id      BIGINT NOT NULL,
  address       TEXT NOT NULL,
  asset         TEXT NOT NULL,
  amount        NUMERIC(78, 0) NOT NULL CHECK (amount > 0),
  owner         TEXT NOT NULL,
  -- the final block at which reconciliation measured the inflow
  block_number  BIGINT NOT NULL,
  run_id        BIGINT NOT NULL,
  break_n       INTEGER NOT NULL,
  credited_by   TEXT NOT NULL,
  reason        TEXT NOT NULL,
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (run_id, break_n)
);
CREATE INDEX inflow_credits_address ON ledger.inflow_credits (chain_id, address, asset, block_number);
