//! Durable workflow runs and their steps, which are also the work queue (issue 6).
//!
//! - [`Store::create_run`] writes the run and its first ready steps in one transaction, so a
//!   trigger can be acknowledged once it returns.
//! - [`Store::claim_steps`] leases due steps to a worker: ready ones whose `not_before` has
//!   passed, and leased ones whose lease expired (their worker died). On PostgreSQL concurrent
//!   workers skip each other's rows (`FOR UPDATE SKIP LOCKED`); SQLite has one writer.
//! - [`Store::finish_step`] records a result only while the caller still holds the lease
//!   (fencing: a worker whose lease expired and was taken over cannot overwrite the new
//!   owner's work) and enqueues the following steps in the same transaction. A step with a
//!   recorded result is never claimed again.
//! - [`Store::claim_cron_tick`] lets exactly one process fire a cron tick.

use serde_json::Value;
use sqlx::Row;

use crate::{Backend, Result, Store, json, now_ms};

/// A run's status.
pub mod status {
    pub const QUEUED: &str = "QUEUED";
    pub const RUNNING: &str = "RUNNING";
    pub const SUCCEEDED: &str = "SUCCEEDED";
    pub const FAILED: &str = "FAILED";
}

/// A step's status in the queue.
pub mod step_status {
    pub const READY: &str = "READY";
    pub const LEASED: &str = "LEASED";
    pub const DONE: &str = "DONE";
    pub const FAILED: &str = "FAILED";
}

/// A step to put in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStep {
    /// Unique within the run: the step id, plus the fan-out instance path when inside one.
    pub key: String,
    pub step_id: String,
    /// What the worker needs to run it (resolved inputs, fan-out item…).
    pub input: Value,
    /// Not before this time (Unix ms): delays and retries.
    pub not_before: i64,
}

/// A run to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub project_id: String,
    pub user_id: String,
    pub integration: String,
    pub workflow_id: String,
    pub trigger_kind: String,
    pub trigger_input: Value,
    pub build_hash: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub integration: String,
    pub workflow_id: String,
    pub trigger_kind: String,
    pub trigger_input: Value,
    pub build_hash: String,
    pub status: String,
    pub error: Option<String>,
    pub response: Option<Value>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// A step leased to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedStep {
    pub run_id: String,
    pub key: String,
    pub step_id: String,
    /// Including this one.
    pub attempts: i64,
    pub input: Value,
}

/// A step as recorded (history).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub key: String,
    pub step_id: String,
    pub status: String,
    pub attempts: i64,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// How a leased step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Succeeded with this output.
    Done(Value),
    /// Failed for good.
    Failed(String),
    /// Failed; run it again at this time (auto-retry, 429 `Retry-After`).
    RetryAt { error: String, at: i64 },
}

/// What finishing a step does to its run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunUpdate {
    /// A terminal status (`SUCCEEDED`/`FAILED`) or `RUNNING`; `None` leaves it.
    pub status: Option<&'static str>,
    pub error: Option<String>,
    /// The ResponseStep's answer.
    pub response: Option<Value>,
}

const RUN_COLUMNS: &str = "id, project_id, user_id, integration, workflow_id, trigger_kind, trigger_input, build_hash, status, error, response, created_at, updated_at, finished_at";

fn run_row(r: &sqlx::any::AnyRow) -> Result<Run> {
    Ok(Run {
        id: r.get(0),
        project_id: r.get(1),
        user_id: r.get(2),
        integration: r.get(3),
        workflow_id: r.get(4),
        trigger_kind: r.get(5),
        trigger_input: json(&r.get::<String, _>(6))?,
        build_hash: r.get(7),
        status: r.get(8),
        error: r.get(9),
        response: r.get::<Option<String>, _>(10).map(|t| json(&t)).transpose()?,
        created_at: r.get(11),
        updated_at: r.get(12),
        finished_at: r.get(13),
    })
}

impl Store {
    /// Writes a run and its first steps atomically; returns the run.
    pub async fn create_run(&self, run: &NewRun, first: &[NewStep]) -> Result<Run> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO runs (id, project_id, user_id, integration, workflow_id, trigger_kind, trigger_input, build_hash, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&id)
        .bind(&run.project_id)
        .bind(&run.user_id)
        .bind(&run.integration)
        .bind(&run.workflow_id)
        .bind(&run.trigger_kind)
        .bind(run.trigger_input.to_string())
        .bind(&run.build_hash)
        .bind(status::QUEUED)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for step in first {
            insert_step(&mut tx, &id, step, now).await?;
        }
        tx.commit().await?;
        Ok(Run {
            id,
            project_id: run.project_id.clone(),
            user_id: run.user_id.clone(),
            integration: run.integration.clone(),
            workflow_id: run.workflow_id.clone(),
            trigger_kind: run.trigger_kind.clone(),
            trigger_input: run.trigger_input.clone(),
            build_hash: run.build_hash.clone(),
            status: status::QUEUED.to_string(),
            error: None,
            response: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        })
    }

    /// Leases up to `limit` due steps to `worker` until `now + lease_ms`.
    pub async fn claim_steps(
        &self,
        worker: &str,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedStep>> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE run_steps SET status = '{leased}', lease_owner = $1, lease_until = $2,
                    attempts = attempts + 1, started_at = $3
             WHERE (run_id, step_key) IN (
               SELECT run_id, step_key FROM run_steps
               WHERE (status = '{ready}' AND not_before <= $3) OR (status = '{leased}' AND lease_until < $3)
               ORDER BY not_before LIMIT $4{lock})
             RETURNING run_id, step_key, step_id, attempts, input",
            leased = step_status::LEASED,
            ready = step_status::READY,
        );
        // Built from constants only; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ClaimedStep {
                    run_id: r.get(0),
                    key: r.get(1),
                    step_id: r.get(2),
                    attempts: r.get(3),
                    input: json(&r.get::<String, _>(4))?,
                })
            })
            .collect()
    }

    /// Extends the leases `worker` holds on these steps; returns how many it still holds.
    pub async fn heartbeat(
        &self,
        worker: &str,
        steps: &[(String, String)],
        lease_ms: i64,
    ) -> Result<u64> {
        let until = now_ms() + lease_ms;
        let mut held = 0;
        for (run_id, key) in steps {
            held += sqlx::query(
                "UPDATE run_steps SET lease_until = $4
                 WHERE run_id = $1 AND step_key = $2 AND status = 'LEASED' AND lease_owner = $3",
            )
            .bind(run_id)
            .bind(key)
            .bind(worker)
            .bind(until)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(held)
    }

    /// Records how a leased step ended, enqueues `next`, and updates the run — all or nothing,
    /// and only if `worker` still holds the lease (false: the lease was lost, nothing written).
    pub async fn finish_step(
        &self,
        worker: &str,
        run_id: &str,
        key: &str,
        outcome: &StepOutcome,
        next: &[NewStep],
        run: &RunUpdate,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let (status, output, error, not_before) = match outcome {
            StepOutcome::Done(output) => (step_status::DONE, Some(output.to_string()), None, None),
            StepOutcome::Failed(error) => (step_status::FAILED, None, Some(error.clone()), None),
            StepOutcome::RetryAt { error, at } => {
                (step_status::READY, None, Some(error.clone()), Some(*at))
            }
        };
        let owned = sqlx::query(
            "UPDATE run_steps SET status = $4, output = $5, error = $6, finished_at = $7,
                    not_before = COALESCE($8, not_before), lease_owner = NULL, lease_until = NULL
             WHERE run_id = $1 AND step_key = $2 AND status = 'LEASED' AND lease_owner = $3",
        )
        .bind(run_id)
        .bind(key)
        .bind(worker)
        .bind(status)
        .bind(output)
        .bind(error)
        .bind(now)
        .bind(not_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if owned != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for step in next {
            insert_step(&mut tx, run_id, step, now).await?;
        }
        if run.status.is_some() || run.error.is_some() || run.response.is_some() {
            let terminal = matches!(run.status, Some(status::SUCCEEDED | status::FAILED));
            sqlx::query(
                "UPDATE runs SET status = COALESCE($2, status), error = COALESCE($3, error),
                        response = COALESCE($4, response), updated_at = $5,
                        finished_at = CASE WHEN $6 = 1 THEN $5 ELSE finished_at END
                 WHERE id = $1",
            )
            .bind(run_id)
            .bind(run.status)
            .bind(run.error.as_deref())
            .bind(run.response.as_ref().map(Value::to_string))
            .bind(now)
            .bind(i64::from(terminal))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// One run (of the project).
    pub async fn run(&self, project_id: &str, run_id: &str) -> Result<Option<Run>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE project_id = $1 AND id = $2");
        // Built from constants only; every value is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_row).transpose()
    }

    /// The steps of a run, in the order they were queued.
    pub async fn run_steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        let rows = sqlx::query(
            "SELECT step_key, step_id, status, attempts, input, output, error, started_at, finished_at
             FROM run_steps WHERE run_id = $1 ORDER BY created_at, step_key",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StepRecord {
                    key: r.get(0),
                    step_id: r.get(1),
                    status: r.get(2),
                    attempts: r.get(3),
                    input: json(&r.get::<String, _>(4))?,
                    output: r.get::<Option<String>, _>(5).map(|t| json(&t)).transpose()?,
                    error: r.get(6),
                    started_at: r.get(7),
                    finished_at: r.get(8),
                })
            })
            .collect()
    }

    /// True for exactly one caller per `(project, workflow, tick)`, across processes.
    pub async fn claim_cron_tick(
        &self,
        project_id: &str,
        workflow_id: &str,
        tick: i64,
        claimer: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO cron_ticks (project_id, workflow_id, tick, claimed_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project_id, workflow_id, tick) DO NOTHING",
        )
        .bind(project_id)
        .bind(workflow_id)
        .bind(tick)
        .bind(claimer)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

async fn insert_step(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: &str,
    step: &NewStep,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO run_steps (run_id, step_key, step_id, status, attempts, not_before, input, created_at)
         VALUES ($1, $2, $3, $4, 0, $5, $6, $7)",
    )
    .bind(run_id)
    .bind(&step.key)
    .bind(&step.step_id)
    .bind(step_status::READY)
    .bind(step.not_before)
    .bind(step.input.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("para.db").display());
        (dir, Store::open(&url).await.unwrap())
    }

    fn new_run() -> NewRun {
        NewRun {
            project_id: "p".into(),
            user_id: "ann".into(),
            integration: "slack".into(),
            workflow_id: "wf".into(),
            trigger_kind: "event".into(),
            trigger_input: json!({"name": "Task Created"}),
            build_hash: "sha256:x".into(),
        }
    }

    fn step(key: &str, not_before: i64) -> NewStep {
        NewStep { key: key.into(), step_id: key.into(), input: json!({"k": key}), not_before }
    }

    #[tokio::test]
    async fn a_run_flows_through_its_steps_under_leases() {
        let (_dir, s) = store().await;
        let run = s.create_run(&new_run(), &[step("a", 0)]).await.unwrap();
        let claimed = s.claim_steps("w1", 10, 30_000).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].key.as_str(), claimed[0].attempts), ("a", 1));
        assert!(s.claim_steps("w2", 10, 30_000).await.unwrap().is_empty(), "leased");

        // Another worker cannot record it; the owner can, enqueueing the next step.
        let done = StepOutcome::Done(json!({"ok": 1}));
        let next = [step("b", 0)];
        let running = RunUpdate { status: Some(status::RUNNING), ..RunUpdate::default() };
        assert!(!s.finish_step("w2", &run.id, "a", &done, &next, &running).await.unwrap());
        assert!(s.finish_step("w1", &run.id, "a", &done, &next, &running).await.unwrap());
        assert!(!s.finish_step("w1", &run.id, "a", &done, &next, &running).await.unwrap(), "once");

        let b = s.claim_steps("w2", 10, 30_000).await.unwrap();
        assert_eq!(b.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["b"]);
        let finished = RunUpdate {
            status: Some(status::SUCCEEDED),
            response: Some(json!({"status": 200})),
            ..RunUpdate::default()
        };
        assert!(
            s.finish_step("w2", &run.id, "b", &StepOutcome::Done(json!(2)), &[], &finished)
                .await
                .unwrap()
        );
        let stored = s.run("p", &run.id).await.unwrap().unwrap();
        assert_eq!(stored.status, status::SUCCEEDED);
        assert_eq!(stored.response, Some(json!({"status": 200})));
        assert!(stored.finished_at.is_some());
        assert!(s.run("other", &run.id).await.unwrap().is_none(), "per project");
        let steps = s.run_steps(&run.id).await.unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].output, Some(json!({"ok": 1})));
        assert!(s.claim_steps("w3", 10, 30_000).await.unwrap().is_empty(), "nothing runs twice");
    }

    #[tokio::test]
    async fn expired_leases_are_taken_over_and_the_old_owner_is_fenced_off() {
        let (_dir, s) = store().await;
        let run = s.create_run(&new_run(), &[step("a", 0)]).await.unwrap();
        assert_eq!(s.claim_steps("crashed", 10, -1).await.unwrap().len(), 1);
        let again = s.claim_steps("w2", 10, 30_000).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 2);
        let done = StepOutcome::Done(json!(null));
        let none = RunUpdate::default();
        assert!(!s.finish_step("crashed", &run.id, "a", &done, &[], &none).await.unwrap());
        assert_eq!(s.heartbeat("w2", &[(run.id.clone(), "a".into())], 30_000).await.unwrap(), 1);
        assert_eq!(
            s.heartbeat("crashed", &[(run.id.clone(), "a".into())], 30_000).await.unwrap(),
            0
        );
        assert!(s.finish_step("w2", &run.id, "a", &done, &[], &none).await.unwrap());
    }

    #[tokio::test]
    async fn retries_wait_for_their_time_and_cron_ticks_fire_once() {
        let (_dir, s) = store().await;
        let run = s
            .create_run(&new_run(), &[step("a", 0), step("later", now_ms() + 60_000)])
            .await
            .unwrap();
        let claimed = s.claim_steps("w", 10, 30_000).await.unwrap();
        assert_eq!(claimed.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["a"]);
        let retry = StepOutcome::RetryAt { error: "429".into(), at: now_ms() + 60_000 };
        assert!(
            s.finish_step("w", &run.id, "a", &retry, &[], &RunUpdate::default()).await.unwrap()
        );
        assert!(s.claim_steps("w", 10, 30_000).await.unwrap().is_empty(), "not yet due");
        let steps = s.run_steps(&run.id).await.unwrap();
        assert_eq!(steps[0].status, step_status::READY);
        assert_eq!(steps[0].error.as_deref(), Some("429"));

        assert!(s.claim_cron_tick("p", "wf", 1_000, "a").await.unwrap());
        assert!(!s.claim_cron_tick("p", "wf", 1_000, "b").await.unwrap());
        assert!(s.claim_cron_tick("p", "wf", 2_000, "b").await.unwrap());
    }
}
