-- What the chain facts explain of each deposit address's balance, kept running (issue 15): per
-- (chain, deposit address, asset) the canonical facts into the address (fees excluded) minus the
-- facts out of it, up to the block of the run named in recon.expected_fact_state. An incremental
-- run adds the facts of the blocks it covers and recomputes from history only the addresses a reorg
-- or a late row touched at heights already counted; a full run (the check) rebuilds the table.
-- Sweeps no fact shows and operator inflow credits are few and are summed per run (inflows.ts).
CREATE TABLE recon.expected_fact_balances (
  chain_id  BIGINT NOT NULL,
  address   TEXT NOT NULL,
  asset     TEXT NOT NULL,
  balance   NUMERIC(78, 0) NOT NULL,
  PRIMARY KEY (chain_id, address, asset)
);

-- The completed run (and its block) recon.expected_fact_balances stands at, per chain. A run
-- continues the table only from the run it continues from; otherwise it rebuilds it.
CREATE TABLE recon.expected_fact_state (
  chain_id      BIGINT PRIMARY KEY,
  run_id        BIGINT NOT NULL REFERENCES recon.runs (id),
  block_number  BIGINT NOT NULL
);
