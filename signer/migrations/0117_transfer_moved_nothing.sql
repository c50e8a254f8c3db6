-- A token `transfer(to, amount)` that mined with receipt status 1 but logged no Transfer of the
-- token out of the wallet: the token returned false instead of reverting (old ERC-20s: paused, a
-- blacklist or a short balance answered with `false`), so nothing moved. Recorded by the tracker
-- from the receipt (signer/transferPosition.ts `transferMovedNothing`); such a request is never
-- reported confirmed and fails at its final block as TRANSFER_MOVED_NOTHING, like a revert (its
-- gas was paid). Cleared with the inclusion when the tx leaves the chain. Rows recorded paid
-- before this column read false; the broadcaster reads their receipts again
-- (signer/broadcaster/feeOnTransferRecovery.ts: no transfer position and no fee on transfer) and
-- puts one that moved nothing back to `mined` with this set, to fail at its final block.
ALTER TABLE custody.tx_requests ADD COLUMN transfer_moved_nothing BOOLEAN NOT NULL DEFAULT false;
