-- Polling triggers (issue 6): per workflow and user, when the next poll is due (claiming a
-- poll moves it forward, so one process polls per interval) and what the last poll saw.
CREATE TABLE trigger_state (
  project_id TEXT NOT NULL,
  workflow_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  next_poll_at BIGINT NOT NULL,
  state TEXT,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (project_id, workflow_id, user_id)
);
