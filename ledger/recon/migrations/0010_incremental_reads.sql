-- Reads an incremental reconciliation run makes at production volumes (issue 15), without walking
-- whole tables:
--
-- 1. A chain's facts by id. The fact watermark (max(id) of the chain) and the facts above the
--    previous run's watermark were read through the all-chain primary key (max: walk back until a
--    row of the chain; above: a bitmap of every row of the chain, filtered): 0.4-1.0 s at 1M facts,
--    ten times that at 10M. A (chain_id, id) index serves both as one range; the queries bound it
--    with a row value ((chain_id, id) > ($1, $2)) so the planner takes it. One entry per fact, at
--    the right end of its chain's range. Recon owns the queries, so the index is recon's (as
--    transfers_seq in 0006).
CREATE INDEX IF NOT EXISTS transfers_chain_id ON chain.transfers (chain_id, id);

-- 2. The ledger side of the balance checks: the custody, fee and suspense accounts of the chain's
--    assets (a few per asset). Read by `kind <> 'user'` they were a scan of every account (1M
--    customers at production volumes). A partial index holds only those accounts; updates of
--    balances leave it alone (neither asset_id nor kind changes).
CREATE INDEX IF NOT EXISTS accounts_not_user ON ledger.accounts (asset_id) WHERE kind <> 'user';

-- 3. User liabilities per asset (credits − debits posted over the `user:*` accounts of the asset),
--    kept running: a run that continues from the run named in recon.liability_state adds the
--    postings of the entries it loaded anyway (the entries above the previous run's watermark and
--    those that filled its seq gaps) instead of summing every user account (1M at production
--    volumes). A full run, or a run that does not continue from that run, sums the accounts again
--    (the check) and replaces the rows. The totals are as of the run's snapshot, before the run
--    takes out entries whose fact is above its block and pending reorg holds.
CREATE TABLE recon.liability_totals (
  chain_id  BIGINT NOT NULL,
  asset_id  TEXT NOT NULL,
  total     NUMERIC(78, 0) NOT NULL,
  PRIMARY KEY (chain_id, asset_id)
);

CREATE TABLE recon.liability_state (
  chain_id  BIGINT PRIMARY KEY,
  run_id    BIGINT NOT NULL REFERENCES recon.runs (id)
);
