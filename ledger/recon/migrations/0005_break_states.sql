-- Breaks worked to closure (DESIGN "Reconciliation"). A break has a stable identity across runs
-- (type, chain, asset, subject key), so its state survives re-runs:
--   open          found, not yet looked at (alerts)
--   acknowledged  an operator looked at it (who, why, at which difference): no alert while the
--                 difference stays the same; a different difference reopens it
--   resolved      fixed, linked to the booking or fact that fixed it (by an operator), or no
--                 longer found by a run (by the reconciler); a resolved break found again reopens
CREATE TABLE recon.break_states (
  identity            TEXT PRIMARY KEY,
  chain_id            BIGINT NOT NULL,
  type                TEXT NOT NULL,
  asset_id            TEXT NOT NULL,
  key                 TEXT NOT NULL,
  state               TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
  first_run_id        BIGINT NOT NULL REFERENCES recon.runs (id),
  last_run_id         BIGINT NOT NULL REFERENCES recon.runs (id),
  last_difference     NUMERIC(78, 0) NOT NULL,
  acknowledged_by     TEXT,
  acknowledged_reason TEXT,
  acknowledged_at     TIMESTAMPTZ,
  -- the difference the operator saw when acknowledging; another one reopens the break
  acknowledged_difference NUMERIC(78, 0),
  resolved_by         TEXT,
  resolved_reason     TEXT,
  -- what fixed it: a ledger transfer id, a chain fact `<tx hash>:<position>`, or `run:<id>`
  resolved_ref        TEXT,
  resolved_at         TIMESTAMPTZ,
  updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX break_states_chain ON recon.break_states (chain_id, state);
CREATE INDEX break_states_first_run ON recon.break_states (first_run_id);
CREATE INDEX break_states_last_run ON recon.break_states (last_run_id);

-- Each stored break names its identity, and the state it had when its run stored it.
ALTER TABLE recon.breaks ADD COLUMN identity TEXT;
ALTER TABLE recon.breaks ADD COLUMN state TEXT;
CREATE INDEX breaks_identity ON recon.breaks (identity, run_id);

-- The audit log's head (api.audit_log seq and hash) when the run completed: an anchor that
-- `custody-node audit verify` checks, so a cut tail of the audit chain is found.
ALTER TABLE recon.runs ADD COLUMN audit_head JSONB;
-- Breaks that alert (open) vs ones an operator acknowledged (same difference).
ALTER TABLE recon.runs ADD COLUMN alerting_count INTEGER NOT NULL DEFAULT 0;
