-- The state metrics read this table at every scrape (ops/stateMetrics.ts, ledger/attest/status.ts):
-- the attestations in flight, and each chain's newest confirmed one. Attestations are hourly per
-- chain and asset and kept for good, and neither read had an index it could start from
-- (attestations_latest leads with the asset), so each scrape read every row: at a year of three
-- chains' three assets, ~80k rows and every page of the table, four times a minute.
CREATE INDEX IF NOT EXISTS attestations_requested ON attest.attestations (id) WHERE status = 'requested';
-- A chain's newest confirmed attestation is the last entry of its range here (status.ts asks per
-- chain, so each is one descent of the index).
CREATE INDEX IF NOT EXISTS attestations_confirmed_at ON attest.attestations (chain_id, confirmed_at)
  WHERE status = 'confirmed';
-- IF NOT EXISTS: on a large table, build it by hand first with CREATE INDEX CONCURRENTLY under
-- this name (docs/deploy.md: pending migrations run in one transaction, blocking writers).
