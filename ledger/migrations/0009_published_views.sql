-- Views the ledger publishes for the modules above it (docs/architecture.md, "Published views":
-- the api's deposit webhooks). A view is a contract: its columns and meaning stay put while the
-- ledger is free to reshape its tables. Readers only read it. A plain projection and filter, so
-- Postgres inlines it into the reader's statement (a semi-join on transfers_chain_ref, as if the
-- reader named ledger.transfers).
-- Postgres refuses to change or drop a column a view shows: a later migration that does must drop
-- the view and create it again, with the same columns and meaning, in the same migration.

-- ledger.credited_facts: the chain fact identities the ledger booked a deposit credit for, one row
-- per deposit transfer. A fact is credited when its identity has a row here (an identity credited
-- again after a reorg has one row per credit); a row stays when a reorg hold later reverses it.
--   transfer_id   UUID of the deposit transfer (the credit's id)
--   chain_id      BIGINT   the credited fact's identity: (chain_id, tx_hash, position), as in
--   tx_hash       TEXT     chain.facts
--   position      TEXT
--   created_at    when the ledger booked it
CREATE VIEW ledger.credited_facts AS
SELECT id AS transfer_id, chain_id, tx_hash, position, created_at
  FROM ledger.transfers
 WHERE kind = 'deposit' AND chain_id IS NOT NULL;
