-- Published views for reconciliation (ledger/recon, issue 16): what a run reads of the chain,
-- listed in docs/architecture.md's `views` block. Its facts and reorgs come through chain.facts and
-- chain.reorg_log (0007_published_views.sql), shared with the ledger's crediting. Plain projections and filters, so Postgres
-- inlines them into the reader's query and its plan is the one on the table (the indexes below
-- the view are the indexes the reader gets). The indexer stays free to add columns to its tables,
-- split or prune them; these columns and their meaning stay put.

-- The custody's watched addresses per chain (chain.custody_addresses): kind 'deposit' (owner =
-- the customer id), 'hot' or 'cold' (owner = a label). address lowercase; created_at when watched.
CREATE VIEW chain.watched_addresses AS
  SELECT chain_id, address, kind, owner, created_at
    FROM chain.custody_addresses;

-- The canonical block at each stored height (chain.blocks where canonical): at most one per
-- (chain_id, number).
CREATE VIEW chain.canonical_blocks AS
  SELECT chain_id, number, hash, parent_hash, timestamp
    FROM chain.blocks
   WHERE canonical;
