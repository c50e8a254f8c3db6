-- Fact identity that survives re-inclusion (issue 12 item 4).
--
-- An ERC-20 fact's position was 'log:<logIndex>', the block-wide log index, which changes when a
-- reorg re-includes the same transaction at another place in a block. It is now 'transfer:<n>':
-- n is the 0-based ordinal of the log among the transaction's Transfer logs of listed tokens
-- (ERC-20 shape, 3 topics; watched or not) in logIndex order (chains/evm/transferPosition.ts).
-- 'tx', 'fee' and 'trace:<a.b.c>' are already relative to the transaction. So a fact's identity
-- across blocks is (chain_id, tx_hash, position); within one block (chain_id, block_hash, tx_hash,
-- position) stays the row's unique key. Crediting compares recipient, asset and amount as well,
-- never position alone.
--
-- The block-wide index is kept for audit and for finding the log again: log_index (ERC-20 facts
-- only; NULL for the other kinds).
ALTER TABLE chain.transfers ADD COLUMN log_index INTEGER CHECK (log_index >= 0);

-- Rows written before this migration keep their 'log:<logIndex>' position: ledger transfers
-- already reference those positions (ledger.transfers.position), and rewriting one side only would
-- make a credited fact look uncredited. They get their log_index; a transaction first stored
-- before and re-included after this migration is a new identity (only across a reorg spanning the
-- upgrade).
UPDATE chain.transfers
   SET log_index = substring(position FROM 5)::int
 WHERE kind = 'erc20' AND position ~ '^log:[0-9]+$';

COMMENT ON COLUMN chain.transfers.position IS
  'identity within the tx: tx | transfer:<n> (n-th listed-token ERC-20 Transfer log of the tx, logIndex order) | trace:<a.b.c> | fee; legacy log:<logIndex> rows predate 0002';
COMMENT ON COLUMN chain.transfers.log_index IS
  'block-wide logIndex of an ERC-20 fact''s Transfer log (NULL for other kinds)';
