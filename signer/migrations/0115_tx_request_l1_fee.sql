-- The L1 data fee an OP-stack chain (Optimism, Base) charges a request's transaction outside gas
-- (GasPriceOracle `getL1Fee`), as intake estimated it when it signed the request; 0 on chains
-- without one. Intake's budget counts it for every send still in flight (signer/broadcaster/
-- intake.ts `inFlightCost`): the wallet pays it on inclusion, so a new send that fits only without
-- it would be refused for insufficient funds after its nonce was taken. NULL: signed before this
-- column (counted as 0, as before).
ALTER TABLE custody.tx_requests ADD COLUMN l1_fee NUMERIC(78, 0) CHECK (l1_fee >= 0);
