-- Running sweepable balances (issue 15): sweep planning reads the (address, asset) pairs that have
-- something to sweep instead of summing every deposit credit joined to its chain fact each tick.
--
-- balance = standing deposit credits to the address (ledger.deposit_credits in state 'credited':
-- confirmed, not held by a reorg, not reversed) minus what booked sweeps moved out of it
-- (custody.sweep_items.swept of booked sweeps). It may go negative (value swept before its credit
-- landed). Kept by two statement triggers on ledger.deposit_credits (the ledger's published record
-- of deposit credits, docs/contracts.md; they write only this table) and by sweep settlement and
-- unbooking in the same transactions (signer/sweeps/sweepable.ts). Only addresses of
-- custody.deposit_addresses (forwarders the planner can sweep) are tracked.
CREATE TABLE custody.sweepable_balances (
  chain_id    BIGINT NOT NULL,
  address     TEXT NOT NULL,
  asset       TEXT NOT NULL,
  balance     NUMERIC(78, 0) NOT NULL DEFAULT 0,
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (chain_id, address, asset)
);
-- The planner reads only these rows, in address order (a stable plan after a crash).
CREATE INDEX sweepable_balances_positive ON custody.sweepable_balances (chain_id, address)
  WHERE balance > 0;

CREATE FUNCTION custody.sweepable_on_credit_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO custody.sweepable_balances (chain_id, address, asset, balance)
  SELECT n.chain_id, n.to_address, n.asset, sum(n.amount)
    FROM new_rows n
    JOIN custody.deposit_addresses d ON d.chain_id = n.chain_id AND d.address = n.to_address
   WHERE n.state = 'credited'
   GROUP BY n.chain_id, n.to_address, n.asset
   ORDER BY n.chain_id, n.to_address, n.asset
  ON CONFLICT (chain_id, address, asset) DO UPDATE
    SET balance = custody.sweepable_balances.balance + EXCLUDED.balance, updated_at = now();
  RETURN NULL;
END $$;

CREATE FUNCTION custody.sweepable_on_credit_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO custody.sweepable_balances (chain_id, address, asset, balance)
  SELECT n.chain_id, n.to_address, n.asset,
         sum(CASE WHEN n.state = 'credited' THEN n.amount ELSE 0 END)
           - sum(CASE WHEN o.state = 'credited' THEN o.amount ELSE 0 END)
    FROM new_rows n
    JOIN old_rows o ON o.credit_id = n.credit_id
    JOIN custody.deposit_addresses d ON d.chain_id = n.chain_id AND d.address = n.to_address
   WHERE (n.state = 'credited') <> (o.state = 'credited')
   GROUP BY n.chain_id, n.to_address, n.asset
   ORDER BY n.chain_id, n.to_address, n.asset
  ON CONFLICT (chain_id, address, asset) DO UPDATE
    SET balance = custody.sweepable_balances.balance + EXCLUDED.balance, updated_at = now();
  RETURN NULL;
END $$;

CREATE TRIGGER sweepable_on_credit_insert AFTER INSERT ON ledger.deposit_credits
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION custody.sweepable_on_credit_insert();
CREATE TRIGGER sweepable_on_credit_update AFTER UPDATE ON ledger.deposit_credits
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION custody.sweepable_on_credit_update();

-- What is sweepable now.
INSERT INTO custody.sweepable_balances (chain_id, address, asset, balance)
SELECT chain_id, address, asset, sum(amount) FROM (
  SELECT c.chain_id, c.to_address AS address, c.asset, c.amount
    FROM ledger.deposit_credits c
    JOIN custody.deposit_addresses d ON d.chain_id = c.chain_id AND d.address = c.to_address
   WHERE c.state = 'credited'
  UNION ALL
  SELECT i.chain_id, i.address, i.asset, -i.swept
    FROM custody.sweep_items i JOIN custody.sweeps s ON s.id = i.sweep_id
   WHERE s.status = 'booked' AND i.swept > 0
) x
GROUP BY chain_id, address, asset;
