-- The chain's highest chain.reorg_log id at a run's snapshot. The next incremental run re-reads the
-- facts above the common ancestor of every reorg recorded after it, by id: by `detected_at` (the
-- indexer's transaction's start) within a lookback of the run's snapshot, it missed a reorg whose
-- transaction started longer before that snapshot and committed after it, and an orphaned credit
-- was shown only by the next full run. NULL for runs stored before (read by `detected_at`).
ALTER TABLE recon.runs ADD COLUMN reorg_watermark BIGINT;
