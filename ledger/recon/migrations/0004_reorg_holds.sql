-- Reorg holds a run saw (ledger.deposit_credits under a hold: pending, or posted since the previous
-- run): not breaks, but listed in every report. JSON [{creditId, owner, assetId, txHash, position,
-- toAddress, amount, state, holdAmount, shortfallAmount, orphanedBlock, updatedAt}, …], amounts as
-- decimal strings.
ALTER TABLE recon.runs ADD COLUMN holds JSONB NOT NULL DEFAULT '[]';
