-- A stored deploy whose fees fell below the market is replaced at its nonce with raised fees by the
-- signer's gap stage (signer/broadcaster/gaps.ts), as a request's attempt is bumped: the row then
-- holds the new signed bytes (tx_hash, raw_tx), and every hash it was signed with before is kept
-- here, oldest first. Bytes a node took before the replacement may still mine: the deploy's
-- follower (signer/storedDeploy.ts) looks for a receipt of each of these hashes too, and records
-- (books the gas of) whichever mined. Additive: existing rows have none.
ALTER TABLE custody.hot_wallet_deploys
  ADD COLUMN earlier_tx_hashes TEXT[] NOT NULL DEFAULT '{}'
    CHECK (array_to_string(earlier_tx_hashes, ',') ~ '^(0x[0-9a-f]{64}(,0x[0-9a-f]{64})*)?$');
