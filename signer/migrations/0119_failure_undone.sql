-- A request `failed` at a final block (its cancel, or its reverted send, mined there) whose block a
-- deep reorg accepted at a chain's resume took away (chain.reorg_log, docs/chain-halts.md): its
-- caller released what it held, yet the new branch may hold its payment at that nonce instead
-- (a node had passed the bytes on). The broadcaster follows it again from the reorg
-- (signer/broadcaster/undone.ts): back to `broadcast` with this stamped, only cancels may use its
-- nonce (its payment is never sent again), and a payment of it found mined is recorded with a
-- `failed_request_paid` event and alert and followed to final like any payment.
ALTER TABLE custody.tx_requests ADD COLUMN failure_undone_at TIMESTAMPTZ;

-- Per hot wallet: the last chain.reorg_log id the broadcaster has looked at for such requests. A
-- wallet without a row starts at the newest reorg recorded when it first runs.
CREATE TABLE custody.reorgs_followed (
  chain_id     BIGINT NOT NULL,
  from_address TEXT NOT NULL CHECK (from_address ~ '^0x[0-9a-f]{40}$'),
  reorg_id     BIGINT NOT NULL,
  PRIMARY KEY (chain_id, from_address)
);

-- The final block at which a stored CLI deploy ended (reverted: its receipt's block; dropped: the
-- block its nonce was read used at). A node at or above it that counts the deploy's nonce unused
-- is not behind it: a deep reorg accepted at the chain's resume took it away, and the signer's gap
-- stage raises `nonce_gap` naming the deploy (signer/broadcaster/gaps.ts) instead of waiting in
-- silence for the node to catch up. Rows ended before this column stay NULL (the node is taken as
-- behind, as before).
ALTER TABLE custody.hot_wallet_deploys ADD COLUMN ended_block_number BIGINT;
