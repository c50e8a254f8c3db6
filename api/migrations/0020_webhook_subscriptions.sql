-- The webhook endpoints the tasks are configured with, one row per (endpoint, event pattern of its
-- `events`), shared by every task: an event's deliveries are made for the endpoints subscribed
-- here when it is emitted (api/webhooks/events.ts), not only for those in the emitting task's
-- config, so an endpoint added by a rolling deploy gets the events the old tasks emit too, from
-- the moment its first task registered it. Each task registers its config at start and again
-- every minute (`seen_at`); a subscription no task has registered for ten minutes less than the
-- newest one (it was removed from every task's config) gets no more deliveries. The row with
-- endpoint '' is any task's registration (made whatever its config): the newest `seen_at` moves on
-- while tasks run, so the last endpoint removed goes stale too, and an event emitted while every
-- task is down (an operator's CLI) still finds the subscriptions of the tasks before.
CREATE TABLE api.webhook_subscriptions (
  endpoint  TEXT NOT NULL,
  pattern   TEXT NOT NULL,
  -- Since when it has been current: its first registration, or the one that found it stale.
  added_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (endpoint, pattern)
);
