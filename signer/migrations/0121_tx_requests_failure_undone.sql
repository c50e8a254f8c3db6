-- The requests whose failure at a final block a deep reorg undid (failure_undone_at, 0119): a
-- handful, read on every full scan of their callers' followers (getTxOutcomes `failureUndone`:
-- the API's withdrawal follower finds there what it released on that failure).
CREATE INDEX tx_requests_failure_undone ON custody.tx_requests (kind) WHERE failure_undone_at IS NOT NULL;
