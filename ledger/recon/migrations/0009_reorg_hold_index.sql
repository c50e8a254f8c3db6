-- Every reconciliation run reads the chain's deposit credits under a reorg hold (state 'held' or
-- 'final'; loadReorgHolds in load.ts). They are a handful, but ledger.deposit_credits holds every
-- credit ever made (10M at production volumes, issue 15) and its only state index covers 'held':
-- each run scanned the whole table (1.7-2.4 s at 1M credits on the loaded bench machine). A partial
-- index holds only the few rows the run reads, in the order it reads them. Recon owns the query, so
-- the index is recon's (as transfers_seq in 0006).
CREATE INDEX IF NOT EXISTS deposit_credits_reorg_holds
  ON ledger.deposit_credits (chain_id, updated_at, credit_id) WHERE state IN ('held', 'final');
