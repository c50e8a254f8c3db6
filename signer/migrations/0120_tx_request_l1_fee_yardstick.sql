-- The L1 price a request's `l1_fee` was estimated at: the GasPriceOracle's `getL1Fee` of a 0-value
-- self-transfer of the wallet, read at the same block (signer/gas.ts `l1FeeYardstick`). An OP-stack
-- chain charges the L1 fee at inclusion, at the L1 price then: intake counts each send in flight at
-- the larger of `l1_fee` and `l1_fee` x the yardstick now / this one (signer/broadcaster/intake.ts
-- `inFlightCost`), so a spike while sends are in flight is in the budget before the next nonce is
-- taken. NULL: chains without an L1 fee, and requests signed before this column (counted as stored).
ALTER TABLE custody.tx_requests ADD COLUMN l1_fee_yardstick NUMERIC(78, 0) CHECK (l1_fee_yardstick >= 0);
