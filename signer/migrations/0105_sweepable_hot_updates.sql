-- Crediting a block updates one running sweepable balance per deposit address (the statement
-- trigger of 0103, one upsert per address per statement); make those updates HOT (issue 15).
--
-- The planner's partial index named `balance` in its predicate, so every balance change was a new
-- row version with an entry in both indexes: three random pages per credited address (heap, primary
-- key, partial index) instead of one. The predicate now reads a stored flag that changes only when
-- the balance crosses zero (a credit to an address that already has something to sweep leaves it
-- as it is), and pages keep room for the new version on the same page (fillfactor, as
-- ledger.accounts). Adding the column rewrites the table, which applies the fillfactor to it.
ALTER TABLE custody.sweepable_balances
  SET (fillfactor = 50),
  ADD COLUMN positive BOOLEAN GENERATED ALWAYS AS (balance > 0) STORED;
DROP INDEX custody.sweepable_balances_positive;
CREATE INDEX sweepable_balances_positive ON custody.sweepable_balances (chain_id, address)
  WHERE positive;
