-- A deposit fact can leave the canonical chain and come back in its own block (a reorg back: the
-- indexer revives the same row, indexers/store.ts). Its events were marked once per (fact, event),
-- so after `deposit.orphaned` nothing more was ever sent: the backend kept the deposit as taken
-- back while the ledger credited it again (and a second orphaning was not sent either). Each time
-- the fact comes back it starts a new life, whose events are marked (and named) apart; life 1 keeps
-- the names and ids events had before.
ALTER TABLE api.deposit_event_marks ADD COLUMN life INTEGER NOT NULL DEFAULT 1 CHECK (life >= 1);
ALTER TABLE api.deposit_event_marks DROP CONSTRAINT deposit_event_marks_pkey;
ALTER TABLE api.deposit_event_marks ADD PRIMARY KEY (transfer_id, event, life);
-- The producer reads the facts with an `orphaned` mark (few) apart from the others.
CREATE INDEX deposit_event_marks_orphaned ON api.deposit_event_marks (transfer_id)
  WHERE event = 'orphaned';
