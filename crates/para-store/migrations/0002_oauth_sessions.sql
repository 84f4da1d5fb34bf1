-- OAuth bookkeeping: the SDK's polled sessions, the popup's CSRF nonces, and the lease that
-- makes one process refresh an expired credential while the others wait.
CREATE TABLE oauth_sessions (
  project_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  credential_id TEXT,
  error TEXT,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (project_id, user_id, session_id)
);

CREATE TABLE oauth_nonces (
  nonce TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  expires_at BIGINT NOT NULL
);

ALTER TABLE credentials ADD COLUMN refresh_lock_until BIGINT;
