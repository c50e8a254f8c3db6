-- Console sessions signed in through OIDC (api/console/oidc.ts) have no parent API key: they record
-- the issuer and subject of the ID token instead. Exactly one of the two origins is set.
--
-- Session keys are API keys, and /v1 accepts them directly (api/apiKeys.ts verifyApiKey). So that
-- /v1 refuses them as soon as the session is over, not only when the console next sees it, each
-- session carries its own deadlines: `idle_expires_at`, slid forward on every console request
-- (last use + idle timeout), and `expires_at`, the absolute end (set for OIDC sessions).
ALTER TABLE api.console_sessions
  ALTER COLUMN signed_in_with DROP NOT NULL,
  ADD COLUMN oidc_issuer TEXT,
  ADD COLUMN oidc_subject TEXT,
  ADD COLUMN idle_expires_at TIMESTAMPTZ,
  ADD COLUMN expires_at TIMESTAMPTZ;

-- Sessions open at migration time keep the default idle timeout (15 min) from their last use; the
-- console slides it to the configured one at their next request.
UPDATE api.console_sessions SET idle_expires_at = last_seen_at + interval '15 minutes'
 WHERE idle_expires_at IS NULL;

ALTER TABLE api.console_sessions
  ALTER COLUMN idle_expires_at SET NOT NULL,
  ADD CONSTRAINT console_sessions_one_origin CHECK (
    (signed_in_with IS NOT NULL AND oidc_issuer IS NULL AND oidc_subject IS NULL)
    OR (signed_in_with IS NULL AND oidc_issuer IS NOT NULL AND oidc_subject IS NOT NULL)
  );
