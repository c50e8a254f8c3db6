-- Tamper-evident audit log: each row carries sha256(prev_hash || canonical row) and its place in
-- the chain (seq, 1, 2, 3, … without gaps). The hash is computed at COMMIT by a deferred
-- constraint trigger holding a transaction-scoped advisory lock: the chain head is serialised only
-- for the instant of the commit (a writer never holds it while it waits for other row locks), and
-- every writer — whatever module inserts — is covered. `custody-node audit verify` recomputes the
-- chain in TypeScript (api/audit.ts) and names the first edited, inserted or deleted row.
--
-- Canonical row (must match canonicalAuditRow in api/audit.ts): the fields below, each as
-- `<octets>:<text>,` (UTF-8 length prefix, so no separator is ambiguous), in this order:
-- seq, id, at (µs since the epoch, UTC), actor, action, entity_type, entity_id, details::text.

ALTER TABLE api.audit_log ADD COLUMN seq BIGINT;
ALTER TABLE api.audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE api.audit_log ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_log_seq ON api.audit_log (seq);

CREATE FUNCTION api.audit_canonical(r api.audit_log) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT string_agg(octet_length(v)::text || ':' || v || ',', '' ORDER BY n)
  FROM unnest(ARRAY[
    r.seq::text,
    r.id::text,
    ((extract(epoch FROM r.at) * 1000000)::numeric(30, 0))::text,
    r.actor,
    r.action,
    r.entity_type,
    r.entity_id,
    r.details::text
  ]) WITH ORDINALITY AS x(v, n)
$$;

-- The one lock key of the chain head (any constant; 'api.audit_log' hashed).
CREATE FUNCTION api.audit_chain_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  head RECORD;
  me api.audit_log;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('api.audit_log chain head', 0));
  SELECT seq, hash INTO head FROM api.audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1;
  SELECT * INTO me FROM api.audit_log WHERE id = NEW.id;
  me.seq := COALESCE(head.seq, 0) + 1;
  me.prev_hash := COALESCE(head.hash, repeat('0', 64));
  me.hash := encode(sha256(convert_to(me.prev_hash || api.audit_canonical(me), 'UTF8')), 'hex');
  -- The append-only trigger lets exactly this through: a row's first (and only) link.
  UPDATE api.audit_log SET seq = me.seq, prev_hash = me.prev_hash, hash = me.hash WHERE id = NEW.id;
  RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER audit_log_chain AFTER INSERT ON api.audit_log
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION api.audit_chain_link();

-- UPDATE is refused except linking a row not yet linked, changing nothing else.
CREATE OR REPLACE FUNCTION api.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL
     AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.actor = OLD.actor AND NEW.action = OLD.action
     AND NEW.entity_type = OLD.entity_type AND NEW.entity_id = OLD.entity_id
     AND NEW.details = OLD.details THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'api.audit_log is append-only';
END;
$$;

-- Rows written before this migration are linked now, in id order.
DO $$
DECLARE
  r RECORD;
  prev TEXT := repeat('0', 64);
  n BIGINT := 0;
  me api.audit_log;
BEGIN
  FOR r IN SELECT id FROM api.audit_log ORDER BY id LOOP
    n := n + 1;
    SELECT * INTO me FROM api.audit_log WHERE id = r.id;
    me.seq := n;
    me.prev_hash := prev;
    me.hash := encode(sha256(convert_to(prev || api.audit_canonical(me), 'UTF8')), 'hex');
    UPDATE api.audit_log SET seq = me.seq, prev_hash = me.prev_hash, hash = me.hash WHERE id = r.id;
    prev := me.hash;
  END LOOP;
END;
$$;
