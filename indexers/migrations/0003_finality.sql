-- Finality, published by the indexer (shared contract 1). The ledger and the signer read these
-- through indexers/index.ts (readFinalized, readHalts), not by naming the tables.

-- The highest stored canonical block that meets the chain's finality rule (N blocks below the best
-- head, or the node's `finalized` tag), and its hash. Never moves down: a final block stays final.
ALTER TABLE chain.checkpoints
  ADD COLUMN finalized_number BIGINT NULL,
  ADD COLUMN finalized_hash   TEXT NULL;

-- A reorg that would orphan a block at or below the finalized height halts the chain: nothing is
-- orphaned, and the row stays open (resumed_at NULL) until an operator resumes it.
CREATE TABLE chain.halts (
  id          BIGSERIAL PRIMARY KEY,
  chain_id    BIGINT NOT NULL,
  halted_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  reason      TEXT NOT NULL,
  details     JSONB NOT NULL DEFAULT '{}'::jsonb,
  resumed_at  TIMESTAMPTZ NULL,
  resumed_by  TEXT NULL,
  resume_reason TEXT NULL
);
-- At most one open halt per chain.
CREATE UNIQUE INDEX halts_open ON chain.halts (chain_id) WHERE resumed_at IS NULL;
CREATE INDEX halts_chain ON chain.halts (chain_id, halted_at);
