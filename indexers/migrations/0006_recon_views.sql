-- Published views for reconciliation (ledger/recon, issue 16): what a run reads of the chain,
-- listed in docs/architecture.md's `views` block. Plain projections and filters, so Postgres
-- inlines them into the reader's query and its plan is the one on the table (the indexes below
-- the view are the indexes the reader gets). The indexer stays free to add columns to its tables,
-- split or prune them; these columns and their meaning stay put.

-- Every chain fact the indexer stored (chain.transfers), canonical or orphaned: one row per
-- (chain_id, tx_hash, position, block_hash); the same transaction mined again in another block is
-- another row. Recon matches these against the ledger, so the whole fact row is the contract.
--   id            increasing per chain in the order the indexer wrote them (a watermark)
--   chain_id, block_number, block_hash, tx_hash, tx_index
--   position      'tx' (native value), 'log:<logIndex>' (ERC-20), 'trace:<a.b.c>' (internal), 'fee'
--   kind          'native' | 'erc20' | 'internal' | 'fee'
--   asset         token address, or the zero address for native value (lowercase)
--   from_address, to_address  lowercase; amount  NUMERIC(78, 0), base units
--   status        'seen' (canonical, not yet confirmed) | 'confirmed' | 'orphaned' (its block left
--                 the canonical chain; orphaned_at says when)
CREATE VIEW chain.transfer_facts AS
  SELECT id, chain_id, block_number, block_hash, tx_hash, tx_index, position, kind, asset,
         from_address, to_address, amount, status, confirmed_at, orphaned_at
    FROM chain.transfers;

-- The custody's watched addresses per chain (chain.custody_addresses): kind 'deposit' (owner =
-- the customer id), 'hot' or 'cold' (owner = a label). address lowercase; created_at when watched.
CREATE VIEW chain.watched_addresses AS
  SELECT chain_id, address, kind, owner, created_at
    FROM chain.custody_addresses;

-- Reorgs the indexer detected (chain.reorgs): blocks above common_ancestor were replaced, depth
-- blocks deep, detected at detected_at.
CREATE VIEW chain.reorg_history AS
  SELECT chain_id, common_ancestor, depth, detected_at
    FROM chain.reorgs;

-- The canonical block at each stored height (chain.blocks where canonical): at most one per
-- (chain_id, number).
CREATE VIEW chain.canonical_blocks AS
  SELECT chain_id, number, hash, parent_hash, timestamp
    FROM chain.blocks
   WHERE canonical;
