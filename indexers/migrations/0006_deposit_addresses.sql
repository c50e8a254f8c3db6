-- Deposit addresses and the custody's deployed contracts, with their owner (issue 16): a deposit
-- address is a watched address with an owner, so its record lives beside chain.custody_addresses
-- (indexers/depositAddresses). Until this migration they were custody.contracts and
-- custody.deposit_addresses (signer/migrations/0100); the signer's next migration copies their
-- rows here and drops them. Same columns, constraints and keys as there.
-- Addresses are lowercase hex.

-- Contracts the custody deployed, one per (chain, name). A deposit address depends on the factory
-- address and the forwarder init code, so both are recorded: changing either moves every address.
CREATE TABLE chain.contracts (
  chain_id        BIGINT NOT NULL,
  name            TEXT NOT NULL CHECK (name ~ '^[A-Za-z][A-Za-z0-9]*$'),
  address         TEXT NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
  -- the hot wallet that deployed it; for ForwarderFactory also the only sweeper and the destination
  hot_wallet      TEXT NOT NULL CHECK (hot_wallet ~ '^0x[0-9a-f]{40}$'),
  init_code_hash  TEXT CHECK (init_code_hash ~ '^0x[0-9a-f]{64}$'),
  deploy_tx_hash  TEXT NOT NULL CHECK (deploy_tx_hash ~ '^0x[0-9a-f]{64}$'),
  block_number    BIGINT NOT NULL,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (chain_id, name),
  UNIQUE (chain_id, address)
);

-- One deposit address per (chain, customer): CREATE2(factory, salt = keccak256(customer id),
-- forwarder init code). The same row is also in chain.custody_addresses (kind deposit).
CREATE TABLE chain.deposit_addresses (
  chain_id     BIGINT NOT NULL,
  customer_id  TEXT NOT NULL CHECK (length(customer_id) BETWEEN 1 AND 128),
  address      TEXT NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
  salt         TEXT NOT NULL CHECK (salt ~ '^0x[0-9a-f]{64}$'),
  factory      TEXT NOT NULL CHECK (factory ~ '^0x[0-9a-f]{40}$'),
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (chain_id, customer_id),
  UNIQUE (chain_id, address)
);

-- Published view (docs/architecture.md "Published views"): the deposit addresses the signer's
-- sweeps call their factory for, for the layers above to read in their own SQL (joins stay in one
-- statement). One row per (chain, customer); (chain_id, address) is unique.
--   chain_id     the chain
--   customer_id  the customer the address belongs to
--   address      the deposit address (lowercase), CREATE2(factory, salt, forwarder init code)
--   salt         keccak256(customer id), lowercase hex: the factory call's argument
--   factory      the ForwarderFactory (lowercase) the address was derived from
-- A plain projection, so Postgres inlines it and a join keeps the table's plan.
CREATE VIEW chain.deposit_forwarders AS
  SELECT chain_id, customer_id, address, salt, factory FROM chain.deposit_addresses;
