-- Incremental deposit crediting (issue 15): crediting reads only new blocks, not every fact.
--
-- Per chain, a watermark: every confirmed fact at or below `block_number` has been credited or
-- parked. It moves forward over blocks whose facts are all confirmed, and back to the common
-- ancestor of every reorg recorded after `reorg_id` (chain.reorgs): a re-included deposit may land
-- at or below it. A missing row starts at -1 (the first pass walks the history once, in steps).
CREATE TABLE ledger.crediting_watermarks (
  chain_id      BIGINT PRIMARY KEY,
  block_number  BIGINT NOT NULL DEFAULT -1,
  -- the newest chain.reorgs id the watermark has accounted for
  reorg_id      BIGINT NOT NULL DEFAULT 0,
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Deposits the ledger refused (e.g. an asset the ledger does not list yet, a frozen account), parked
-- aside so crediting continues past them. One row per fact (chain.transfers.id), with the ledger's
-- code and detail; retried with backoff (next_attempt_at) and removed once credited, or once the
-- fact no longer needs a credit (orphaned, credited another way). Listed by
-- `custody-node ledger parked-deposits`.
CREATE TABLE ledger.parked_deposits (
  fact_id          BIGINT PRIMARY KEY,
  chain_id         BIGINT NOT NULL,
  block_number     BIGINT NOT NULL,
  tx_hash          TEXT NOT NULL,
  position         TEXT NOT NULL,
  to_address       TEXT NOT NULL,
  asset            TEXT NOT NULL,
  amount           NUMERIC(78, 0) NOT NULL,
  owner            TEXT NOT NULL,
  code             TEXT NOT NULL,
  detail           TEXT,
  attempts         INTEGER NOT NULL DEFAULT 1,
  next_attempt_at  TIMESTAMPTZ NOT NULL,
  parked_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX parked_deposits_due ON ledger.parked_deposits (chain_id, next_attempt_at);
