-- custody.contracts and custody.deposit_addresses move to their owner, the indexers' chain schema
-- (issue 16; indexers/migrations/*_deposit_addresses.sql created chain.contracts and
-- chain.deposit_addresses with the same columns, constraints and keys). Their rows are copied
-- there and the custody tables dropped. The locks keep a writer of the previous version from
-- adding a row after the copy. Nothing references them by foreign key, view or sequence; the
-- sweepable-balance triggers (0103) name custody.deposit_addresses in their bodies and are
-- redefined to read the chain's published view chain.deposit_forwarders (a plain projection,
-- inlined: the same plan).
LOCK TABLE custody.contracts, custody.deposit_addresses IN ACCESS EXCLUSIVE MODE;

INSERT INTO chain.contracts
  (chain_id, name, address, hot_wallet, init_code_hash, deploy_tx_hash, block_number, created_at)
SELECT chain_id, name, address, hot_wallet, init_code_hash, deploy_tx_hash, block_number, created_at
  FROM custody.contracts;

INSERT INTO chain.deposit_addresses (chain_id, customer_id, address, salt, factory, created_at)
SELECT chain_id, customer_id, address, salt, factory, created_at FROM custody.deposit_addresses;
ANALYZE chain.contracts, chain.deposit_addresses;

DROP TABLE custody.contracts, custody.deposit_addresses;

CREATE OR REPLACE FUNCTION custody.sweepable_on_credit_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO custody.sweepable_balances (chain_id, address, asset, balance)
  SELECT n.chain_id, n.to_address, n.asset, sum(n.amount)
    FROM new_rows n
    JOIN chain.deposit_forwarders d ON d.chain_id = n.chain_id AND d.address = n.to_address
   WHERE n.state = 'credited'
   GROUP BY n.chain_id, n.to_address, n.asset
   ORDER BY n.chain_id, n.to_address, n.asset
  ON CONFLICT (chain_id, address, asset) DO UPDATE
    SET balance = custody.sweepable_balances.balance + EXCLUDED.balance, updated_at = now();
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION custody.sweepable_on_credit_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO custody.sweepable_balances (chain_id, address, asset, balance)
  SELECT n.chain_id, n.to_address, n.asset,
         sum(CASE WHEN n.state = 'credited' THEN n.amount ELSE 0 END)
           - sum(CASE WHEN o.state = 'credited' THEN o.amount ELSE 0 END)
    FROM new_rows n
    JOIN old_rows o ON o.credit_id = n.credit_id
    JOIN chain.deposit_forwarders d ON d.chain_id = n.chain_id AND d.address = n.to_address
   WHERE (n.state = 'credited') <> (o.state = 'credited')
   GROUP BY n.chain_id, n.to_address, n.asset
   ORDER BY n.chain_id, n.to_address, n.asset
  ON CONFLICT (chain_id, address, asset) DO UPDATE
    SET balance = custody.sweepable_balances.balance + EXCLUDED.balance, updated_at = now();
  RETURN NULL;
END $$;
