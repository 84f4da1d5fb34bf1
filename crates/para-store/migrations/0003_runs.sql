-- Durable workflow runs (issue 6). A run is written before its trigger is acknowledged; its
-- steps are the queue: workers lease ready steps (PostgreSQL: FOR UPDATE SKIP LOCKED), record
-- the result under their lease, and enqueue what follows in the same transaction. A lease that
-- expires (a crashed worker) makes the step claimable again; a recorded step is never claimed.
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  integration TEXT NOT NULL,
  workflow_id TEXT NOT NULL,
  trigger_kind TEXT NOT NULL,
  trigger_input TEXT NOT NULL,
  build_hash TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT,
  response TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  finished_at BIGINT
);
CREATE INDEX runs_by_project ON runs (project_id, created_at);
CREATE INDEX runs_by_user ON runs (project_id, user_id, created_at);

CREATE TABLE run_steps (
  run_id TEXT NOT NULL,
  step_key TEXT NOT NULL,
  step_id TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts BIGINT NOT NULL,
  not_before BIGINT NOT NULL,
  lease_owner TEXT,
  lease_until BIGINT,
  input TEXT NOT NULL,
  output TEXT,
  error TEXT,
  created_at BIGINT NOT NULL,
  started_at BIGINT,
  finished_at BIGINT,
  PRIMARY KEY (run_id, step_key)
);
CREATE INDEX run_steps_due ON run_steps (status, not_before);

CREATE TABLE cron_ticks (
  project_id TEXT NOT NULL,
  workflow_id TEXT NOT NULL,
  tick BIGINT NOT NULL,
  claimed_by TEXT NOT NULL,
  PRIMARY KEY (project_id, workflow_id, tick)
);
