-- Reorg holds (DESIGN "Money flows"): a credited deposit whose fact a reorg removes is held from the
-- customer (pending transfer user → custody:deposits) until the same deposit confirms again (void)
-- or its block becomes final without it (post). What the customer's available balance cannot cover
-- is held on `receivable:reorg:<id>` and blocks the customer's withdrawals.

ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE ledger.accounts ADD CONSTRAINT accounts_kind_check
  CHECK (kind IN ('user', 'custody', 'fees', 'suspense', 'receivable'));

-- reorg_hold: the hold (and its shortfall) of a reorged deposit; inflow_credit: an operator's credit
-- of an unattributed inflow (no chain fact behind it, see ledger/recon/inflows.ts).
ALTER TABLE ledger.transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE ledger.transfers ADD CONSTRAINT transfers_kind_check
  CHECK (kind IN ('deposit', 'withdrawal', 'sweep', 'fee', 'compensation', 'cold_move', 'manual',
                  'reorg_hold', 'inflow_credit'));

-- One row per deposit credit: what was credited (the fact's identity and the recipient, asset and
-- amount crediting compares) and where its reorg hold stands.
--   credited  the credit stands, its fact is canonical
--   held      its fact was orphaned: hold (and shortfall) pending
--   final     its fact's height became final without it: hold (and shortfall) posted
--   legacy    compensated to suspense before reorg holds existed
CREATE TABLE ledger.deposit_credits (
  credit_id        UUID PRIMARY KEY,
  chain_id         BIGINT NOT NULL,
  tx_hash          TEXT NOT NULL,
  position         TEXT NOT NULL,
  to_address       TEXT NOT NULL,
  asset            TEXT NOT NULL,
  amount           NUMERIC(78, 0) NOT NULL,
  owner            TEXT NOT NULL,
  block_number     BIGINT NOT NULL,
  block_hash       TEXT NOT NULL,
  state            TEXT NOT NULL DEFAULT 'credited' CHECK (state IN ('credited', 'held', 'final', 'legacy')),
  -- height of the orphaned block: the hold is posted once this height is final without the deposit
  orphaned_block   BIGINT,
  hold_id          UUID,
  hold_amount      NUMERIC(78, 0),
  shortfall_id     UUID,
  shortfall_amount NUMERIC(78, 0),
  -- how many times a hold was placed and voided (a deposit may be reorged out and back repeatedly)
  holds_placed     INTEGER NOT NULL DEFAULT 0,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX deposit_credits_fact ON ledger.deposit_credits (chain_id, tx_hash, position);
CREATE INDEX deposit_credits_held ON ledger.deposit_credits (chain_id, orphaned_block) WHERE state = 'held';

-- Customers whose withdrawals are refused, and why (a reorg shortfall, an operator). A block is
-- lifted by clearing it (cleared_at), never by deleting it.
CREATE TABLE ledger.withdrawal_blocks (
  id            BIGSERIAL PRIMARY KEY,
  customer_id   TEXT NOT NULL,
  reason        TEXT NOT NULL,
  -- the deposit credit whose reorg shortfall caused it, if any
  credit_id     UUID,
  details       JSONB NOT NULL DEFAULT '{}',
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  cleared_at    TIMESTAMPTZ,
  cleared_by    TEXT,
  clear_reason  TEXT
);
CREATE INDEX withdrawal_blocks_open ON ledger.withdrawal_blocks (customer_id) WHERE cleared_at IS NULL;
CREATE UNIQUE INDEX withdrawal_blocks_credit_open ON ledger.withdrawal_blocks (credit_id)
  WHERE cleared_at IS NULL AND credit_id IS NOT NULL;

-- Credits booked before this migration (the chain schema is migrated first).
INSERT INTO ledger.deposit_credits (credit_id, chain_id, tx_hash, position, to_address, asset, amount,
  owner, block_number, block_hash, state)
SELECT DISTINCT ON (t.id) t.id, t.chain_id, t.tx_hash, t.position, f.to_address, f.asset, t.amount,
  substr(a.name, 6), f.block_number, f.block_hash,
  CASE WHEN EXISTS (SELECT 1 FROM ledger.transfers r WHERE r.reverses_id = t.id) THEN 'legacy' ELSE 'credited' END
FROM ledger.transfers t
JOIN ledger.accounts a ON a.id = t.credit_account_id
JOIN chain.transfers f ON f.chain_id = t.chain_id AND f.tx_hash = t.tx_hash AND f.position = t.position
WHERE t.kind = 'deposit' AND t.type = 'single' AND a.name LIKE 'user:%'
ORDER BY t.id, (f.status = 'orphaned'), f.block_number DESC;
