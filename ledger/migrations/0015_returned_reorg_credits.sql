-- ledger.reorged_deposit_credits (0010) tells a credit closed by its deposit's return (0014) apart
-- from one whose height became final without it: both are state 'final', hold posted, but a
-- returned one's shortfall was paid out of the return and its withdrawal block lifted (nothing to
-- recover from the customer). Two columns more, at the end (the others stay as they are):
--   returned_credit_id   the credit of the fact that came back (NULL: not returned)
--   returned_position    that fact's position in the same transaction (NULL: not returned)
CREATE OR REPLACE VIEW ledger.reorged_deposit_credits AS
  SELECT d.credit_id, d.chain_id, d.owner, d.asset, d.tx_hash, d.position, d.to_address, d.amount,
         d.state, d.hold_amount, d.shortfall_amount, d.orphaned_block, d.updated_at,
         d.returned_credit_id, r.position AS returned_position
    FROM ledger.deposit_credits d
    LEFT JOIN ledger.deposit_credits r ON r.credit_id = d.returned_credit_id
   WHERE d.state IN ('held', 'final');
