-- Dashboard sign-ins (issue 18): the cookie holds a random value; a row holds its SHA-256, the
-- fingerprint of the admin key it was made under (another key ends it) and when it expires.
-- Signing out deletes the row.
CREATE TABLE admin_sessions (
  session_hash TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  key_fingerprint TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
