-- ledger.customer_events (a published view, docs/architecture.md): the ledger's records of changes
-- to customers' money that the api tells webhook receivers about, each written in the transaction
-- of the change it records (ledger.events is the outbox). Only these types; `deposit.credited` is
-- told from the facts and ledger.credited_facts instead. One row per change, never updated.
--   id           BIGINT, increasing in insertion order (not commit order: a reader keeps what it
--                handled per id, never a high-water mark)
--   type         deposit.reorg_held      a credited deposit's fact was orphaned: hold (and shortfall)
--                                        placed on the customer
--                deposit.reorg_restored  the same deposit confirmed again: hold voided, credit stands
--                deposit.reorg_final     its orphaned height is final without it: hold posted
--                inflow.credited         an operator credited an unattributed inflow
--   transfer_id  UUID: the deposit credit (deposit.*) or the inflow credit's transfer
--   payload      JSONB: for deposit.*, chain_id (number), tx_hash, position, to_address, asset_id,
--                amount and owner of the credit, and block_hash: the orphaned fact's block (held,
--                final) or the block the deposit confirmed in again (restored, with held_block_hash
--                the orphaned one and block_number its height); held: hold_amount,
--                shortfall_amount, orphaned_block; final: the same amounts and finalized. Rows
--                written before this migration carry no block_hash. inflow.credited: chain_id,
--                address, asset_id, amount, owner, block_number, run_id, break_n, credited_by,
--                reason.
--   created_at   when it was recorded
CREATE VIEW ledger.customer_events AS
SELECT id, type, transfer_id, payload, created_at
  FROM ledger.events
 WHERE type IN ('deposit.reorg_held', 'deposit.reorg_restored', 'deposit.reorg_final',
                'inflow.credited');
