-- The newest on-chain balance a run read for each deposit address and asset (token address, zero
-- for native) of a chain, and the block it was read at. A run reads deposit balances only for
-- addresses with activity since the previous run plus a rotating slice (issue 15; hot and cold
-- wallets are few and read every run); an address without activity keeps the balance read last,
-- so the deposit-address total is this table's sum.
CREATE TABLE recon.onchain_balances (
  chain_id      BIGINT NOT NULL,
  address       TEXT NOT NULL,
  asset         TEXT NOT NULL,
  balance       NUMERIC(78, 0) NOT NULL,
  block_number  BIGINT NOT NULL,
  PRIMARY KEY (chain_id, address, asset)
);

-- Sum of recon.onchain_balances over the chain's deposit addresses, per asset, kept in the same
-- transaction as the rows (a run reads it instead of summing 100k rows).
CREATE TABLE recon.deposit_balance_totals (
  chain_id  BIGINT NOT NULL,
  asset     TEXT NOT NULL,
  total     NUMERIC(78, 0) NOT NULL,
  PRIMARY KEY (chain_id, asset)
);
