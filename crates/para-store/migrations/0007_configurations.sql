-- Several configurations per credential (the SDK's createConfiguration): each one has its own
-- settings and workflow toggles. A credential's default configuration gets a row only once it
-- has metadata (updateConfiguration); its settings are the integration-level ones, shared by
-- the user's accounts of the integration (configuration_id '' in user_settings, as before).
CREATE TABLE configurations (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  credential_id TEXT NOT NULL,
  external_id TEXT,
  is_default BIGINT NOT NULL,
  meta TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX configurations_by_user ON configurations (project_id, user_id);
CREATE UNIQUE INDEX configurations_external_id ON configurations (credential_id, external_id);

-- Settings gain the configuration they belong to ('' = the integration-level settings). The
-- primary key changes, so the table is rebuilt; every stored row is kept.
CREATE TABLE user_settings_by_configuration (
  project_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  integration TEXT NOT NULL,
  configuration_id TEXT NOT NULL,
  workflow_id TEXT NOT NULL,
  enabled BIGINT,
  settings TEXT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (project_id, user_id, integration, configuration_id, workflow_id)
);
INSERT INTO user_settings_by_configuration
  (project_id, user_id, integration, configuration_id, workflow_id, enabled, settings, updated_at)
  SELECT project_id, user_id, integration, '', workflow_id, enabled, settings, updated_at
  FROM user_settings;
DROP TABLE user_settings;
ALTER TABLE user_settings_by_configuration RENAME TO user_settings;

-- The configuration whose settings a run reads (NULL: the integration-level ones).
ALTER TABLE runs ADD COLUMN configuration_id TEXT;
