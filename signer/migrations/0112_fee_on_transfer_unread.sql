-- Token payments mined and successful before 0111 whose receipt was never read for a token's fee
-- on transfer: no transfer_position (no Transfer carries the whole amount) and no fee_on_transfer,
-- so their callers cannot book them (a withdrawal stays held, WITHDRAWAL_OUTCOME_INCOMPLETE). The
-- broadcaster reads each one's receipt again (signer/broadcaster/feeOnTransferRecovery.ts); this
-- index keeps that look-up to the few such rows instead of a wallet's whole history.
CREATE INDEX IF NOT EXISTS tx_requests_fee_on_transfer_unread ON custody.tx_requests (chain_id, from_address, nonce)
  WHERE status IN ('mined', 'confirmed') AND receipt_success AND transfer_position IS NULL
    AND fee_on_transfer IS NULL AND data LIKE '0xa9059cbb%';
-- IF NOT EXISTS: on a large table, build it by hand first with CREATE INDEX CONCURRENTLY under
-- this name (docs/deploy.md: pending migrations run in one transaction, blocking writers).
