-- The rolling 24 h limit counts a customer's withdrawals of an asset that are not confirmed yet,
-- whenever they were requested, and those changed in the last 24 h (api/withdrawals/intake.ts):
-- two indexes so that sum reads only those rows, not the customer's whole history. With millions
-- of withdrawals, build them first with CREATE INDEX CONCURRENTLY under these names (docs/deploy.md).
CREATE INDEX IF NOT EXISTS withdrawals_rolling_open ON api.withdrawals (customer_id, chain_id, asset)
  WHERE status NOT IN ('confirmed', 'finalized', 'rejected', 'cancelled', 'failed');
CREATE INDEX IF NOT EXISTS withdrawals_rolling_changed
  ON api.withdrawals (customer_id, chain_id, asset, updated_at);
