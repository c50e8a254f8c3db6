-- The ledger: double-entry accounts, immutable two-phase transfers (TigerBeetle's model) in
-- Postgres. Amounts are NUMERIC(78,0) base units. Read by reconciliation (docs/contracts.md).

-- An asset is a chain id + token address (native = zero address); id '<chainId>:<token>'.
CREATE TABLE ledger.assets (
  id          TEXT PRIMARY KEY CHECK (id = chain_id::text || ':' || token),
  chain_id    BIGINT NOT NULL,
  token       TEXT NOT NULL CHECK (token ~ '^0x[0-9a-f]{40}$'),
  symbol      TEXT NOT NULL,
  decimals    INTEGER NOT NULL CHECK (decimals BETWEEN 0 AND 36),
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (chain_id, token)
);

-- One account per (asset, name). Names follow the chart of accounts in docs/contracts.md
-- ('user:<id>', 'custody:deposits', 'custody:hot:<address>', 'custody:cold:<address>', 'fees:gas',
-- 'suspense'). Balances are kept here as posted and pending debits and credits; the CHECKs are a
-- backstop for the limit the ledger already enforces under the account's row lock.
CREATE TABLE ledger.accounts (
  id               BIGSERIAL PRIMARY KEY,
  asset_id         TEXT NOT NULL REFERENCES ledger.assets (id),
  name             TEXT NOT NULL,
  kind             TEXT NOT NULL CHECK (kind IN ('user', 'custody', 'fees', 'suspense')),
  normal           TEXT NOT NULL CHECK (normal IN ('credit', 'debit')),
  debits_must_not_exceed_credits BOOLEAN NOT NULL DEFAULT false,
  credits_must_not_exceed_debits BOOLEAN NOT NULL DEFAULT false,
  frozen           BOOLEAN NOT NULL DEFAULT false,
  debits_pending   NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
  debits_posted    NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
  credits_pending  NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
  credits_posted   NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (asset_id, name),
  CHECK (NOT debits_must_not_exceed_credits OR debits_posted + debits_pending <= credits_posted),
  CHECK (NOT credits_must_not_exceed_debits OR credits_posted + credits_pending <= debits_posted)
);

-- Immutable, append-only transfers with caller-chosen ids (UUID; deterministic ones are UUID v5 of
-- a name, see ledger/transferId.ts).
--   type 'single'  posts at once
--   type 'pending' a hold: moves amount into debits_pending/credits_pending (see ledger.holds)
--   type 'post'    resolves the hold pending_id: releases it and posts amount (<= the hold's)
--   type 'void'    resolves the hold pending_id: releases it, posts nothing
--   type 'expire'  like void, written by the expiry sweep once the hold's timeout passed
-- posted_delta / pending_delta are this row's effect on both accounts (debit side and credit side
-- alike), so any balance is a plain sum over transfers: posted += posted_delta, pending += pending_delta.
CREATE TABLE ledger.transfers (
  seq               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
  id                UUID PRIMARY KEY,
  asset_id          TEXT NOT NULL,
  debit_account_id  BIGINT NOT NULL,
  credit_account_id BIGINT NOT NULL,
  amount            NUMERIC(78, 0) NOT NULL CHECK (amount >= 0),
  type              TEXT NOT NULL CHECK (type IN ('single', 'pending', 'post', 'void', 'expire')),
  pending_id        UUID,
  posted_delta      NUMERIC(78, 0) NOT NULL,
  pending_delta     NUMERIC(78, 0) NOT NULL,
  kind              TEXT NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'sweep', 'fee', 'compensation', 'cold_move', 'manual')),
  -- optional chain reference, same meaning as chain.transfers (chain_id, tx_hash, position)
  chain_id          BIGINT,
  tx_hash           TEXT,
  position          TEXT,
  -- a compensating transfer names the transfer it compensates
  reverses_id       UUID,
  timeout_at        TIMESTAMPTZ,
  memo              TEXT,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  CHECK (debit_account_id <> credit_account_id),
  CHECK ((type IN ('single', 'pending')) = (pending_id IS NULL)),
  CHECK ((chain_id IS NULL) = (tx_hash IS NULL) AND (chain_id IS NULL) = (position IS NULL))
);
CREATE INDEX transfers_debit ON ledger.transfers (debit_account_id, seq);
CREATE INDEX transfers_credit ON ledger.transfers (credit_account_id, seq);
CREATE INDEX transfers_chain_ref ON ledger.transfers (chain_id, tx_hash, position) WHERE chain_id IS NOT NULL;
CREATE INDEX transfers_reverses ON ledger.transfers (reverses_id) WHERE reverses_id IS NOT NULL;
CREATE INDEX transfers_pending ON ledger.transfers (pending_id) WHERE pending_id IS NOT NULL;

-- The state of each hold (pending transfer). Transfers stay immutable; this row is what changes.
CREATE TABLE ledger.holds (
  transfer_id        UUID PRIMARY KEY,
  asset_id           TEXT NOT NULL,
  debit_account_id   BIGINT NOT NULL,
  credit_account_id  BIGINT NOT NULL,
  amount             NUMERIC(78, 0) NOT NULL,
  timeout_at         TIMESTAMPTZ,
  state              TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'posted', 'voided', 'expired')),
  resolved_by        UUID,
  resolved_at        TIMESTAMPTZ
);
CREATE INDEX holds_expiry ON ledger.holds (timeout_at) WHERE state = 'pending' AND timeout_at IS NOT NULL;

-- Ids that failed for a reason that depends on ledger state (insufficient balance, frozen account,
-- hold already resolved or expired): a retry of the same id fails the same way, never succeeds later.
CREATE TABLE ledger.failed_transfers (
  id          UUID PRIMARY KEY,
  code        TEXT NOT NULL,
  detail      TEXT,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Things other parts react to (reconciliation breaks, alerts, webhooks), written in the same
-- transaction as the transfer they describe. type: 'deposit.credited', 'deposit.compensated'.
CREATE TABLE ledger.events (
  id           BIGSERIAL PRIMARY KEY,
  type         TEXT NOT NULL,
  transfer_id  UUID,
  payload      JSONB NOT NULL DEFAULT '{}',
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX events_type ON ledger.events (type, id);
