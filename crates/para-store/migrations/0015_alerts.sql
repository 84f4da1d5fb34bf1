-- Alerts to the company (issue 22, Paragon's event destinations): events about the project
-- (`workflow.run.failed`, `credential.invalid`, `integration.connected`,
-- `integration.disconnected`) POSTed, signed, to the company's destinations.
--
-- A destination: the deployment's (`PARA_ALERTS_WEBHOOK_URL`, id `env`, written by each
-- process at start; its secret is the environment's, so `secret` is NULL) or one added in the
-- dashboard (its generated secret sealed with the server's key).
CREATE TABLE alert_destinations (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  url TEXT NOT NULL,
  -- The event types it receives, comma-separated; '' for all.
  events TEXT NOT NULL,
  -- Sealed (`v1:<base64>`), or NULL for the environment's destination.
  secret TEXT,
  created_at BIGINT NOT NULL
);
CREATE INDEX alert_destinations_by_project ON alert_destinations (project_id);

-- Each event once, with the exact JSON text POSTed (and signed) to every destination. `source`
-- names what caused it where a cause can repeat (`run:<id>` for a run's failure), so recording
-- it twice records nothing the second time.
CREATE TABLE alert_events (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  source TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (project_id, source)
);
CREATE INDEX alert_events_created ON alert_events (project_id, created_at);

-- The outbox: one row per event and destination, written in the transaction that records the
-- event, sent by one leased sender, retried with backoff.
CREATE TABLE alert_deliveries (
  event_id TEXT NOT NULL,
  destination_id TEXT NOT NULL,
  project_id TEXT NOT NULL,
  -- pending, delivered or failed.
  status TEXT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL,
  last_status BIGINT,
  last_error TEXT,
  lease_owner TEXT,
  lease_until BIGINT,
  created_at BIGINT NOT NULL,
  finished_at BIGINT,
  PRIMARY KEY (event_id, destination_id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (project_id, status, next_attempt_at);

-- Every attempt of a delivery: when, the answer's status (NULL: no answer) and why it failed.
CREATE TABLE alert_attempts (
  event_id TEXT NOT NULL,
  destination_id TEXT NOT NULL,
  attempt BIGINT NOT NULL,
  at BIGINT NOT NULL,
  status BIGINT,
  error TEXT,
  PRIMARY KEY (event_id, destination_id, attempt)
);
