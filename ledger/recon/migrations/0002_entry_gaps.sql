-- Gaps in ledger.transfers.seq at a run's snapshot: seq values taken by transactions not yet
-- committed (or rolled back). The next incremental run re-reads exactly these, so an entry that
-- commits after a run with a seq below its watermark is still examined. JSON [[from, to, first_seen_ms], …].
ALTER TABLE recon.runs ADD COLUMN entry_gaps JSONB NOT NULL DEFAULT '[]';
