-- A blocked customer's withdrawal the api worker found already signed (api/withdrawals/blocked.ts:
-- it cannot be stopped and may pay out money a reorg took) is reported once, whichever worker finds
-- it first: custody_api_blocked_withdrawals_total{outcome="in_flight"} counts it when its row here
-- is inserted. Counted once per process, it was counted again by every api worker restarted (each
-- deploy) and by each worker running, and BlockedWithdrawalInFlight fired again for it each time
-- while it stayed in flight (a receipt_unknown or needs_review one, for days).
CREATE TABLE api.blocked_withdrawals_in_flight (
  withdrawal_id UUID PRIMARY KEY REFERENCES api.withdrawals (id),
  customer_id   TEXT NOT NULL,
  -- The signer's status of its request when it was found (signed, broadcast, …).
  signer_status TEXT NOT NULL,
  reported_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
