-- Writing off a reorg receivable (docs/contracts.md "Reorg receivables"): when the treasury decides
-- what a customer owes after a reorg will not come back, an operator moves it from
-- `receivable:reorg:<id>` to `expense:reorg_loss` (the custody's loss: debit-normal, no limit), one
-- transfer of kind `reorg_writeoff`, audited with who and why.
ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE ledger.accounts ADD CONSTRAINT accounts_kind_check
  CHECK (kind IN ('user', 'custody', 'fees', 'suspense', 'receivable', 'treasury', 'expense'));

ALTER TABLE ledger.transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE ledger.transfers ADD CONSTRAINT transfers_kind_check
  CHECK (kind IN ('deposit', 'withdrawal', 'sweep', 'fee', 'compensation', 'cold_move', 'manual',
                  'reorg_hold', 'inflow_credit', 'treasury', 'reorg_writeoff'));

-- The receivable accounts alone, for the state metric counting what is outstanding
-- (custody_ledger_reorg_receivables_outstanding, read at every scrape): a handful of rows, however
-- many user accounts there are. On columns that never change, so balance updates stay HOT.
CREATE INDEX accounts_receivable ON ledger.accounts (asset_id) WHERE kind = 'receivable';
