-- Deposit crediting's catch-up pass and incremental reorg holds (issue 15).
--
-- catchup_block: a slow rotation cursor below the crediting watermark. Each pass re-reads a bounded
-- window of blocks above it (an index range on chain.transfers) for confirmed facts that have no
-- standing credit and are not parked (a fact written late into an old block, or anything else that
-- skipped the watermark), credits them, and moves on; past the watermark it starts again at the
-- bottom. Missing data is never evidence: such a fact is credited, not left to reconciliation.
--
-- holds_reorg_id: the newest chain.reorgs id whose orphaned facts the reorg-hold pass has handled.
-- The pass reads only orphaned facts above the common ancestor of reorgs recorded after it (the
-- partial index transfers_unconfirmed), not every orphaned fact of the chain's history; it moves
-- only once every credit found there is held (or needs no hold).
ALTER TABLE ledger.crediting_watermarks
  ADD COLUMN catchup_block BIGINT NOT NULL DEFAULT -1,
  ADD COLUMN holds_reorg_id BIGINT NOT NULL DEFAULT 0;
