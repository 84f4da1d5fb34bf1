-- Releases (issue 22): builds pushed with `para push`, numbered, one of them current. A server
-- started without a project folder serves the current one and switches when it changes. One
-- database serves one project: every release carries the project id it was built for.
CREATE TABLE releases (
  number BIGINT PRIMARY KEY,
  project_id TEXT NOT NULL,
  -- The build's content hash (`sha256:…`), recomputed by the server: a build is stored once.
  hash TEXT NOT NULL UNIQUE,
  -- The whole `build.json`, as the server serialised it (its hash is `hash`).
  build TEXT NOT NULL,
  message TEXT,
  author TEXT,
  git_commit TEXT,
  created_at BIGINT NOT NULL
);

-- The release served: one row (`id` = 1) once anything was pushed.
CREATE TABLE release_current (
  id BIGINT PRIMARY KEY,
  number BIGINT NOT NULL,
  changed_at BIGINT NOT NULL
);
