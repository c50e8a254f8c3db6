-- An operator's failure of a withdrawal whose nonce the chain has not used is a cancel, not a
-- verdict (api/withdrawals/operatorFail.ts): the withdrawal goes back to `broadcast` with its hold
-- standing until the signer's cancel, or the payment it races, is final. Its status alone does not
-- say so; these columns do (the API's `failRequested`). Set once, by the operator's move, and kept
-- after the outcome: a withdrawal `finalized` with a failure requested was paid by its own send.
ALTER TABLE api.withdrawals
  ADD COLUMN fail_requested_at TIMESTAMPTZ,
  ADD COLUMN fail_requested_by TEXT,
  ADD COLUMN fail_request_reason TEXT;

-- Withdrawals failed this way before these columns: the operator's audited move says when, who and why.
UPDATE api.withdrawals w
   SET fail_requested_at = a.at, fail_requested_by = a.actor, fail_request_reason = a.details->>'reason'
  FROM (SELECT DISTINCT ON (entity_id) entity_id, at, actor, details
          FROM audit.audit_log
         WHERE entity_type = 'withdrawal' AND action = 'withdrawal.broadcast'
           AND details->>'cancelling' = 'true'
         ORDER BY entity_id, id) a
 WHERE a.entity_id = w.id::text;
