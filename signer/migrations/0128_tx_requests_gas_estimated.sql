-- Whether a request's `gas_limit` is the signer's estimate or the caller's own. A request without
-- a limit gets its estimate written there when it is signed (signer/broadcaster/intake.ts, fills.ts),
-- so the column alone no longer tells. Read by the re-estimate of a send refused "intrinsic gas too
-- low" on a chain whose gas carries the L1 cost (signer/broadcaster/regas.ts: a caller's own limit
-- is never replaced) and by a repeated request's idempotency check (signer/requests.ts: a repeat
-- without a limit matches a signed request whose limit was estimated). Rows signed before this
-- column read false: the caller's, as before.
ALTER TABLE custody.tx_requests ADD COLUMN gas_estimated BOOLEAN NOT NULL DEFAULT false;
