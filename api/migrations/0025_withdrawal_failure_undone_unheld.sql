-- A failed withdrawal whose failure a deep reorg undid, which the api worker cannot hold again
-- because the customer's balance is frozen (api/withdrawals/follow.ts), is reported once per undone
-- failure, whichever worker finds it first: custody_api_withdrawal_failure_undone_unheld_total
-- counts it when its row here is inserted. Counted once per process, it was counted again by every
-- api worker restarted (each deploy) and by each worker running, and WithdrawalFailureUndoneUnheld
-- fired again for it each time while the balance stayed frozen. Keyed by the signer's
-- failure_undone_at too: the same withdrawal's failure undone again later is a new report.
CREATE TABLE api.withdrawal_failure_undone_unheld (
  withdrawal_id     UUID NOT NULL REFERENCES api.withdrawals (id),
  failure_undone_at TIMESTAMPTZ NOT NULL,
  chain_id          BIGINT NOT NULL,
  tx_hash           TEXT,
  reported_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (withdrawal_id, failure_undone_at)
);
