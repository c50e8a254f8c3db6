-- The attestor asks each pass for its chain's newest attested block, failed ones aside
-- (attest.ts lastAttestedBlock). No index led with the chain and then the block (the unique key
-- has the asset between them), so each pass read every row: at a year of three chains' three
-- assets, ~80k rows and every page of the table. Here it is the last entry of the chain's range.
CREATE INDEX IF NOT EXISTS attestations_last_block ON attest.attestations (chain_id, block_number)
  WHERE status <> 'failed';
-- IF NOT EXISTS: on a large table, build it by hand first with CREATE INDEX CONCURRENTLY under
-- this name (docs/deploy.md: pending migrations run in one transaction, blocking writers).
