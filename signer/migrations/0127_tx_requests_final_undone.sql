-- A request confirmed and finalized in a block a deep reorg an operator accepted at the chain's
-- resume undid (signer/broadcaster/undone.ts): followed again since, its stored bytes sent again.
-- Its caller booked it paid for good: final_undone_at tells it (getTxOutcomes `finalUndone`, a
-- handful, read on every full scan of the withdrawal follower) to revert the posting to a hold.
ALTER TABLE custody.tx_requests ADD COLUMN final_undone_at TIMESTAMPTZ;
CREATE INDEX tx_requests_final_undone ON custody.tx_requests (kind) WHERE final_undone_at IS NOT NULL;

-- The requests decided at a final block (confirmed or failed, finalized_at set), by block: each new
-- chain.reorg_log row has those above its common ancestor checked against the canonical chain
-- (undone.ts) without reading every request the wallet ever sent.
CREATE INDEX tx_requests_final_block ON custody.tx_requests (chain_id, from_address, block_number)
  WHERE finalized_at IS NOT NULL AND status IN ('confirmed', 'failed');
