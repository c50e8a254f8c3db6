-- The broadcaster's tick reads only requests that changed (issue 15): every update of a request
-- stamps changed_at (a trigger, so no writer can forget it: stages, operator commands, doorbells),
-- and the broadcaster keeps its watched set in memory, re-reading rows changed since its last read
-- (with an overlap for transactions that commit late) plus a slow full reload.
ALTER TABLE custody.tx_requests ADD COLUMN changed_at TIMESTAMPTZ NOT NULL DEFAULT now();

CREATE FUNCTION custody.tx_requests_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.changed_at := clock_timestamp();
  RETURN NEW;
END $$;

CREATE TRIGGER tx_requests_changed BEFORE UPDATE ON custody.tx_requests
  FOR EACH ROW EXECUTE FUNCTION custody.tx_requests_changed();

CREATE INDEX tx_requests_changed ON custody.tx_requests (chain_id, from_address, changed_at);
