-- An operator's failure of a request whose nonce the chain has not used is a cancel, not a
-- verdict: one of its signed sends may still be in some node's pool and mine. The request goes
-- back to `broadcast` with the operator's decision stamped here; the broadcaster never sends its
-- payment again, places cancels on its nonce, and the request fails (OPERATOR_FAILED, the reason
-- kept) only once a cancel's block is final, so the caller's hold stands until then. If one of its
-- own sends mines instead, the chain decides: it is followed to confirmed like any payment.
ALTER TABLE custody.tx_requests
  ADD COLUMN cancel_requested_at TIMESTAMPTZ,
  ADD COLUMN cancel_reason TEXT;

-- Requests an operator failed outright before this migration kept their live sends, which every
-- restart's resync sent again after their hold was released. They are never sent again; the
-- broadcaster cancels their nonce if the chain has not used it (nonces.ts).
UPDATE custody.tx_attempts a SET status = 'replaced'
  FROM custody.tx_requests r
 WHERE a.request_id = r.id AND r.status = 'failed' AND r.error_code = 'OPERATOR_FAILED'
   AND a.purpose = 'send' AND a.status IN ('signed', 'broadcast');
