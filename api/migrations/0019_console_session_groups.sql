-- The groups an SSO console session signed in with (the ID token's groups claim as given: a string
-- or an array), so /v1 grants it only the scopes those groups map to under the configuration the
-- api task runs now (api/auth.ts): a mapping reduced, or SSO turned off, and the api restarted
-- takes the scope from sessions already signed in, not only from the next sign-in. NULL for
-- API-key sessions, and for SSO sessions signed in before this column: those are granted nothing
-- (sign in again).
ALTER TABLE api.console_sessions ADD COLUMN oidc_groups JSONB;
