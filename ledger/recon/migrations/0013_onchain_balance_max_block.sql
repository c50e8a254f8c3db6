-- The highest block any of a chain's recon.onchain_balances rows was read at. Runs are not always
-- at rising blocks (the role stays its grace period behind a CLI run; `recon run --block`): a run
-- below it reads the deposit addresses read above its block again instead of counting them at a
-- balance of a later block (selectInflowAddresses), and only then looks for them in the table.
ALTER TABLE recon.onchain_balance_state ADD COLUMN max_block BIGINT;
UPDATE recon.onchain_balance_state s
   SET max_block = (SELECT COALESCE(max(b.block_number), 0) FROM recon.onchain_balances b
                     WHERE b.chain_id = s.chain_id);
-- Nullable: the previous revision, during a rolling deploy, inserts state rows without it (NULL is
-- "not known": a run reads as if rows were above it, and the next write takes it from the rows).
