-- ledger.credited_facts says whether each credit stands. The deposit webhooks and /v1/deposits
-- called a fact credited when any deposit transfer had its identity (chain, tx hash, position): a
-- reorged deposit's copy mined again was `credited` (event sent, API status) from its first block,
-- while the ledger still held the credit back under a reorg hold (or had posted the hold), and a
-- copy paying another recipient or amount was credited by position alone. Crediting's rule
-- (depositCrediting.ts, SAME_DEPOSIT) is what readers need: the credit's recipient, asset and
-- amount, and whether it stands. Columns added at the end (CREATE OR REPLACE keeps the others):
--   to_address, asset, amount   the credited deposit (NULL for a deposit transfer with no credit row)
--   standing      true when the credit is in force: not held by a reorg hold, not reversed by a
--                 posted one (state 'credited' in ledger.deposit_credits)
CREATE OR REPLACE VIEW ledger.credited_facts AS
SELECT t.id AS transfer_id, t.chain_id, t.tx_hash, t.position, t.created_at,
       d.to_address, d.asset, d.amount, coalesce(d.state = 'credited', false) AS standing
  FROM ledger.transfers t
  LEFT JOIN ledger.deposit_credits d ON d.credit_id = t.id
 WHERE t.kind = 'deposit' AND t.chain_id IS NOT NULL;
