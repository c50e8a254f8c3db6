-- A booked cold move is followed until its block is final, as a sweep is (0102): if a reorg takes
-- its transaction out after the hold was posted, the posting and its gas are reversed, the amount
-- is held again and the move is open until it mines again (posted anew) or fails at a final block
-- (the hold voided).
--   booked_generation  the signer's reorg count of the request when the move was booked: a larger
--                      count means the booked inclusion left the chain
--   hold_generation    which hold the move holds (0: the one placed at request, `cold_move:<id>`;
--                      n: the one placed again after the n-th reversal); it names the hold, its
--                      post or void and the gas booked with it (signer/sweeps/bookings.ts)
--   final_at           when the booked move's block became final, or the move failed (the watch ends)
ALTER TABLE custody.cold_moves ADD COLUMN booked_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE custody.cold_moves ADD COLUMN hold_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE custody.cold_moves ADD COLUMN final_at TIMESTAMPTZ;
-- Moves settled before this migration were settled under the old rule: not followed.
UPDATE custody.cold_moves SET final_at = settled_at WHERE status IN ('booked', 'failed');
CREATE INDEX cold_moves_watched ON custody.cold_moves (chain_id)
  WHERE status = 'booked' AND final_at IS NULL;
