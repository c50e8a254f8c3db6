-- When a withdrawal's transaction went out and has not been mined since (ops/stateMetrics.ts,
-- custody_withdrawal_oldest_unmined_seconds; the WithdrawalStuck alert). Its time in status
-- (updated_at) restarts at every status change, so one flipping between broadcast and
-- receipt_unknown (its nonce seen used, then free again) was never an hour in either and never
-- paged. Set on the move into broadcast from signing (the send) or from confirmed (a reorg's
-- re-send), kept while it moves between broadcast and receipt_unknown, cleared on leaving them
-- (api/withdrawals/transitions.ts).
ALTER TABLE api.withdrawals ADD COLUMN unmined_since TIMESTAMPTZ;
-- Those out now: from when they entered their status, the best this schema knew (readers fall
-- back to updated_at too, for rows the previous revision moves during a rolling deployment).
UPDATE api.withdrawals SET unmined_since = updated_at WHERE status IN ('broadcast', 'receipt_unknown');
