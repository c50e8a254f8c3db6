-- A reorged deposit that comes back as another fact of the same transaction (re-executed on other
-- state, its ordinal among the tx's Transfer logs moved: `transfer:1` became `transfer:0`), or
-- comes back after its hold was posted, is the return of that deposit, not new money
-- (depositCrediting.ts, "returns"). The fact that came back gets its own credit (reconciliation
-- pairs one transfer with each fact, by its reference); the credit it returns is closed as `final`
-- (its hold posted), the shortfall it booked is settled from the returned credit and its
-- withdrawal block lifted, all in the crediting transaction.
--   returned_credit_id   the credit of the fact that came back (NULL: not returned)
ALTER TABLE ledger.deposit_credits ADD COLUMN returned_credit_id UUID;

-- Crediting asks, for each page of facts, which of their transactions have a reorged credit not yet
-- returned: a handful of rows (held, or posted and never back), probed by tx hash.
CREATE INDEX deposit_credits_returnable ON ledger.deposit_credits (chain_id, tx_hash)
  WHERE state IN ('held', 'final') AND returned_credit_id IS NULL;
