-- Reconciliation's full run reads, per chain, the posted entries that claim no fact on that chain
-- (ledger.posted_entries: no effective chain reference, or one on another chain) and matches them
-- against no facts. Nothing indexed that read: every chain's full run scanned all of
-- ledger.transfers (7-12 s a chain at 10M transfers, a sixth of the run; docs/scale.md, session 14).
--
-- 1. A chain reference names a fact on its asset's chain (an asset id is '<chainId>:<token>',
--    assets_check). The ledger did not check this before, but nothing writes otherwise (a
--    fact on one chain moves that chain's assets only); the constraint makes it a rule, so an
--    entry with its own reference is never "on another chain" and the read needs only the entries
--    without one. VALIDATE fails this migration if a row breaks the rule: fix the row first.
-- 2. Those entries (posted, no reference of their own: manual and treasury moves, posts of holds
--    that carry none, opening balances) by asset, for the read to reach through the chain's assets.
--    Small: deposits, withdrawals, sweeps and fees carry references and are not in it.
--
-- Both scan ledger.transfers once, inside this migration's transaction: writers of the ledger
-- wait for it (about 6 s at 10M transfers on our 2-core machines: VALIDATE 4.5 s, the index 1.1 s).
ALTER TABLE ledger.transfers
  ADD CONSTRAINT transfers_ref_on_asset_chain
  CHECK (chain_id IS NULL OR chain_id::text = split_part(asset_id, ':', 1)) NOT VALID;
ALTER TABLE ledger.transfers VALIDATE CONSTRAINT transfers_ref_on_asset_chain;

CREATE INDEX transfers_unreferenced ON ledger.transfers (asset_id)
  WHERE chain_id IS NULL AND posted_delta > 0;
