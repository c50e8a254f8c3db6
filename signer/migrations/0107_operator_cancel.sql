-- An operator's failure of a request whose nonce the chain has not used is a cancel, not a
-- verdict: one of its signed sends may still be in some node's pool and mine. The request goes
-- back to `broadcast` with the operator's decision stamped here; the broadcaster never sends its
-- payment again, places cancels on its nonce, and the request fails (OPERATOR_FAILED, the reason
-- kept) only once a cancel's block is final, so the caller's hold stands until then. If one of its
-- own sends mines instead, the chain decides: it is followed to confirmed like any payment.
ALTER TABLE custody.tx_requests
  ADD COLUMN cancel_requested_at TIMESTAMPTZ,
  ADD COLUMN cancel_reason TEXT;
