-- The Triggers API (issue 21, Paragon's `/trigger-subscriptions`): a company subscribes one of
-- its users to a catalog trigger type, without a workflow; each event of that type is delivered
-- to the company's webhook URL (or the subscription's override).
CREATE TABLE trigger_subscriptions (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  integration TEXT NOT NULL,
  -- The catalog trigger's intent (`SLACK_TRIGGER_CHANNEL_MESSAGE_POSTED`).
  trigger_type TEXT NOT NULL,
  -- JSON object: the trigger's parameters as the company set them.
  parameters TEXT NOT NULL,
  -- The account events must belong to (and polling triggers poll with).
  credential_id TEXT NOT NULL,
  -- JSON `{url, headers, metadata}`, or NULL: the project's URL.
  webhook_override TEXT,
  -- ACTIVE or ERRORED.
  status TEXT NOT NULL,
  -- Delivery attempts failed in a row (reset by a success).
  failures BIGINT NOT NULL DEFAULT 0,
  error TEXT,
  last_event_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX trigger_subscriptions_by_user ON trigger_subscriptions (project_id, user_id, integration);
CREATE INDEX trigger_subscriptions_by_type ON trigger_subscriptions (project_id, integration, trigger_type);

-- The outbox: one row per event to deliver to one subscription, written in the transaction
-- that routes the event (or records a poll), sent by one leased worker, retried with backoff.
-- A polling subscription's trigger state is the `trigger_state` row whose workflow_id is
-- `subscription:<id>` (configuration '').
CREATE TABLE trigger_deliveries (
  -- Also the payload's `eventId`.
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  -- What the delivery came from (`webhook:<event id>`, `poll:<item id>`): a second routing of
  -- one source to one subscription records nothing.
  source TEXT NOT NULL,
  -- The exact JSON text POSTed (and signed).
  body TEXT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL,
  -- pending, delivered or failed.
  status TEXT NOT NULL,
  last_status BIGINT,
  last_error TEXT,
  lease_owner TEXT,
  lease_until BIGINT,
  created_at BIGINT NOT NULL,
  finished_at BIGINT,
  UNIQUE (subscription_id, source)
);
CREATE INDEX trigger_deliveries_due ON trigger_deliveries (project_id, status, next_attempt_at);
