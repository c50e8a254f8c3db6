-- Treasury bookings into a hot wallet (`treasury fund`: debit custody:hot:<w>, kind 'treasury'),
-- read at every sweep tick for each hot wallet and asset (ledger/treasury.ts `unfinalFundings`: a
-- cold move does not spend a funding that is not final). A handful of rows per wallet, where the
-- account's debits (transfers_debit) are every sweep it ever received.
CREATE INDEX IF NOT EXISTS transfers_treasury ON ledger.transfers (debit_account_id)
  WHERE kind = 'treasury';
-- IF NOT EXISTS: on a large table, build it by hand first with CREATE INDEX CONCURRENTLY under
-- this name (docs/deploy.md: pending migrations run in one transaction, blocking writers).
