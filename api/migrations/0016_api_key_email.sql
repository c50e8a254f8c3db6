-- The person behind an API key, by email (api/apiKeys.ts): approvals count distinct persons, so a
-- key carrying anna@example.com and Anna's SSO session (or another key with her email) are one
-- approver, and neither may decide on what she requested. Nullable: a key without one is its
-- owner alone, as before (with console SSO configured, it cannot approve: docs/console.md). Set at
-- creation (`custody-node apikeys create --email`) and never changed; a console session's key
-- carries its parent key's email, or the verified email of the SSO sign-in.
ALTER TABLE api.api_keys
  ADD COLUMN email TEXT CHECK (email IS NULL OR (length(email) BETWEEN 3 AND 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'));
