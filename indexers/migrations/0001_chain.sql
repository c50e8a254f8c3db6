-- The chain module's tables: what the indexers know about each chain. Shared contract with the
-- ledger (deposit crediting), signer, deposit addresses and reconciliation: they read these tables
-- and (custody_addresses only) write them; only the indexer writes blocks and transfers.

-- Custody addresses watched per chain. Addresses are stored lowercase hex ('0x' + 40 chars).
CREATE TABLE chain.custody_addresses (
  chain_id    BIGINT NOT NULL,
  address     TEXT NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
  kind        TEXT NOT NULL CHECK (kind IN ('deposit', 'hot', 'cold')),
  -- customer id for deposit addresses; a label for hot/cold wallets
  owner       TEXT NOT NULL,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (chain_id, address)
);
CREATE INDEX custody_addresses_owner ON chain.custody_addresses (chain_id, kind, owner);

-- Per chain: the last ingested block (the tip of what is stored).
CREATE TABLE chain.checkpoints (
  chain_id      BIGINT PRIMARY KEY,
  block_number  BIGINT NOT NULL,
  block_hash    TEXT NOT NULL,
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE chain.blocks (
  chain_id      BIGINT NOT NULL,
  number        BIGINT NOT NULL,
  hash          TEXT NOT NULL,
  parent_hash   TEXT NOT NULL,
  timestamp     TIMESTAMPTZ NOT NULL,
  canonical     BOOLEAN NOT NULL DEFAULT true,
  PRIMARY KEY (chain_id, hash)
);
-- At most one canonical block per height.
CREATE UNIQUE INDEX blocks_canonical_height ON chain.blocks (chain_id, number) WHERE canonical;

-- Custody-relevant value movements ("chain facts").
--   kind 'native'   top-level transaction value (position 'tx')
--   kind 'erc20'    a Transfer log of a listed token (position 'log:<logIndex>')
--   kind 'internal' a value transfer inside a call frame from traces (position 'trace:<a.b.c>')
--   kind 'fee'      gas paid by a transaction sent from a watched address (position 'fee'),
--                   recorded whether the transaction succeeded or reverted; amount = gasUsed * effectiveGasPrice
-- A fact is identified by (chain_id, block_hash, tx_hash, position); the same tx in another block
-- (after a reorg) is another row. asset is the token address, or the zero address for native value.
CREATE TABLE chain.transfers (
  id            BIGSERIAL PRIMARY KEY,
  chain_id      BIGINT NOT NULL,
  block_number  BIGINT NOT NULL,
  block_hash    TEXT NOT NULL,
  tx_hash       TEXT NOT NULL,
  tx_index      INTEGER NOT NULL,
  position      TEXT NOT NULL,
  kind          TEXT NOT NULL CHECK (kind IN ('native', 'erc20', 'internal', 'fee')),
  asset         TEXT NOT NULL CHECK (asset ~ '^0x[0-9a-f]{40}$'),
  from_address  TEXT NOT NULL,
  to_address    TEXT NOT NULL,
  amount        NUMERIC(78, 0) NOT NULL CHECK (amount >= 0),
  -- seen: in a canonical block, confirmation rule not yet met; confirmed: rule met; orphaned: its block left the canonical chain
  status        TEXT NOT NULL DEFAULT 'seen' CHECK (status IN ('seen', 'confirmed', 'orphaned')),
  confirmed_at  TIMESTAMPTZ,
  orphaned_at   TIMESTAMPTZ,
  -- status was 'confirmed' when it became orphaned (a reorg deeper than the confirmation rule)
  orphaned_after_confirmation BOOLEAN NOT NULL DEFAULT false,
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (chain_id, block_hash, tx_hash, position)
);
CREATE INDEX transfers_to ON chain.transfers (chain_id, to_address);
CREATE INDEX transfers_from ON chain.transfers (chain_id, from_address);
CREATE INDEX transfers_block ON chain.transfers (chain_id, block_number);
CREATE INDEX transfers_status ON chain.transfers (chain_id, status, block_number);
CREATE INDEX transfers_tx ON chain.transfers (chain_id, tx_hash, position);

-- Every detected reorg, including ones deeper than the configured window.
CREATE TABLE chain.reorgs (
  id              BIGSERIAL PRIMARY KEY,
  chain_id        BIGINT NOT NULL,
  depth           INTEGER NOT NULL,
  common_ancestor BIGINT NOT NULL,
  old_tip_number  BIGINT NOT NULL,
  old_tip_hash    TEXT NOT NULL,
  new_tip_number  BIGINT NOT NULL,
  new_tip_hash    TEXT NOT NULL,
  beyond_window   BOOLEAN NOT NULL,
  -- confirmed facts that were orphaned by this reorg (the ledger must react to them)
  orphaned_confirmed_facts INTEGER NOT NULL DEFAULT 0,
  detected_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX reorgs_chain ON chain.reorgs (chain_id, detected_at);
