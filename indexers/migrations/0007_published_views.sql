-- Views the indexer publishes for the modules above it (docs/architecture.md, "Published views":
-- the ledger's deposit crediting, deposits listing and treasury moves, the api's deposit webhooks).
-- Each view is a contract: its columns and meaning stay put while the indexer is free to reshape,
-- prune or partition the tables behind it. Readers only read them. Each is a plain projection,
-- filter or join, so Postgres inlines it into the reader's statement and plans it exactly as if
-- the reader named the tables (no DISTINCT, no aggregate, no ORDER BY, no LIMIT inside).
-- Postgres refuses to change or drop a column a view shows: a later migration that does must drop
-- the view and create it again, with the same columns and meaning, in the same migration.

-- chain.facts: every chain fact the indexer stored, of every kind and status. One row per fact as
-- seen in one block: the same transaction re-included in another block after a reorg is another
-- row, and a fact's identity across blocks is (chain_id, tx_hash, position).
--   id            the fact's id (BIGINT, increasing in the order facts were stored)
--   chain_id      BIGINT
--   block_number, block_hash, tx_hash, tx_index   where the fact was seen
--   position      the fact's place within its tx: tx | transfer:<n> | trace:<a.b.c> | fee (legacy
--                 log:<logIndex> rows predate chain migration 0002)
--   kind          native | erc20 | internal | fee (fee: gas paid by a tx sent from a watched
--                 address, amount = gasUsed * effectiveGasPrice)
--   asset         token address, the zero address for native value (lowercase hex)
--   from_address, to_address   lowercase hex
--   amount        NUMERIC(78,0), base units, >= 0
--   status        seen (in a canonical block, confirmation rule not met yet) | confirmed (rule
--                 met) | orphaned (its block left the canonical chain)
--   confirmed_at, orphaned_at  when the status changed (NULL if it did not)
--   orphaned_after_confirmation  the fact was confirmed when a reorg orphaned it
--   created_at    when the indexer stored it
-- A locking clause on it (FOR SHARE OF f) locks the fact's row and nothing else: a reader that
-- holds a fact while it credits it reads this view.
CREATE VIEW chain.facts AS
SELECT id, chain_id, block_number, block_hash, tx_hash, tx_index, position, kind, asset,
       from_address, to_address, amount, status, confirmed_at, orphaned_at,
       orphaned_after_confirmation, created_at
  FROM chain.transfers;

-- chain.watched_deposit_addresses: the customers' deposit addresses in the chain's watched set, and
-- the customer each belongs to. One row per (chain_id, address).
--   chain_id      BIGINT
--   address       lowercase hex
--   owner         the customer id
--   created_at    when the address joined the watched set
CREATE VIEW chain.watched_deposit_addresses AS
SELECT chain_id, address, owner, created_at
  FROM chain.custody_addresses
 WHERE kind = 'deposit';

-- chain.deposit_facts: the value facts (kind native, erc20 or internal: not fees) paid into a
-- customer's deposit address, of every status, each with the customer it belongs to. The columns
-- of chain.facts plus:
--   owner         the customer id of the deposit address (to_address)
-- It joins the watched set: a locking clause on it would lock the address's row as well, so a
-- reader that locks facts reads chain.facts joined with chain.watched_deposit_addresses instead.
CREATE VIEW chain.deposit_facts AS
SELECT t.id, t.chain_id, t.block_number, t.block_hash, t.tx_hash, t.tx_index, t.position, t.kind,
       t.asset, t.from_address, t.to_address, t.amount, t.status, t.confirmed_at, t.orphaned_at,
       t.orphaned_after_confirmation, t.created_at, ca.owner
  FROM chain.transfers t
  JOIN chain.custody_addresses ca
    ON ca.chain_id = t.chain_id AND ca.address = t.to_address AND ca.kind = 'deposit'
 WHERE t.kind IN ('native', 'erc20', 'internal');

-- chain.reorg_log: every reorg the indexer recorded, in the order recorded (id increases), the
-- ones deeper than the configured window included. Every fact a reorg orphaned is above its
-- common_ancestor, so a reader that remembers the last id it handled finds what changed since.
--   id            BIGINT, increasing
--   chain_id      BIGINT
--   depth         blocks replaced
--   common_ancestor   the highest block both chains share
--   old_tip_number, old_tip_hash, new_tip_number, new_tip_hash
--   beyond_window the reorg was deeper than the configured window
--   orphaned_confirmed_facts   confirmed facts it orphaned
--   detected_at   when it was recorded
CREATE VIEW chain.reorg_log AS
SELECT id, chain_id, depth, common_ancestor, old_tip_number, old_tip_hash, new_tip_number,
       new_tip_hash, beyond_window, orphaned_confirmed_facts, detected_at
  FROM chain.reorgs;
