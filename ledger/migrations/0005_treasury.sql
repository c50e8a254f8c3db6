-- Treasury (DESIGN "Money flows"): the operator's own money moved into or out of custody — a hot
-- wallet funded or defunded, the factory's deploy gas — booked against `custody:hot:<address>` /
-- `fees:gas`, each transfer pointing at its chain fact so reconciliation pairs them. `treasury` is
-- equity: credit-normal, and it may go negative (an operator may take out more than they put in
-- through this ledger, e.g. gas the deployment paid from funds booked before the ledger existed).
ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE ledger.accounts ADD CONSTRAINT accounts_kind_check
  CHECK (kind IN ('user', 'custody', 'fees', 'suspense', 'receivable', 'treasury'));

ALTER TABLE ledger.transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE ledger.transfers ADD CONSTRAINT transfers_kind_check
  CHECK (kind IN ('deposit', 'withdrawal', 'sweep', 'fee', 'compensation', 'cold_move', 'manual',
                  'reorg_hold', 'inflow_credit', 'treasury'));
