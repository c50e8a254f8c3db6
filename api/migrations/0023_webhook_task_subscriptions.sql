-- The webhook subscriptions of api migration 0020, by the task that registered them, so that a task
-- that stops takes its own away: an endpoint removed from the config gets no more deliveries once
-- the last task that had it has stopped (0020's rows are shared by every task that has the
-- endpoint, so one could only go stale, ten minutes after the last of them registered it). A task
-- that crashed leaves its rows to go stale as before. The last task to stop keeps its rows
-- (`stopped`), so an event emitted while every task is down (an operator's CLI) still finds the
-- subscriptions of the tasks before; the next task to register removes them. Emitters read this
-- table only; tasks still write 0020's for the previous revision's emitters during the deploy
-- that brings this one.
CREATE TABLE api.webhook_task_subscriptions (
  task      TEXT NOT NULL,
  endpoint  TEXT NOT NULL,
  pattern   TEXT NOT NULL,
  seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  stopped   BOOLEAN NOT NULL DEFAULT false,
  PRIMARY KEY (task, endpoint, pattern)
);
