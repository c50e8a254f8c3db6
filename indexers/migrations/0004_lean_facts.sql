-- Fewer index writes per fact (issue 15: backfill near the machine's floor, 10M facts).
--
-- Every query that reads chain.transfers (ledger crediting and reorg holds, reconciliation, sweeps,
-- deposits API and webhooks, the indexer itself) was checked against what is left:
--   (chain_id, tx_hash, position, block_hash)  the fact's identity, now led by what every reader
--        looks facts up by (a deposit's (tx_hash, position) across blocks); it replaces both the
--        old unique key (chain_id, block_hash, tx_hash, position), which no query led with, and
--        transfers_tx (chain_id, tx_hash, position), its prefix. ON CONFLICT names the columns,
--        not the order, so the indexer's revive path infers it unchanged.
--   transfers_to, transfers_from, transfers_block  per-address balances and block ranges: kept.
--   transfers_status (chain_id, status, block_number) held every fact; only 'seen' (waiting for
--        confirmations: confirmFacts, crediting's lowest unconfirmed block) and 'orphaned'
--        (reorg holds) are ever looked up by status, and they are a few rows: a partial index.
--        'confirmed' lookups go by block (transfers_block): the newest blocks are the only
--        unconfirmed ones, so max(block_number) of confirmed facts reads a few rows.
ALTER TABLE chain.transfers ADD CONSTRAINT transfers_identity UNIQUE (chain_id, tx_hash, position, block_hash);
ALTER TABLE chain.transfers DROP CONSTRAINT transfers_chain_id_block_hash_tx_hash_position_key;
DROP INDEX chain.transfers_tx;
DROP INDEX chain.transfers_status;
CREATE INDEX transfers_unconfirmed ON chain.transfers (chain_id, status, block_number)
  WHERE status IN ('seen', 'orphaned');
