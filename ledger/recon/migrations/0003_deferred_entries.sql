-- Entries a run left for later because their chain fact is above its block: the next incremental
-- run re-examines them like open breaks. JSON [[entry_id, tx_hash, position], …].
ALTER TABLE recon.runs ADD COLUMN deferred_entries JSONB NOT NULL DEFAULT '[]';
