-- The audit log leaves the api schema for `audit` (foundation/migrations/0001_audit.sql), whose
-- owner is foundation/: foundation/audit.ts, the writer every module uses, may name no module's
-- schema. api's own 0001 and 0004 created the table, its sequence, indexes, triggers and
-- functions here, so the move runs here, after them, on a fresh database and on an existing one
-- alike; the rows, their ids, seq and hashes are untouched, so the chain verifies as before.
--
-- SET SCHEMA moves the table with what belongs to it: the id sequence (owned by the column; the
-- default follows it), the primary key and the indexes (audit_log_entity, audit_log_seq), and the
-- triggers (audit_log_append_only, audit_log_chain), which keep pointing at their functions.
CREATE SCHEMA IF NOT EXISTS audit;
ALTER TABLE api.audit_log SET SCHEMA audit;

-- The functions move too. audit_canonical is plain SQL over its row argument (no table name in it);
-- the two trigger functions are PL/pgSQL, whose bodies name the table as text, so they are
-- redefined on audit.audit_log with the same logic. The advisory lock key stays the same constant.
ALTER FUNCTION api.audit_canonical(audit.audit_log) SET SCHEMA audit;
ALTER FUNCTION api.audit_chain_link() SET SCHEMA audit;
ALTER FUNCTION api.audit_log_append_only() SET SCHEMA audit;

CREATE OR REPLACE FUNCTION audit.audit_chain_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  head RECORD;
  me audit.audit_log;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('api.audit_log chain head', 0));
  SELECT seq, hash INTO head FROM audit.audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1;
  SELECT * INTO me FROM audit.audit_log WHERE id = NEW.id;
  me.seq := COALESCE(head.seq, 0) + 1;
  me.prev_hash := COALESCE(head.hash, repeat('0', 64));
  me.hash := encode(sha256(convert_to(me.prev_hash || audit.audit_canonical(me), 'UTF8')), 'hex');
  -- The append-only trigger lets exactly this through: a row's first (and only) link.
  UPDATE audit.audit_log SET seq = me.seq, prev_hash = me.prev_hash, hash = me.hash WHERE id = NEW.id;
  RETURN NULL;
END;
$$;

-- UPDATE is refused except linking a row not yet linked, changing nothing else.
CREATE OR REPLACE FUNCTION audit.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL
     AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.actor = OLD.actor AND NEW.action = OLD.action
     AND NEW.entity_type = OLD.entity_type AND NEW.entity_id = OLD.entity_id
     AND NEW.details = OLD.details THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit.audit_log is append-only';
END;
$$;
