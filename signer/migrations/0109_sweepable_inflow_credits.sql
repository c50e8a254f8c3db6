-- An operator's credit of an unattributed inflow (ledger.inflow_credits, `recon credit-inflow`) is
-- value the custody holds in the deposit address and owes its customer, as a deposit credit is:
-- it is sweepable. The running balance (0103) counted only ledger.deposit_credits, so a credited
-- inflow was never swept, and once a later deposit's sweep moved it along (a forwarder sweeps whole
-- balances) the address's balance stayed negative by the inflow and kept the next deposits unswept.
-- Inflow credits are inserted once and never change (one row per break), so an insert trigger
-- keeps them; the rows already there are added now (an address whose inflow a sweep already moved
-- comes back from negative to what history says).
CREATE FUNCTION custody.sweepable_on_inflow_credit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO custody.sweepable_balances (chain_id, address, asset, balance)
  SELECT n.chain_id, n.address, n.asset, sum(n.amount)
    FROM new_rows n
    JOIN chain.deposit_forwarders d ON d.chain_id = n.chain_id AND d.address = n.address
   GROUP BY n.chain_id, n.address, n.asset
   ORDER BY n.chain_id, n.address, n.asset
  ON CONFLICT (chain_id, address, asset) DO UPDATE
    SET balance = custody.sweepable_balances.balance + EXCLUDED.balance, updated_at = now();
  RETURN NULL;
END $$;

CREATE TRIGGER sweepable_on_inflow_credit AFTER INSERT ON ledger.inflow_credits
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION custody.sweepable_on_inflow_credit();

INSERT INTO custody.sweepable_balances (chain_id, address, asset, balance)
SELECT n.chain_id, n.address, n.asset, sum(n.amount)
  FROM ledger.inflow_credits n
  JOIN chain.deposit_forwarders d ON d.chain_id = n.chain_id AND d.address = n.address
 GROUP BY n.chain_id, n.address, n.asset
ON CONFLICT (chain_id, address, asset) DO UPDATE
  SET balance = custody.sweepable_balances.balance + EXCLUDED.balance, updated_at = now();
