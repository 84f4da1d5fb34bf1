-- Runs become the unit of work (issue 6): a worker leases a whole run and walks its graph,
-- recording every step in `run_steps`, which is now the run's journal (and its history)
-- rather than a queue. Replaying a run after a crash reads the journal: a step with a
-- recorded result is never executed again. A run that waits (a delay, a retry, a 429)
-- releases its lease and sets `not_before`; no worker holds it meanwhile.
-- 0003's queue never carried data in a release, so its step table is replaced.
ALTER TABLE runs ADD COLUMN not_before BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_until BIGINT;
ALTER TABLE runs ADD COLUMN claims BIGINT NOT NULL DEFAULT 0;
CREATE INDEX runs_due ON runs (project_id, status, not_before);
CREATE INDEX runs_by_workflow ON runs (project_id, workflow_id, created_at);
DROP TABLE run_steps;
CREATE TABLE run_steps (
  run_id TEXT NOT NULL,
  step_key TEXT NOT NULL,
  step_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  status TEXT NOT NULL,
  attempts BIGINT NOT NULL,
  input TEXT,
  output TEXT,
  error TEXT,
  not_before BIGINT,
  started_at BIGINT NOT NULL,
  finished_at BIGINT,
  PRIMARY KEY (run_id, step_key)
);
