-- The run that last wrote a chain's recon.onchain_balances (issue 15). A reconciler process keeps
-- the rows it has read or written in memory and, while this row still names the run it wrote
-- them as, reads them from there instead of from the table: at 100,000 deposit addresses, reading
-- the 10,000 a block touched visits nearly every page of the table (10,000 random rows of
-- 100,000, ~30 rows a page at fillfactor 50), 4,944 pages, 0.06 s warm and 0.5-0.8 s when they
-- must come back from disk. Any other writer moves this row, and the memory is dropped.
CREATE TABLE recon.onchain_balance_state (
  chain_id  BIGINT PRIMARY KEY,
  run_id    BIGINT NOT NULL REFERENCES recon.runs (id)
);
