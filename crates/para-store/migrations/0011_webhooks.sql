-- Webhook deliveries (issue 21). An event is written before the provider gets its 2xx; the
-- dispatcher then leases it and, in one transaction, creates the runs it starts and marks it
-- routed. The unique key makes a second delivery of the same provider event a no-op.
CREATE TABLE webhook_events (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  integration TEXT NOT NULL,
  -- '' for the integration's app-level URL; otherwise the hook (per-account URL) it came to.
  hook TEXT NOT NULL,
  dedupe_key TEXT NOT NULL,
  event_type TEXT NOT NULL,
  account TEXT,
  body TEXT NOT NULL,
  headers TEXT NOT NULL,
  received_at BIGINT NOT NULL,
  status TEXT NOT NULL,
  lease_owner TEXT,
  lease_until BIGINT,
  runs BIGINT NOT NULL DEFAULT 0,
  routed_at BIGINT,
  note TEXT,
  UNIQUE (project_id, integration, hook, dedupe_key)
);
CREATE INDEX webhook_events_pending ON webhook_events (project_id, status, received_at);

-- Per-account webhook URLs (`/webhooks/{project}/{integration}/{id}`; the id is a random
-- secret): registered with the provider for a workflow (`webhook.subscribe`), or handed to the
-- user to paste (custom webhook triggers). Events that arrive at one belong to its account.
CREATE TABLE webhook_hooks (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  integration TEXT NOT NULL,
  credential_id TEXT NOT NULL,
  -- '' when the URL serves every workflow of the account.
  workflow_id TEXT NOT NULL,
  configuration_id TEXT NOT NULL,
  -- The signing secret of this URL, sealed by the caller.
  secret TEXT,
  -- The provider's id of the registration, to remove or renew it.
  remote_id TEXT,
  status TEXT NOT NULL,
  error TEXT,
  expires_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_hooks_by_user ON webhook_hooks (project_id, user_id, integration);
