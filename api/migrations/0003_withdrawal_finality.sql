-- Withdrawals followed to finality (issue 13): `finalized` is terminal; `receipt_unknown` and
-- `needs_review` keep the hold; a reorg takes `confirmed` back to `broadcast` and counts here
-- (reorg_count is the epoch of the withdrawal's current hold: see api/withdrawals/holds.ts).
ALTER TABLE api.withdrawals DROP CONSTRAINT withdrawals_status_check;
ALTER TABLE api.withdrawals ADD CONSTRAINT withdrawals_status_check CHECK (status IN (
  'requested', 'pending_approval', 'approved', 'signing', 'broadcast', 'confirmed', 'finalized',
  'receipt_unknown', 'needs_review', 'rejected', 'cancelled', 'failed'));
ALTER TABLE api.withdrawals ADD COLUMN reorg_count INTEGER NOT NULL DEFAULT 0;

-- Confirmed rows of the old rules were terminal: they stay where they are and the signer's
-- outcome (finalized_at set by its migration) moves them on to `finalized`.
-- The outcome pass walks the withdrawals it follows by id.
CREATE INDEX withdrawals_followed ON api.withdrawals (id)
  WHERE status IN ('signing', 'broadcast', 'confirmed', 'receipt_unknown', 'needs_review');
