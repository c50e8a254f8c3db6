-- Deposit addresses and sweeps (signer/deposit-addresses, signer/sweeps, chains/contracts/deploy.ts).
-- Addresses are lowercase hex; amounts NUMERIC(78,0) base units.

-- Contracts the custody deployed, one per (chain, name). A deposit address depends on the factory
-- address and the forwarder init code, so both are recorded: changing either moves every address.
CREATE TABLE custody.contracts (
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
CREATE TABLE custody.deposit_addresses (
  chain_id     BIGINT NOT NULL,
  customer_id  TEXT NOT NULL CHECK (length(customer_id) BETWEEN 1 AND 128),
  address      TEXT NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
  salt         TEXT NOT NULL CHECK (salt ~ '^0x[0-9a-f]{64}$'),
  factory      TEXT NOT NULL CHECK (factory ~ '^0x[0-9a-f]{40}$'),
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (chain_id, customer_id),
  UNIQUE (chain_id, address)
);

-- A sweep: one factory call (one signer request, same id) moving many deposit addresses' balances
-- to the hot wallet.
--   open    the request is with the signer
--   booked  confirmed; the ledger transfers (sweep and gas) are written (in the same transaction)
--   failed  the request failed or reverted (gas, if any was paid, is booked); its addresses are
--           free for the next sweep
CREATE TABLE custody.sweeps (
  id           TEXT PRIMARY KEY,
  chain_id     BIGINT NOT NULL,
  factory      TEXT NOT NULL CHECK (factory ~ '^0x[0-9a-f]{40}$'),
  hot_wallet   TEXT NOT NULL CHECK (hot_wallet ~ '^0x[0-9a-f]{40}$'),
  tokens       TEXT[] NOT NULL,
  status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'booked', 'failed')),
  tx_hash      TEXT,
  fee          NUMERIC(78, 0),
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  settled_at   TIMESTAMPTZ
);
CREATE INDEX sweeps_open ON custody.sweeps (chain_id) WHERE status = 'open';

-- What a sweep planned per (address, asset) and, once booked, what the Swept events say moved.
-- asset is the token address, or the zero address for native value.
CREATE TABLE custody.sweep_items (
  sweep_id   TEXT NOT NULL REFERENCES custody.sweeps (id),
  chain_id   BIGINT NOT NULL,
  address    TEXT NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
  salt       TEXT NOT NULL CHECK (salt ~ '^0x[0-9a-f]{64}$'),
  asset      TEXT NOT NULL CHECK (asset ~ '^0x[0-9a-f]{40}$'),
  planned    NUMERIC(78, 0) NOT NULL CHECK (planned >= 0),
  swept      NUMERIC(78, 0) CHECK (swept >= 0),
  PRIMARY KEY (sweep_id, address, asset)
);
CREATE INDEX sweep_items_address ON custody.sweep_items (chain_id, address, asset);

-- Moves of value above a hot wallet's ceiling to the chain's cold address (through the signer).
--   open / booked / failed as for sweeps
CREATE TABLE custody.cold_moves (
  id           TEXT PRIMARY KEY,
  chain_id     BIGINT NOT NULL,
  hot_wallet   TEXT NOT NULL CHECK (hot_wallet ~ '^0x[0-9a-f]{40}$'),
  cold_address TEXT NOT NULL CHECK (cold_address ~ '^0x[0-9a-f]{40}$'),
  asset        TEXT NOT NULL CHECK (asset ~ '^0x[0-9a-f]{40}$'),
  amount       NUMERIC(78, 0) NOT NULL CHECK (amount > 0),
  status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'booked', 'failed')),
  tx_hash      TEXT,
  fee          NUMERIC(78, 0),
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  settled_at   TIMESTAMPTZ
);
-- At most one open move per (chain, hot wallet, asset): the next one is sized after this settles.
CREATE UNIQUE INDEX cold_moves_one_open ON custody.cold_moves (chain_id, hot_wallet, asset)
  WHERE status = 'open';
