-- A booked sweep is followed until its block is final (issue 13): if a reorg takes its transaction
-- out after it was booked, the booking is reversed and the sweep is open again until it mines again.
--   booked_generation  the signer's reorg count of the request when it was booked; it names the
--                      booking's ledger ids (generation 0: the original ids)
--   final_at           when the booked sweep's block became final (the watch ends)
ALTER TABLE custody.sweeps ADD COLUMN booked_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE custody.sweeps ADD COLUMN final_at TIMESTAMPTZ;
-- Sweeps booked before this migration were booked under the old rule: not followed.
UPDATE custody.sweeps SET final_at = settled_at WHERE status = 'booked';
CREATE INDEX sweeps_watched ON custody.sweeps (chain_id) WHERE status = 'booked' AND final_at IS NULL;
