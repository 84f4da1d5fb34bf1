-- Polling triggers are polled per configuration too ('' = the integration-level settings, as
-- every row before): a workflow on in a configuration made with createConfiguration polls with
-- that configuration's settings and account. The primary key changes, so the table is rebuilt;
-- every stored row is kept.
CREATE TABLE trigger_state_by_configuration (
  project_id TEXT NOT NULL,
  workflow_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  configuration_id TEXT NOT NULL,
  next_poll_at BIGINT NOT NULL,
  state TEXT,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (project_id, workflow_id, user_id, configuration_id)
);
INSERT INTO trigger_state_by_configuration
  (project_id, workflow_id, user_id, configuration_id, next_poll_at, state, updated_at)
  SELECT project_id, workflow_id, user_id, '', next_poll_at, state, updated_at FROM trigger_state;
DROP TABLE trigger_state;
ALTER TABLE trigger_state_by_configuration RENAME TO trigger_state;
