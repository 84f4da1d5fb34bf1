//! Durable workflow runs (issue 6). A run is the unit of work; its steps are its journal.
//!
//! - [`Write::Create`] records a run (and its trigger step) before the trigger is acknowledged;
//!   it may be created already leased to the process that will execute it.
//! - [`Store::claim_runs`] leases due runs to a worker: queued ones, waiting ones whose time
//!   came (a delay, a retry), and ones whose lease expired (their worker died). On PostgreSQL
//!   concurrent workers skip each other's rows (`FOR UPDATE SKIP LOCKED`); SQLite has one writer.
//! - [`Write::Progress`] records steps (upserts into the journal) and how the run stands, only
//!   while the writer still holds the run's lease (fencing: a worker whose lease expired and was
//!   taken over cannot write over the new owner's work).
//! - [`Store::apply`] commits many writes, of many runs, in one transaction: the engine batches
//!   concurrent runs' writes into one commit (group commit).
//! - [`Store::claim_cron_tick`] lets exactly one process fire a cron tick.

use serde_json::Value;
use sqlx::Row;

use crate::{Backend, Result, SettingsKey, Store, json, now_ms, status};

pub use crate::status::{RunStatus, StepStatus};

/// A run to create. An empty `id` lets the store pick a UUID.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub integration: String,
    pub workflow_id: String,
    pub trigger_kind: String,
    pub trigger_input: Value,
    pub build_hash: String,
    /// The credential the run acts with; `None`: the user's newest valid one.
    pub credential_id: Option<String>,
    /// The configuration whose settings the run reads; `None`: the integration-level ones.
    pub configuration_id: Option<String>,
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
    pub status: RunStatus,
    pub error: Option<String>,
    pub response: Option<Value>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub not_before: i64,
    /// How many times a worker leased the run (more than one: it was resumed).
    pub claims: i64,
    /// The credential the run acts with; `None`: the user's newest valid one.
    pub credential_id: Option<String>,
    /// The configuration whose settings the run reads; `None`: the integration-level ones.
    pub configuration_id: Option<String>,
}

/// A journal entry: one step of a run (a step inside a fan-out once per instance).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Unique within the run: the step's register key, with `[i]` per enclosing fan-out.
    pub key: String,
    pub step_id: String,
    /// Order of first recording within the run.
    pub seq: i64,
    pub status: StepStatus,
    /// Executions so far (retries included).
    pub attempts: i64,
    /// What the step was given (resolved parameters).
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub not_before: Option<i64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// How a run stands after a write.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Still executing; the lease is extended.
    Running,
    /// Paused until the time (Unix ms); the lease is released.
    Waiting(i64),
    Succeeded,
    Failed(String),
}

/// A lease: who holds the run, until when (Unix ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub owner: String,
    pub until: i64,
}

/// One write of [`Store::apply`].
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new run, with the first journal entries (its trigger); leased when `lease` is set.
    Create { run: NewRun, lease: Option<Lease>, steps: Vec<StepRecord> },
    /// Journal entries and the run's state, fenced by the lease.
    Progress {
        run_id: String,
        lease: Lease,
        steps: Vec<StepRecord>,
        state: RunState,
        /// The ResponseStep's answer, once known.
        response: Option<Value>,
    },
    /// What a polling trigger saw, written with the runs its new items start.
    TriggerState {
        project_id: String,
        workflow_id: String,
        user_id: String,
        configuration: SettingsKey,
        state: Value,
    },
    /// A webhook event routed: written with the runs it starts, under the event's lease. When
    /// the lease is no longer held (another dispatcher took the event over), nothing of the
    /// whole [`Store::apply`] is written.
    EventRouted {
        event_id: String,
        owner: String,
        runs: i64,
        /// Why it started nothing, when it did not.
        note: Option<String>,
    },
    /// An event to deliver to a Triggers API subscription (the outbox), written with the
    /// event's routing or the poll that found it. A second delivery of the same source to the
    /// same subscription records nothing (its answer is false).
    Delivery(crate::trigger_subscriptions::NewDelivery),
    /// An event to the company's alert destinations ([`crate::alerts`]). With `after_run`,
    /// it is recorded only when that run's [`Write::Progress`] earlier in the same
    /// [`Store::apply`] was (a run's failure is announced with its final write, fenced by the
    /// same lease). Its answer is false when it was not recorded, or its source was before.
    Alert { alert: crate::alerts::NewAlert, after_run: Option<String> },
}

/// The columns [`run_row`] reads, in order.
/// The runs waiting for a process to claim them ([`Store::due_runs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueRuns {
    pub count: i64,
    /// Unix ms since which the longest-waiting one has been due; `None`: none is due.
    pub oldest_due_at: Option<i64>,
}

pub(crate) const RUN_COLUMNS: &str = "id, project_id, user_id, integration, workflow_id, trigger_kind, trigger_input, build_hash, status, error, response, created_at, updated_at, finished_at, not_before, claims, credential_id, configuration_id";

/// How many columns [`RUN_COLUMNS`] names: a query selecting more after them reads those from
/// this index on.
pub(crate) const RUN_COLUMN_COUNT: usize = {
    let bytes = RUN_COLUMNS.as_bytes();
    let (mut i, mut count) = (0, 1);
    while i < bytes.len() {
        if bytes[i] == b',' {
            count += 1;
        }
        i += 1;
    }
    count
};

pub(crate) fn run_row(r: &sqlx::any::AnyRow) -> Result<Run> {
    Ok(Run {
        id: r.get(0),
        project_id: r.get(1),
        user_id: r.get(2),
        integration: r.get(3),
        workflow_id: r.get(4),
        trigger_kind: r.get(5),
        trigger_input: json(&r.get::<String, _>(6))?,
        build_hash: r.get(7),
        status: status::read(r, 8)?,
        error: r.get(9),
        response: r.get::<Option<String>, _>(10).map(|t| json(&t)).transpose()?,
        created_at: r.get(11),
        updated_at: r.get(12),
        finished_at: r.get(13),
        not_before: r.get(14),
        claims: r.get(15),
        credential_id: r.get(16),
        configuration_id: r.get(17),
    })
}

fn opt_json(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(Value::to_string)
}

impl Store {
    /// Commits `writes` in one transaction. For each write: true if it was recorded, false if
    /// a `Progress` write's lease was no longer held (nothing of it was written). An
    /// `EventRouted` write whose lease is lost writes nothing at all: every answer is false.
    pub async fn apply(&self, writes: &[Write]) -> Result<Vec<bool>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut done = Vec::with_capacity(writes.len());
        // Journal entries of every write, upserted together at the end.
        let mut entries: Vec<(String, &StepRecord)> = Vec::new();
        // Runs whose Progress write was recorded in this transaction.
        let mut held_runs: Vec<&str> = Vec::new();
        for write in writes {
            match write {
                Write::Create { run, lease, steps } => {
                    let id = if run.id.is_empty() {
                        uuid::Uuid::new_v4().to_string()
                    } else {
                        run.id.clone()
                    };
                    let status =
                        if lease.is_some() { RunStatus::Running } else { RunStatus::Queued };
                    sqlx::query(
                        "INSERT INTO runs (id, project_id, user_id, integration, workflow_id, trigger_kind, trigger_input, build_hash, status, created_at, updated_at, not_before, lease_owner, lease_until, claims, credential_id, configuration_id)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 0, $11, $12, $13, $14, $15)",
                    )
                    .bind(&id)
                    .bind(&run.project_id)
                    .bind(&run.user_id)
                    .bind(&run.integration)
                    .bind(&run.workflow_id)
                    .bind(&run.trigger_kind)
                    .bind(run.trigger_input.to_string())
                    .bind(&run.build_hash)
                    .bind(status.as_str())
                    .bind(now)
                    .bind(lease.as_ref().map(|l| l.owner.as_str()))
                    .bind(lease.as_ref().map(|l| l.until))
                    .bind(i64::from(lease.is_some()))
                    .bind(run.credential_id.as_deref())
                    .bind(run.configuration_id.as_deref())
                    .execute(&mut *tx)
                    .await?;
                    entries.extend(steps.iter().map(|step| (id.clone(), step)));
                    done.push(true);
                }
                Write::Progress { run_id, lease, steps, state, response } => {
                    let (status, error, not_before, lease_until, finished) = match state {
                        RunState::Running => {
                            (RunStatus::Running, None, None, Some(lease.until), None)
                        }
                        RunState::Waiting(at) => (RunStatus::Waiting, None, Some(*at), None, None),
                        RunState::Succeeded => (RunStatus::Succeeded, None, None, None, Some(now)),
                        RunState::Failed(e) => {
                            (RunStatus::Failed, Some(e.as_str()), None, None, Some(now))
                        }
                    };
                    let owner = lease_until.map(|_| lease.owner.as_str());
                    let held = sqlx::query(
                        "UPDATE runs SET status = $3, error = COALESCE($4, error),
                                response = COALESCE($5, response), not_before = COALESCE($6, not_before),
                                lease_owner = $7, lease_until = $8, finished_at = $9, updated_at = $10
                         WHERE id = $1 AND lease_owner = $2",
                    )
                    .bind(run_id)
                    .bind(&lease.owner)
                    .bind(status.as_str())
                    .bind(error)
                    .bind(opt_json(response))
                    .bind(not_before)
                    .bind(owner)
                    .bind(lease_until)
                    .bind(finished)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if held {
                        entries.extend(steps.iter().map(|step| (run_id.clone(), step)));
                        held_runs.push(run_id);
                    }
                    done.push(held);
                }
                Write::TriggerState { project_id, workflow_id, user_id, configuration, state } => {
                    let updated = sqlx::query(
                        "UPDATE trigger_state SET state = $5, updated_at = $6
                         WHERE project_id = $1 AND workflow_id = $2 AND user_id = $3 AND configuration_id = $4",
                    )
                    .bind(project_id)
                    .bind(workflow_id)
                    .bind(user_id)
                    .bind(configuration.stored())
                    .bind(state.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    done.push(updated == 1);
                }
                Write::EventRouted { event_id, owner, runs, note } => {
                    let held = sqlx::query(
                        "UPDATE webhook_events SET status = 'routed', runs = $3, note = $4, routed_at = $5,
                                lease_owner = NULL, lease_until = NULL
                         WHERE id = $1 AND lease_owner = $2 AND status = 'pending'",
                    )
                    .bind(event_id)
                    .bind(owner)
                    .bind(runs)
                    .bind(note.as_deref())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if !held {
                        tx.rollback().await?;
                        return Ok(vec![false; writes.len()]);
                    }
                    done.push(true);
                }
                Write::Delivery(d) => {
                    let added = sqlx::query(
                        "INSERT INTO trigger_deliveries (id, project_id, subscription_id, source, body, attempts, next_attempt_at, status, created_at)
                         VALUES ($1, $2, $3, $4, $5, 0, $6, 'pending', $6)
                         ON CONFLICT (subscription_id, source) DO NOTHING",
                    )
                    .bind(&d.id)
                    .bind(&d.project_id)
                    .bind(&d.subscription_id)
                    .bind(&d.source)
                    .bind(&d.body)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if added {
                        sqlx::query(
                            "UPDATE trigger_subscriptions SET last_event_at = $2 WHERE id = $1",
                        )
                        .bind(&d.subscription_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    done.push(added);
                }
                Write::Alert { alert, after_run } => {
                    let fenced = after_run.as_deref().is_none_or(|r| held_runs.contains(&r));
                    let added = fenced && crate::alerts::record(&mut tx, alert, now).await?;
                    done.push(added);
                }
            }
        }
        upsert_steps(&mut tx, entries).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Leases up to `limit` due runs of the project to `owner` for `lease_ms`. (Several
    /// projects may share a database; a server only runs its own project's runs.)
    pub async fn claim_runs(
        &self,
        project_id: &str,
        owner: &str,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<Run>> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE runs SET status = '{running}', lease_owner = $1, lease_until = $2, claims = claims + 1, updated_at = $3
             WHERE id IN (
               SELECT id FROM runs
               WHERE project_id = $5 AND status IN ('{queued}', '{running}', '{waiting}') AND not_before <= $3
                 AND (lease_until IS NULL OR lease_until < $3)
               ORDER BY not_before LIMIT $4{lock})
             RETURNING {RUN_COLUMNS}",
            running = RunStatus::Running,
            queued = RunStatus::Queued,
            waiting = RunStatus::Waiting,
        );
        // Built from constants only; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run_row).collect()
    }

    /// Whether a run of the project is due for a claim ([`Store::claim_runs`] would lease
    /// one), asked on a read connection.
    pub async fn runs_due(&self, project_id: &str) -> Result<bool> {
        let sql = format!(
            "SELECT 1 FROM runs WHERE project_id = $1 AND status IN ('{queued}', '{running}', '{waiting}')
               AND not_before <= $2 AND (lease_until IS NULL OR lease_until < $2) LIMIT 1",
            running = RunStatus::Running,
            queued = RunStatus::Queued,
            waiting = RunStatus::Waiting,
        );
        // Built from constants only; every value is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(now_ms())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    /// The project's runs due for a claim (what [`Store::runs_due`] asks about): how many, and
    /// since when the one waiting longest has been due (its creation, or the end of its wait).
    /// Asked on a read connection, at a metrics scrape.
    pub async fn due_runs(&self, project_id: &str) -> Result<DueRuns> {
        let sql = format!(
            "SELECT COUNT(*), MIN(CASE WHEN not_before > created_at THEN not_before ELSE created_at END)
               FROM runs WHERE project_id = $1 AND status IN ('{queued}', '{running}', '{waiting}')
               AND not_before <= $2 AND (lease_until IS NULL OR lease_until < $2)",
            running = RunStatus::Running,
            queued = RunStatus::Queued,
            waiting = RunStatus::Waiting,
        );
        // Built from constants only; every value is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(now_ms())
            .fetch_one(&self.reader)
            .await?;
        Ok(DueRuns { count: row.get(0), oldest_due_at: row.get(1) })
    }

    /// Extends `owner`'s leases on these runs (the ones it is executing); returns how many
    /// it still holds.
    pub async fn renew_leases(
        &self,
        owner: &str,
        run_ids: &[String],
        lease_ms: i64,
    ) -> Result<u64> {
        let until = now_ms() + lease_ms;
        let mut held = 0;
        for chunk in run_ids.chunks(500) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "UPDATE runs SET lease_until = $2 WHERE lease_owner = $1 AND id IN ({})",
                list.join(", ")
            );
            // Placeholders only; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner).bind(until);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            held += query.execute(&self.pool).await?.rows_affected();
        }
        Ok(held)
    }

    /// Gives back `owner`'s lease on one run (it stopped executing it without finishing), so
    /// that any process may resume it at once.
    pub async fn release_lease(&self, owner: &str, run_id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
        )
        .bind(run_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives back every lease `owner` holds (a graceful shutdown), so another process can
    /// resume those runs at once.
    pub async fn release_leases(&self, owner: &str) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// One run (of the project).
    pub async fn run(&self, project_id: &str, run_id: &str) -> Result<Option<Run>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE project_id = $1 AND id = $2");
        // Built from constants only; every value is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(run_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(run_row).transpose()
    }

    /// A run's journal, in recording order. Callers check the run belongs to their project
    /// first ([`Store::run`]).
    pub async fn run_steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        let rows = sqlx::query(
            "SELECT step_key, step_id, seq, status, attempts, input, output, error, not_before, started_at, finished_at
             FROM run_steps WHERE run_id = $1 ORDER BY seq, step_key",
        )
        .bind(run_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StepRecord {
                    key: r.get(0),
                    step_id: r.get(1),
                    seq: r.get(2),
                    status: status::read(r, 3)?,
                    attempts: r.get(4),
                    input: r.get::<Option<String>, _>(5).map(|t| json(&t)).transpose()?,
                    output: r.get::<Option<String>, _>(6).map(|t| json(&t)).transpose()?,
                    error: r.get(7),
                    not_before: r.get(8),
                    started_at: r.get(9),
                    finished_at: r.get(10),
                })
            })
            .collect()
    }

    /// Claims the next poll of a polling trigger for one user in the integration-level
    /// settings or a configuration's: `None` when it is not due (or another process claimed it);
    /// otherwise what the last poll saw (`Some(None)`: this is the first poll). The next poll
    /// becomes due `interval_ms` from now.
    pub async fn claim_poll(
        &self,
        project_id: &str,
        workflow_id: &str,
        user_id: &str,
        configuration: &SettingsKey,
        interval_ms: i64,
    ) -> Result<Option<Option<Value>>> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO trigger_state (project_id, workflow_id, user_id, configuration_id, next_poll_at, state, updated_at)
             VALUES ($1, $2, $3, $4, $5, NULL, $6)
             ON CONFLICT (project_id, workflow_id, user_id, configuration_id) DO UPDATE SET next_poll_at = excluded.next_poll_at
             WHERE trigger_state.next_poll_at <= $6
             RETURNING state",
        )
        .bind(project_id)
        .bind(workflow_id)
        .bind(user_id)
        .bind(configuration.stored())
        .bind(now + interval_ms)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.get::<Option<String>, _>(0).map(|t| json(&t)).transpose()).transpose()
    }

    /// The latest tick fired for a cron workflow (Unix ms), if any.
    pub async fn latest_cron_tick(
        &self,
        project_id: &str,
        workflow_id: &str,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MAX(tick) FROM cron_ticks WHERE project_id = $1 AND workflow_id = $2",
        )
        .bind(project_id)
        .bind(workflow_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<Option<i64>, _>(0))
    }

    /// The users of a project with a valid credential for the integration.
    pub async fn connected_users(
        &self,
        project_id: &str,
        integration: &str,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT user_id FROM credentials
             WHERE project_id = $1 AND integration = $2 AND status = $3 ORDER BY user_id",
        )
        .bind(project_id)
        .bind(integration)
        .bind(crate::CredentialStatus::Valid.as_str())
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
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

/// Writes journal entries in multi-row statements. A key written twice in one call keeps its
/// last write (and the first one's input when the last has none), as separate upserts would.
async fn upsert_steps(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entries: Vec<(String, &StepRecord)>,
) -> Result<()> {
    let mut rows: Vec<(String, StepRecord)> = Vec::with_capacity(entries.len());
    let mut at: std::collections::HashMap<(String, String), usize> = Default::default();
    for (run_id, step) in entries {
        match at.get(&(run_id.clone(), step.key.clone())) {
            Some(&i) => {
                let input = rows[i].1.input.take();
                rows[i].1 = step.clone();
                if rows[i].1.input.is_none() {
                    rows[i].1.input = input;
                }
            }
            None => {
                at.insert((run_id.clone(), step.key.clone()), rows.len());
                rows.push((run_id, step.clone()));
            }
        }
    }
    // 12 parameters a row; SQLite allows 32,766 per statement.
    for chunk in rows.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO run_steps (run_id, step_key, step_id, seq, status, attempts, input, output, error, not_before, started_at, finished_at) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 12;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for k in 1..=12 {
                if k > 1 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", b + k));
            }
            sql.push(')');
        }
        sql.push_str(
            " ON CONFLICT (run_id, step_key) DO UPDATE SET status = excluded.status,
               attempts = excluded.attempts, input = COALESCE(excluded.input, run_steps.input),
               output = excluded.output, error = excluded.error, not_before = excluded.not_before,
               finished_at = excluded.finished_at",
        );
        // Placeholders only; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (run_id, step) in chunk {
            query = query
                .bind(run_id.as_str())
                .bind(step.key.as_str())
                .bind(step.step_id.as_str())
                .bind(step.seq)
                .bind(step.status.as_str())
                .bind(step.attempts)
                .bind(opt_json(&step.input))
                .bind(opt_json(&step.output))
                .bind(step.error.as_deref())
                .bind(step.not_before)
                .bind(step.started_at)
                .bind(step.finished_at);
        }
        query.execute(&mut **tx).await?;
    }
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

    pub(crate) fn new_run(id: &str) -> NewRun {
        NewRun {
            id: id.into(),
            project_id: "p".into(),
            user_id: "ann".into(),
            integration: "slack".into(),
            workflow_id: "wf".into(),
            trigger_kind: "event".into(),
            trigger_input: json!({"name": "Task Created"}),
            build_hash: "sha256:x".into(),
            credential_id: None,
            configuration_id: None,
        }
    }

    fn step(key: &str, seq: i64, status: StepStatus, output: Value) -> StepRecord {
        StepRecord {
            key: key.into(),
            step_id: format!("id-{key}"),
            seq,
            status,
            attempts: 1,
            input: Some(json!({"k": key})),
            output: Some(output),
            error: None,
            not_before: None,
            started_at: now_ms(),
            finished_at: Some(now_ms()),
        }
    }

    fn lease(owner: &str, ms: i64) -> Lease {
        Lease { owner: owner.into(), until: now_ms() + ms }
    }

    fn progress(id: &str, owner: &str, steps: Vec<StepRecord>, state: RunState) -> Write {
        Write::Progress {
            run_id: id.into(),
            lease: lease(owner, 30_000),
            steps,
            state,
            response: None,
        }
    }

    /// The queue a scrape reports: queued and over-due runs nobody holds, and since when the
    /// oldest has waited; a leased run is not waiting.
    #[tokio::test]
    async fn due_runs_are_counted_with_the_oldest() {
        let (_dir, s) = store().await;
        assert_eq!(s.due_runs("p").await.unwrap(), DueRuns { count: 0, oldest_due_at: None });
        let before = now_ms();
        let queued = |id: &str| Write::Create { run: new_run(id), lease: None, steps: vec![] };
        s.apply(&[queued("r1"), queued("r2")]).await.unwrap();
        let leased =
            Write::Create { run: new_run("r3"), lease: Some(lease("w", 30_000)), steps: vec![] };
        s.apply(&[leased]).await.unwrap();
        let due = s.due_runs("p").await.unwrap();
        assert_eq!(due.count, 2);
        let oldest = due.oldest_due_at.unwrap();
        assert!(oldest >= before && oldest <= now_ms(), "{oldest}");
        assert_eq!(s.due_runs("other").await.unwrap().count, 0, "per project");
        s.claim_runs("p", "w", 1, 30_000).await.unwrap();
        assert_eq!(s.due_runs("p").await.unwrap().count, 1);

        s.ping().await.unwrap();
        s.close().await;
        assert!(s.ping().await.is_err(), "a closed store does not answer");
    }

    #[tokio::test]
    async fn a_run_is_leased_journaled_and_fenced() {
        let (_dir, s) = store().await;
        let create = Write::Create {
            run: NewRun { credential_id: Some("cred-1".into()), ..new_run("r1") },
            lease: None,
            steps: vec![step("trigger", 0, StepStatus::Done, json!({"t": 1}))],
        };
        assert_eq!(s.apply(&[create]).await.unwrap(), [true]);
        assert!(s.claim_runs("other", "w0", 10, 30_000).await.unwrap().is_empty(), "per project");
        let claimed = s.claim_runs("p", "w1", 10, 30_000).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].id.as_str(), claimed[0].claims), ("r1", 1));
        assert_eq!(claimed[0].credential_id.as_deref(), Some("cred-1"), "the account is kept");
        assert_eq!(claimed[0].status, RunStatus::Running);
        assert!(s.claim_runs("p", "w2", 10, 30_000).await.unwrap().is_empty(), "leased");

        // Only the owner writes; both writes share one transaction.
        let a =
            progress("r1", "w2", vec![step("a", 1, StepStatus::Done, json!(1))], RunState::Running);
        let b =
            progress("r1", "w1", vec![step("a", 1, StepStatus::Done, json!(2))], RunState::Running);
        assert_eq!(s.apply(&[a, b]).await.unwrap(), [false, true]);
        let end = Write::Progress {
            run_id: "r1".into(),
            lease: lease("w1", 0),
            steps: vec![step("respond", 2, StepStatus::Done, json!({"status": 200}))],
            state: RunState::Succeeded,
            response: Some(json!({"status": 200})),
        };
        assert_eq!(s.apply(std::slice::from_ref(&end)).await.unwrap(), [true]);
        assert_eq!(s.apply(&[end]).await.unwrap(), [false], "the lease ends with the run");

        let run = s.run("p", "r1").await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Succeeded);
        assert_eq!(run.response, Some(json!({"status": 200})));
        assert!(run.finished_at.is_some());
        assert!(s.run("other", "r1").await.unwrap().is_none(), "per project");
        let steps = s.run_steps("r1").await.unwrap();
        let keys: Vec<_> = steps.iter().map(|s| (s.key.as_str(), s.output.clone())).collect();
        assert_eq!(
            keys,
            [
                ("trigger", Some(json!({"t": 1}))),
                ("a", Some(json!(2))),
                ("respond", Some(json!({"status": 200})))
            ]
        );
        assert!(
            s.claim_runs("p", "w3", 10, 30_000).await.unwrap().is_empty(),
            "finished runs stay"
        );
    }

    #[tokio::test]
    async fn expired_leases_are_taken_over_and_waiting_runs_wake_on_time() {
        let (_dir, s) = store().await;
        let create = |id: &str, owner: Option<&str>| Write::Create {
            run: new_run(id),
            lease: owner.map(|o| lease(o, -1)),
            steps: vec![],
        };
        s.apply(&[create("crashed", Some("dead")), create("wait", Some("w1"))]).await.unwrap();
        // `wait` was leased with an expired lease too; let w1 park it for a minute.
        let park = progress("wait", "w1", vec![], RunState::Waiting(now_ms() + 60_000));
        assert_eq!(s.apply(&[park]).await.unwrap(), [true]);
        assert!(s.runs_due("p").await.unwrap(), "the crashed run");
        assert!(!s.runs_due("other").await.unwrap());
        let taken = s.claim_runs("p", "w2", 10, 30_000).await.unwrap();
        assert_eq!(taken.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["crashed"]);
        assert_eq!(taken[0].claims, 2);
        let late = progress("crashed", "dead", vec![], RunState::Succeeded);
        assert_eq!(s.apply(&[late]).await.unwrap(), [false], "the old owner is fenced off");
        assert!(!s.runs_due("p").await.unwrap(), "leased and parked: nothing due");
        let ids = ["crashed".to_string(), "wait".to_string()];
        assert_eq!(s.renew_leases("w2", &ids, 30_000).await.unwrap(), 1, "only its own");
        assert!(!s.release_lease("w1", "crashed").await.unwrap(), "not w1's");
        assert_eq!(s.release_leases("w2").await.unwrap(), 1);
        assert_eq!(
            s.claim_runs("p", "w3", 10, 30_000).await.unwrap().len(),
            1,
            "released: resumable"
        );

        let wake = progress("crashed", "w3", vec![], RunState::Waiting(now_ms() - 1));
        assert_eq!(s.apply(&[wake]).await.unwrap(), [true]);
        let due = s.claim_runs("p", "w4", 10, 30_000).await.unwrap();
        assert_eq!(due.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["crashed"]);
    }

    #[tokio::test]
    async fn journal_entries_are_updated_in_place_and_cron_ticks_fire_once() {
        let (_dir, s) = store().await;
        s.apply(&[Write::Create {
            run: new_run("r"),
            lease: Some(lease("w", 30_000)),
            steps: vec![],
        }])
        .await
        .unwrap();
        let mut retry = step("call", 0, StepStatus::Waiting, Value::Null);
        retry.output = None;
        retry.error = Some("HTTP 503".into());
        retry.not_before = Some(now_ms() + 10_000);
        s.apply(&[progress("r", "w", vec![retry.clone()], RunState::Running)]).await.unwrap();
        let mut ok = retry.clone();
        ok.status = StepStatus::Done;
        ok.attempts = 2;
        ok.input = None;
        ok.error = None;
        ok.output = Some(json!({"fine": true}));
        s.apply(&[progress("r", "w", vec![ok], RunState::Running)]).await.unwrap();
        let steps = s.run_steps("r").await.unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].attempts, 2);
        assert_eq!(steps[0].input, Some(json!({"k": "call"})), "kept from the first attempt");
        assert_eq!(steps[0].error, None);

        // Two writes of one key in one transaction (a flush and the finish batched together).
        let mut first = step("twice", 1, StepStatus::Waiting, Value::Null);
        first.output = None;
        let mut last = step("twice", 1, StepStatus::Done, json!("final"));
        last.input = None;
        let writes = [
            progress("r", "w", vec![first], RunState::Running),
            progress("r", "w", vec![last], RunState::Succeeded),
        ];
        assert_eq!(s.apply(&writes).await.unwrap(), [true, true]);
        let twice = s.run_steps("r").await.unwrap().into_iter().find(|e| e.key == "twice").unwrap();
        assert_eq!((twice.status, twice.output), (StepStatus::Done, Some(json!("final"))));
        assert_eq!(twice.input, Some(json!({"k": "twice"})));

        assert!(s.claim_cron_tick("p", "wf", 1_000, "a").await.unwrap());
        assert!(!s.claim_cron_tick("p", "wf", 1_000, "b").await.unwrap());
        assert!(s.claim_cron_tick("p", "wf", 2_000, "b").await.unwrap());

        // Polls: the first claim has no state; a second one within the interval gets nothing;
        // the state is written with the runs; once due again, it comes back.
        assert_eq!(
            s.claim_poll("p", "wf", "ann", &SettingsKey::Integration, 60_000).await.unwrap(),
            Some(None)
        );
        assert_eq!(
            s.claim_poll("p", "wf", "ann", &SettingsKey::Integration, 60_000).await.unwrap(),
            None,
            "not due"
        );
        let seen = Write::TriggerState {
            project_id: "p".into(),
            workflow_id: "wf".into(),
            user_id: "ann".into(),
            configuration: SettingsKey::Integration,
            state: json!({ "seen": ["1"] }),
        };
        assert_eq!(s.apply(&[seen]).await.unwrap(), [true]);
        assert_eq!(
            s.claim_poll("p", "wf", "ann", &SettingsKey::Integration, -1).await.unwrap(),
            None,
            "still not due"
        );
        assert_eq!(
            s.claim_poll("p", "wf", "bob", &SettingsKey::Integration, -1).await.unwrap(),
            Some(None),
            "per user"
        );
        assert_eq!(
            s.claim_poll("p", "wf", "bob", &SettingsKey::Integration, 60_000).await.unwrap(),
            Some(None),
            "due at once after a negative interval"
        );
        let k1 = SettingsKey::Configuration("k1".into());
        assert_eq!(
            s.claim_poll("p", "wf", "ann", &k1, 60_000).await.unwrap(),
            Some(None),
            "per configuration"
        );
        assert_eq!(s.claim_poll("p", "wf", "ann", &k1, 60_000).await.unwrap(), None);
    }
}
