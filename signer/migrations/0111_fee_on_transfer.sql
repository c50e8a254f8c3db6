-- A token that takes a fee on transfer (PAXG-style; USDT has the switch): the recipient's Transfer
-- of a mined `transfer(to, amount)` carries less than `amount`, so no fact carries the whole value
-- and transfer_position stays NULL. Where each part went, for the caller to book one ledger
-- transfer per fact (signer/transferPosition.ts `feeOnTransfer`); NULL otherwise:
--   {"received": {"position": "transfer:0", "logIndex": 4, "amount": "990"},
--    "fees": [{"position": "transfer:1", "logIndex": 5, "amount": "10"}]}
-- Amounts are decimal strings (base units). Cleared with transfer_position when the tx leaves the
-- chain.
ALTER TABLE custody.tx_requests ADD COLUMN fee_on_transfer JSONB;
