-- A contract deploy from a hot wallet (`custody-node contracts deploy`, `por deploy`;
-- signer/storedDeploy.ts), stored like a tx_attempts row: signed bytes at a nonce taken holding the
-- wallet's lease, stored BEFORE they are sent, and only these bytes are ever sent again (KMS
-- signatures are not deterministic: re-signing would make a second contract and pay its gas). A
-- deploy killed after sending and before its contract was recorded is followed by the next run.
--   status: signed     stored, not yet sent
--           broadcast  handed to a node (or the node already knew it)
--           reverted   mined and reverted, at a final block: its gas was paid (booked by the
--                      operator, `custody-node treasury deploy-gas`); the next run signs a new one
--           dropped    its nonce was used by another transaction at a final block (no code at
--                      contract_address there): it can never mine; the next run signs a new one
CREATE TABLE custody.hot_wallet_deploys (
  id                BIGSERIAL PRIMARY KEY,
  chain_id          BIGINT NOT NULL,
  -- the contract's name in chain.contracts (ForwarderFactory, ReservesAttestor)
  name              TEXT NOT NULL,
  from_address      TEXT NOT NULL CHECK (from_address ~ '^0x[0-9a-f]{40}$'),
  nonce             BIGINT NOT NULL CHECK (nonce >= 0),
  tx_hash           TEXT NOT NULL UNIQUE CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
  raw_tx            TEXT NOT NULL CHECK (raw_tx ~ '^0x([0-9a-f]{2})+$'),
  -- where the contract will be (from the sender and the nonce alone)
  contract_address  TEXT NOT NULL CHECK (contract_address ~ '^0x[0-9a-f]{40}$'),
  status            TEXT NOT NULL DEFAULT 'signed' CHECK (status IN ('signed', 'broadcast', 'reverted', 'dropped')),
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  broadcast_at      TIMESTAMPTZ,
  -- when it became reverted or dropped
  ended_at          TIMESTAMPTZ
);
-- One live deploy per contract and chain; one deploy per nonce of a wallet that is not dropped.
CREATE UNIQUE INDEX hot_wallet_deploys_live ON custody.hot_wallet_deploys (chain_id, name)
  WHERE status IN ('signed', 'broadcast');
CREATE UNIQUE INDEX hot_wallet_deploys_nonce ON custody.hot_wallet_deploys (chain_id, from_address, nonce)
  WHERE status <> 'dropped';
