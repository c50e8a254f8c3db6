-- Whether custody_cold_moves_failed_total has counted this cold move. A failed move whose failure
-- a deep reorg undid is held again and open (sweeps/failureUndone.ts); failed again, it was
-- counted (and fired ColdMoveFailed) a second time for the same move. Moves failed before this
-- column were counted when they failed.
ALTER TABLE custody.cold_moves ADD COLUMN failure_counted BOOLEAN NOT NULL DEFAULT false;
UPDATE custody.cold_moves SET failure_counted = true WHERE status = 'failed';
