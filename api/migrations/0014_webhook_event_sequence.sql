-- Each webhook event names its subject (`deposit:<deposit_id>`, `withdrawal:<withdrawal_id>`, else
-- `<type's first word>:<event id>`: an event about nothing else) and its place among that subject's
-- events, `sequence` 1, 2, 3… in the order they are committed; both go out in every delivery's
-- body. The dispatcher delivers a subject's events to an endpoint in order, but a dead event
-- re-driven after a later one was delivered would reach the receiver last: with the sequence the
-- receiver drops what is older than what it applied, and the re-drive refuses such an event unless
-- forced (api/webhooks/events.ts).
--
-- A trigger numbers every insert, so the rule lives here once and a previous revision's inserts
-- (during a rolling deployment) are numbered too; for the same reason the columns are not declared
-- NOT NULL, though the trigger always sets them. Emitters of one subject take turns (a transaction
-- lock per subject, held until commit), so each reads the number the one before it committed.
ALTER TABLE api.webhook_events ADD COLUMN subject TEXT, ADD COLUMN sequence INTEGER;

CREATE FUNCTION api.webhook_event_sequence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.subject := split_part(NEW.type, '.', 1) || ':' ||
    coalesce(NEW.payload->>'deposit_id', NEW.payload->>'withdrawal_id', NEW.id::text);
  PERFORM pg_advisory_xact_lock(hashtextextended('api.webhook_subject:' || NEW.subject, 0));
  SELECT coalesce(max(sequence), 0) + 1 INTO NEW.sequence
    FROM api.webhook_events WHERE subject = NEW.subject;
  RETURN NEW;
END $$;

CREATE TRIGGER webhook_events_sequence BEFORE INSERT ON api.webhook_events
  FOR EACH ROW EXECUTE FUNCTION api.webhook_event_sequence();

-- The events before: numbered in created_at order, as the dispatcher ordered them.
UPDATE api.webhook_events e
   SET subject = n.subject, sequence = n.sequence
  FROM (SELECT id, subject,
               row_number() OVER (PARTITION BY subject ORDER BY created_at, id)::int AS sequence
          FROM (SELECT id, created_at,
                       split_part(type, '.', 1) || ':' ||
                         coalesce(payload->>'deposit_id', payload->>'withdrawal_id', id::text)
                         AS subject
                  FROM api.webhook_events) s) n
 WHERE n.id = e.id;
CREATE UNIQUE INDEX webhook_events_subject_sequence ON api.webhook_events (subject, sequence);
