-- Published views for reconciliation (ledger/recon, issue 16): what a run reads of the ledger,
-- listed in docs/architecture.md's `views` block. Plain projections, filters and joins, so Postgres
-- inlines them into the reader's query and its plan is the one on the tables. The ledger stays free
-- to reshape its tables behind them; these columns and their meaning stay put.

-- The journal: every transfer ever applied (ledger.transfers), immutable, in seq order. seq is
-- increasing in commit-visibility order except for gaps a concurrent writer has not committed yet.
--   seq, id (uuid), kind, type ('single' | 'pending' | 'post' | 'void' | 'expire'), asset_id
--   debit_account_id, credit_account_id, amount (as requested), posted_delta and pending_delta
--   (what it moved into posted and pending balances), pending_id (a post/void's hold), reverses_id
--   (a compensation's original), chain_id / tx_hash / position (its chain reference, all or none),
--   created_at
CREATE VIEW ledger.journal AS
  SELECT seq, id, kind, type, asset_id, debit_account_id, credit_account_id, amount, posted_delta,
         pending_delta, pending_id, reverses_id, chain_id, tx_hash, position, created_at
    FROM ledger.transfers;

-- Posted entries: each transfer that moved posted balances (posted_delta > 0) as reconciliation
-- matches it against chain facts. A post carries its hold's accounts and, when it has none of its
-- own, its hold's chain reference.
--   seq, id, kind, asset_id, chain_id (the asset's chain)
--   debit, credit       account names (docs/contracts.md chart)
--   amount              posted_delta
--   tx_hash, position   the effective chain reference (own, else the hold's); ref_chain_id its chain
--   reverses_id
--   own_chain_id, own_tx_hash, hold_chain_id, hold_tx_hash  the two references apart (so a reader
--                       can filter on either and keep each one's index)
CREATE VIEW ledger.posted_entries AS
  SELECT t.seq, t.id, t.kind, t.asset_id, s.chain_id, da.name AS debit, ca.name AS credit,
         t.posted_delta AS amount,
         COALESCE(t.tx_hash, p.tx_hash) AS tx_hash, COALESCE(t.position, p.position) AS position,
         COALESCE(t.chain_id, p.chain_id) AS ref_chain_id, t.reverses_id,
         t.chain_id AS own_chain_id, t.tx_hash AS own_tx_hash,
         p.chain_id AS hold_chain_id, p.tx_hash AS hold_tx_hash
    FROM ledger.transfers t
    JOIN ledger.assets s ON s.id = t.asset_id
    JOIN ledger.accounts da ON da.id = t.debit_account_id
    JOIN ledger.accounts ca ON ca.id = t.credit_account_id
    LEFT JOIN ledger.transfers p ON p.id = t.pending_id
   WHERE t.posted_delta > 0;

-- Account balances with their asset's chain: asset_id, chain_id, name, kind ('user' | 'custody' |
-- 'fees' | 'suspense' | ...), debits/credits posted and pending (NUMERIC(78, 0), base units).
CREATE VIEW ledger.account_balances AS
  SELECT a.asset_id, s.chain_id, a.name, a.kind, a.debits_posted, a.credits_posted,
         a.debits_pending, a.credits_pending
    FROM ledger.accounts a
    JOIN ledger.assets s ON s.id = a.asset_id;

-- Pending reorg holds (a reorged deposit's hold or shortfall, not yet posted or voided):
-- transfer_id, asset_id, chain_id (the asset's), debit_kind (the held account's kind), amount.
CREATE VIEW ledger.pending_reorg_holds AS
  SELECT h.transfer_id, t.asset_id, s.chain_id, a.kind AS debit_kind, h.amount
    FROM ledger.holds h
    JOIN ledger.transfers t ON t.id = h.transfer_id
    JOIN ledger.accounts a ON a.id = h.debit_account_id
    JOIN ledger.assets s ON s.id = t.asset_id
   WHERE h.state = 'pending' AND t.kind = 'reorg_hold';

-- Deposit credits a reorg took out (ledger.deposit_credits in state 'held': hold pending, or
-- 'final': the height became final without the fact, hold posted): credit_id, chain_id, owner,
-- asset, tx_hash, position, to_address, amount, state, hold_amount, shortfall_amount,
-- orphaned_block, updated_at.
CREATE VIEW ledger.reorged_deposit_credits AS
  SELECT credit_id, chain_id, owner, asset, tx_hash, position, to_address, amount, state,
         hold_amount, shortfall_amount, orphaned_block, updated_at
    FROM ledger.deposit_credits
   WHERE state IN ('held', 'final');

-- The assets the ledger knows: id ('<chainId>:<token>'), chain_id, token (lowercase address, zero
-- for native), symbol, decimals.
CREATE VIEW ledger.asset_list AS
  SELECT id, chain_id, token, symbol, decimals
    FROM ledger.assets;

-- Unattributed inflows an operator credited (ledger.inflow_credits, `recon credit-inflow`): one
-- row per credited break (run_id, break_n): transfer_id, chain_id, address, asset, amount, owner
-- (the customer credited), block_number (the final block the inflow was measured at), credited_by,
-- reason, created_at.
CREATE VIEW ledger.credited_inflows AS
  SELECT transfer_id, chain_id, address, asset, amount, owner, block_number, run_id, break_n,
         credited_by, reason, created_at
    FROM ledger.inflow_credits;
