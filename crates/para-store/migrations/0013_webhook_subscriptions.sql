-- Webhook registrations made through providers' APIs (issue 21). A per-account URL that para
-- registered for a workflow keeps what it was registered for (`registration`: trigger and
-- parameters), a key that is unique among the unfinished ones of the project (one registration
-- per user, workflow, configuration, credential and parameters), and when it is next due:
-- a failed registration or removal retried with backoff, or an expiring one renewed. A worker
-- leases a hook while it calls the provider, so one process acts on it at a time.
ALTER TABLE webhook_hooks ADD COLUMN registration TEXT;
ALTER TABLE webhook_hooks ADD COLUMN registration_key TEXT;
ALTER TABLE webhook_hooks ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_hooks ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE webhook_hooks ADD COLUMN lease_owner TEXT;
ALTER TABLE webhook_hooks ADD COLUMN lease_until BIGINT;
CREATE UNIQUE INDEX webhook_hooks_registration ON webhook_hooks (project_id, registration_key)
  WHERE status IN ('pending', 'active', 'failed');
CREATE INDEX webhook_hooks_due ON webhook_hooks (project_id, next_attempt_at);
