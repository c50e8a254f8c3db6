-- Outcomes recorded once, followed to finality (issue 13).
--
-- tx_requests.status gains two side states that are never terminal:
--   receipt_unknown -> the nonce is used on chain but no receipt of any of our attempts was found
--                      (all attempts, rejected ones included, on every endpoint); still searched
--   needs_review    -> nonce consumed at a finalized block and no known attempt is in the chain, or
--                      a nonce that cannot be used (cancel refused after bounded retries); alerted,
--                      still searched; only an operator command (audited, with a reason) fails it
-- `confirmed` stays "the confirmation rule is met"; `finalized_at` set means the block is final
-- (the chain's finality rule): that, and `failed`, are terminal. A reverted or cancelled attempt
-- stays `mined` until final and only then becomes `failed` (no hold released while it can change).
ALTER TABLE custody.tx_requests DROP CONSTRAINT tx_requests_status_check;
ALTER TABLE custody.tx_requests ADD CONSTRAINT tx_requests_status_check CHECK (
  status IN ('pending', 'signed', 'broadcast', 'mined', 'confirmed', 'failed', 'receipt_unknown',
             'needs_review'));

ALTER TABLE custody.tx_requests
  -- when the mined block met the chain's finality rule (terminal for confirmed and failed)
  ADD COLUMN finalized_at           TIMESTAMPTZ,
  -- when the status callers see (getTxOutcomes) last changed, and a counter of those changes
  ADD COLUMN outcome_changed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
  ADD COLUMN outcome_seq            INTEGER NOT NULL DEFAULT 0,
  -- outcome_seq of the last tx-outcomes doorbell enqueued (NULL: none yet); outcome_seq counts
  -- only the changes that ring the doorbell
  ADD COLUMN notified_seq           INTEGER,
  -- times a mined attempt of this request left the canonical chain
  ADD COLUMN reorg_count            INTEGER NOT NULL DEFAULT 0,
  -- the value transfer in the mined tx, per the fact identity of chain.transfers: `tx` (native)
  -- or `transfer:<n>` (n-th listed-token Transfer log of the tx); NULL for other calls
  ADD COLUMN transfer_position      TEXT,
  ADD COLUMN transfer_log_index     INTEGER,
  -- first time the nonce was seen used without a receipt of ours (cleared when one is found)
  ADD COLUMN receipt_missing_since  TIMESTAMPTZ,
  -- why the request needs a human (needs_review)
  ADD COLUMN review_reason          TEXT;

-- Rows final under the old rules stay final.
UPDATE custody.tx_requests
   SET finalized_at = CASE WHEN status IN ('confirmed', 'failed') THEN updated_at END,
       outcome_changed_at = updated_at,
       outcome_seq = CASE WHEN status IN ('confirmed', 'failed') THEN 1 ELSE 0 END,
       notified_seq = CASE WHEN notified_at IS NOT NULL THEN 1 END;

DROP INDEX custody.tx_requests_open;
-- The broadcaster's intake queue and the tracker's watch list (everything not yet final).
CREATE INDEX tx_requests_open ON custody.tx_requests (chain_id, from_address, status, created_at)
  WHERE status IN ('pending', 'signed', 'broadcast', 'mined', 'receipt_unknown', 'needs_review');
CREATE INDEX tx_requests_unfinal ON custody.tx_requests (chain_id, from_address, nonce)
  WHERE status IN ('confirmed', 'failed') AND finalized_at IS NULL AND nonce IS NOT NULL;
DROP INDEX custody.tx_requests_unnotified;
-- Doorbells owed: outcome_seq counts the changes that ring tx-outcomes (see signer/broadcaster/doorbells.ts).
CREATE INDEX tx_requests_unnotified ON custody.tx_requests (chain_id, from_address)
  WHERE outcome_seq > COALESCE(notified_seq, 0);
CREATE INDEX tx_requests_outcome_changed ON custody.tx_requests (outcome_changed_at);

-- The status callers see (signer/outcomes.ts, getTxOutcomes), defined once.
CREATE FUNCTION custody.tx_outcome_status(status TEXT, finalized_at TIMESTAMPTZ) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE status
    WHEN 'pending' THEN 'signing'
    WHEN 'signed' THEN 'signing'
    WHEN 'mined' THEN 'broadcast'
    WHEN 'confirmed' THEN CASE WHEN finalized_at IS NULL THEN 'confirmed' ELSE 'finalized' END
    ELSE status END
$$;

-- outcome_changed_at follows every change of that status, whoever writes the row.
CREATE FUNCTION custody.tx_requests_outcome_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF custody.tx_outcome_status(NEW.status, NEW.finalized_at)
     IS DISTINCT FROM custody.tx_outcome_status(OLD.status, OLD.finalized_at) THEN
    NEW.outcome_changed_at := now();
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER tx_requests_outcome_changed BEFORE UPDATE OF status, finalized_at
  ON custody.tx_requests FOR EACH ROW EXECUTE FUNCTION custody.tx_requests_outcome_changed();

-- What happened to a request beyond the plain path: reorged out, re-mined elsewhere, receipt not
-- found, review needed, cancel retries, and operator decisions (who, why). Append-only.
CREATE TABLE custody.tx_request_events (
  id           BIGSERIAL PRIMARY KEY,
  request_id   TEXT NOT NULL REFERENCES custody.tx_requests (id),
  from_status  TEXT,
  to_status    TEXT NOT NULL,
  event        TEXT NOT NULL CHECK (event ~ '^[a-z][a-z0-9_]*$'),
  actor        TEXT NOT NULL DEFAULT 'signer',
  reason       TEXT,
  details      JSONB NOT NULL DEFAULT '{}',
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX tx_request_events_request ON custody.tx_request_events (request_id);
