-- After a cold move failed, no move of its (chain, hot wallet, asset) is requested for a retry
-- window (signer/sweeps/coldMoves.ts `moveInFlight`): the check reads recent failures through this
-- index, as its other arms read open moves (cold_moves_one_open) and booked ones not final yet
-- (cold_moves_watched), never the history of booked moves.
CREATE INDEX cold_moves_failed ON custody.cold_moves (chain_id, hot_wallet, asset, settled_at)
  WHERE status = 'failed';
