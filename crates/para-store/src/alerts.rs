//! Alerts to the company (issue 22, Paragon's event destinations): events about the project
//! — a workflow run failed, a user's credential became invalid, an account was connected or
//! disconnected — POSTed, signed, to the company's destinations.
//!
//! - An event ([`NewAlert`]) is recorded once, with the exact JSON text every destination
//!   receives, in the transaction of what caused it where that is a store write: a run's final
//!   failed write ([`crate::runs::Write::Alert`] in the same [`Store::apply`]), a credential's
//!   change to INVALID ([`Store::invalidate_credential`], and [`crate::NewCredential`]'s
//!   `invalid_alert`). A crash loses none, and a retry of the cause records none again
//!   (`source` is unique per project; a credential already INVALID records nothing).
//! - Recording an event writes one delivery (the outbox row) per destination of the project
//!   that takes its type, in the same transaction.
//! - [`Store::claim_alert_deliveries`] leases due deliveries to one sender (PostgreSQL: `FOR
//!   UPDATE SKIP LOCKED`); [`Store::finish_alert_delivery`] records an attempt's outcome under
//!   the lease, and the attempt itself (`alert_attempts`).
//! - [`Store::prune_alerts`] forgets finished deliveries and their events after a while.

use serde_json::{Value, json};
use sqlx::Row;

use crate::trigger_subscriptions::DeliveryOutcome;
use crate::{Backend, Result, Store, now_ms};

/// A workflow run failed.
pub const RUN_FAILED: &str = "workflow.run.failed";
/// A user's credential became INVALID: the user has to reconnect the account.
pub const CREDENTIAL_INVALID: &str = "credential.invalid";
/// A user connected an account of an integration.
pub const CONNECTED: &str = "integration.connected";
/// A user disconnected an account (or every account) of an integration.
pub const DISCONNECTED: &str = "integration.disconnected";
/// Every event type, in the order the documentation lists them.
pub const TYPES: [&str; 4] = [RUN_FAILED, CREDENTIAL_INVALID, CONNECTED, DISCONNECTED];

/// The id of the deployment's own destination (`PARA_ALERTS_WEBHOOK_URL`), whose secret is
/// the environment's and is not stored.
pub const ENV_DESTINATION: &str = "env";

/// An event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    /// Also the body's `id`, which receivers dedupe by.
    pub id: String,
    pub project_id: String,
    pub kind: String,
    /// What caused it: a second event of the same source is not recorded.
    pub source: String,
    /// The exact JSON text POSTed and signed.
    pub body: String,
}

impl NewAlert {
    /// An event of type `kind` with `data`, created now: the body is
    /// `{"id", "type", "createdAt" (RFC 3339, ms), "projectId", "data"}`. `source` names a
    /// cause that may be recorded twice (a retried write); `None`: the event is its own.
    pub fn new(project_id: &str, kind: &str, source: Option<String>, data: Value) -> NewAlert {
        let id = uuid::Uuid::new_v4().to_string();
        let created = chrono::DateTime::from_timestamp_millis(now_ms())
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let body = json!({
            "id": id,
            "type": kind,
            "createdAt": created,
            "projectId": project_id,
            "data": data,
        });
        NewAlert {
            source: source.unwrap_or_else(|| format!("event:{id}")),
            id,
            project_id: project_id.to_string(),
            kind: kind.to_string(),
            body: body.to_string(),
        }
    }
}

/// Where events are sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// [`ENV_DESTINATION`] or a UUID (the dashboard's).
    pub id: String,
    pub project_id: String,
    pub url: String,
    /// The event types it receives; empty: all.
    pub events: Vec<String>,
    /// The signing secret, sealed by the caller; `None` for [`ENV_DESTINATION`].
    pub secret: Option<String>,
    pub created_at: i64,
}

impl Destination {
    /// Whether it receives events of type `kind`.
    pub fn takes(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == kind)
    }
}

/// A delivery leased to a sender, with what it sends and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedAlert {
    pub event_id: String,
    pub destination_id: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub body: String,
    pub url: String,
    /// Sealed; `None` for [`ENV_DESTINATION`].
    pub secret: Option<String>,
}

/// A delivery of one event to one destination, as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDelivery {
    pub event_id: String,
    pub kind: String,
    pub destination_id: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertAttempt {
    pub attempt: i64,
    pub at: i64,
    /// The answer's status; `None`: no answer (refused, timed out, not sent).
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// An event's types stored as text: comma-separated, `''` for all.
fn events_text(events: &[String]) -> String {
    events.join(",")
}

fn events_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_string).collect()
}

const DESTINATION_COLUMNS: &str = "id, project_id, url, events, secret, created_at";

fn destination_row(r: &sqlx::any::AnyRow) -> Destination {
    Destination {
        id: r.get(0),
        project_id: r.get(1),
        url: r.get(2),
        events: events_list(&r.get::<String, _>(3)),
        secret: r.get(4),
        created_at: r.get(5),
    }
}

/// Records `alert` and its deliveries inside `tx`; false when its source was recorded before
/// (nothing is written).
pub(crate) async fn record(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    alert: &NewAlert,
    now: i64,
) -> Result<bool> {
    let added = sqlx::query(
        "INSERT INTO alert_events (id, project_id, kind, source, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (project_id, source) DO NOTHING",
    )
    .bind(&alert.id)
    .bind(&alert.project_id)
    .bind(&alert.kind)
    .bind(&alert.source)
    .bind(&alert.body)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if added {
        // `events` is '' (all) or a comma-separated list; the types hold no LIKE wildcard
        // but `_`, which is escaped.
        let pattern = format!("%,{},%", alert.kind.replace('_', "\\_"));
        sqlx::query(
            "INSERT INTO alert_deliveries (event_id, destination_id, project_id, status, attempts, next_attempt_at, created_at)
             SELECT $1, d.id, d.project_id, 'pending', 0, $3, $3 FROM alert_destinations d
             WHERE d.project_id = $2 AND (d.events = '' OR (',' || d.events || ',') LIKE $4 ESCAPE '\\')",
        )
        .bind(&alert.id)
        .bind(&alert.project_id)
        .bind(now)
        .bind(pattern)
        .execute(&mut **tx)
        .await?;
    }
    Ok(added)
}

impl Store {
    /// Records an event (and its deliveries) on its own; false when its source was recorded
    /// before.
    pub async fn record_alert(&self, alert: &NewAlert) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let added = record(&mut tx, alert, now_ms()).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Sets the deployment's destination ([`ENV_DESTINATION`]) to `url` and `events`, or
    /// removes it (with its undelivered deliveries) when `url` is `None`. Each process does at
    /// start: the last one started wins.
    pub async fn set_env_alert_destination(
        &self,
        project_id: &str,
        url: Option<&str>,
        events: &[String],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        match url {
            Some(url) => {
                sqlx::query(
                    "INSERT INTO alert_destinations (id, project_id, url, events, secret, created_at)
                     VALUES ($1, $2, $3, $4, NULL, $5)
                     ON CONFLICT (id) DO UPDATE SET url = excluded.url, events = excluded.events",
                )
                .bind(env_id(project_id))
                .bind(project_id)
                .bind(url)
                .bind(events_text(events))
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                delete_destination(&mut tx, project_id, &env_id(project_id)).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds a destination (the dashboard's); its id and sealed secret are the caller's.
    pub async fn insert_alert_destination(&self, d: &Destination) -> Result<()> {
        sqlx::query(
            "INSERT INTO alert_destinations (id, project_id, url, events, secret, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&d.id)
        .bind(&d.project_id)
        .bind(&d.url)
        .bind(events_text(&d.events))
        .bind(d.secret.as_deref())
        .bind(d.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The project's destinations, the deployment's first, then oldest first.
    pub async fn alert_destinations(&self, project_id: &str) -> Result<Vec<Destination>> {
        let sql = format!(
            "SELECT {DESTINATION_COLUMNS} FROM alert_destinations WHERE project_id = $1
             ORDER BY CASE WHEN secret IS NULL THEN 0 ELSE 1 END, created_at, id"
        );
        // Built from constants only; every value is bound.
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(project_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(destination_row).collect())
    }

    /// Removes one of the dashboard's destinations with its undelivered deliveries; false
    /// when there is none (the deployment's is removed by unsetting its variable).
    pub async fn delete_alert_destination(&self, project_id: &str, id: &str) -> Result<bool> {
        if id == env_id(project_id) {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
        let gone = delete_destination(&mut tx, project_id, id).await?;
        tx.commit().await?;
        Ok(gone)
    }

    /// Leases up to `limit` due deliveries of the project to `owner` for `lease_ms`, the
    /// longest due first.
    pub async fn claim_alert_deliveries(
        &self,
        project_id: &str,
        owner: &str,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedAlert>> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE alert_deliveries SET lease_owner = $1, lease_until = $2
             WHERE (event_id, destination_id) IN (
               SELECT event_id, destination_id FROM alert_deliveries
               WHERE project_id = $3 AND status = 'pending' AND next_attempt_at <= $4
                 AND (lease_until IS NULL OR lease_until < $4)
               ORDER BY next_attempt_at LIMIT $5{lock})
             RETURNING event_id, destination_id, attempts, next_attempt_at"
        );
        // Built from constants only; every value is bound.
        let mut rows: Vec<(String, String, i64, i64)> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now + lease_ms)
            .bind(project_id)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        rows.sort_by_key(|r| r.3);
        let mut out = Vec::with_capacity(rows.len());
        for (event_id, destination_id, attempts, _) in rows {
            let found = sqlx::query(
                "SELECT e.body, d.url, d.secret FROM alert_events e, alert_destinations d
                 WHERE e.id = $1 AND d.id = $2",
            )
            .bind(&event_id)
            .bind(&destination_id)
            .fetch_optional(&self.pool)
            .await?;
            // Both rows go only with the delivery (pruning, a destination's deletion).
            if let Some(r) = found {
                out.push(ClaimedAlert {
                    event_id,
                    destination_id,
                    attempts,
                    body: r.get(0),
                    url: r.get(1),
                    secret: r.get(2),
                });
            }
        }
        Ok(out)
    }

    /// Records one attempt's outcome and the attempt, if `owner` still holds the delivery's
    /// lease (false otherwise: nothing is written).
    pub async fn finish_alert_delivery(
        &self,
        owner: &str,
        event_id: &str,
        destination_id: &str,
        outcome: &DeliveryOutcome,
    ) -> Result<bool> {
        let now = now_ms();
        let (status, next, code, error) = outcome.columns();
        let finished = (status != "pending").then_some(now);
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE alert_deliveries SET status = $4, attempts = attempts + 1,
                    next_attempt_at = COALESCE($5, next_attempt_at), last_status = $6, last_error = $7,
                    finished_at = $8, lease_owner = NULL, lease_until = NULL
             WHERE event_id = $1 AND destination_id = $2 AND lease_owner = $3 AND status = 'pending'
             RETURNING attempts",
        )
        .bind(event_id)
        .bind(destination_id)
        .bind(owner)
        .bind(status)
        .bind(next)
        .bind(code.map(i64::from))
        .bind(error)
        .bind(finished)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let attempt: i64 = row.get(0);
        sqlx::query(
            "INSERT INTO alert_attempts (event_id, destination_id, attempt, at, status, error)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event_id)
        .bind(destination_id)
        .bind(attempt)
        .bind(now)
        .bind(code.map(i64::from))
        .bind(error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The project's latest deliveries, newest first (at most `limit`); of one destination
    /// when `destination_id` is set.
    pub async fn alert_deliveries(
        &self,
        project_id: &str,
        destination_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlertDelivery>> {
        let rows = sqlx::query(
            "SELECT a.event_id, e.kind, a.destination_id, a.status, a.attempts, a.next_attempt_at,
                    a.last_status, a.last_error, a.created_at, a.finished_at
             FROM alert_deliveries a JOIN alert_events e ON e.id = a.event_id
             WHERE a.project_id = $1 AND ($2 = '' OR a.destination_id = $2)
             ORDER BY a.created_at DESC, a.event_id DESC, a.destination_id DESC LIMIT $3",
        )
        .bind(project_id)
        .bind(destination_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AlertDelivery {
                event_id: r.get(0),
                kind: r.get(1),
                destination_id: r.get(2),
                status: r.get(3),
                attempts: r.get(4),
                next_attempt_at: r.get(5),
                last_status: r.get::<Option<i64>, _>(6).map(|s| s as u16),
                last_error: r.get(7),
                created_at: r.get(8),
                finished_at: r.get(9),
            })
            .collect())
    }

    /// The attempts of one delivery, in order.
    pub async fn alert_attempts(
        &self,
        event_id: &str,
        destination_id: &str,
    ) -> Result<Vec<AlertAttempt>> {
        let rows = sqlx::query(
            "SELECT attempt, at, status, error FROM alert_attempts
             WHERE event_id = $1 AND destination_id = $2 ORDER BY attempt",
        )
        .bind(event_id)
        .bind(destination_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AlertAttempt {
                attempt: r.get(0),
                at: r.get(1),
                status: r.get::<Option<i64>, _>(2).map(|s| s as u16),
                error: r.get(3),
            })
            .collect())
    }

    /// The project's recorded events as `(id, type, body)`, oldest first (at most `limit`).
    pub async fn alert_events(
        &self,
        project_id: &str,
        limit: i64,
    ) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(
            "SELECT id, kind, body FROM alert_events WHERE project_id = $1
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(project_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// Forgets deliveries delivered before `delivered_before` and failed before
    /// `failed_before` (Unix ms), with their attempts, and then events older than the
    /// older of the two that have no delivery left. How many deliveries went.
    pub async fn prune_alerts(
        &self,
        project_id: &str,
        delivered_before: i64,
        failed_before: i64,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM alert_attempts WHERE EXISTS (SELECT 1 FROM alert_deliveries a
               WHERE a.event_id = alert_attempts.event_id AND a.destination_id = alert_attempts.destination_id
                 AND a.project_id = $1 AND ((a.status = 'delivered' AND a.finished_at < $2)
                   OR (a.status = 'failed' AND a.finished_at < $3)))",
        )
        .bind(project_id)
        .bind(delivered_before)
        .bind(failed_before)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query(
            "DELETE FROM alert_deliveries WHERE project_id = $1
               AND ((status = 'delivered' AND finished_at < $2) OR (status = 'failed' AND finished_at < $3))",
        )
        .bind(project_id)
        .bind(delivered_before)
        .bind(failed_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM alert_events WHERE project_id = $1 AND created_at < $2
               AND NOT EXISTS (SELECT 1 FROM alert_deliveries a WHERE a.event_id = alert_events.id)",
        )
        .bind(project_id)
        .bind(delivered_before.min(failed_before))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone)
    }
}

/// The row id of a project's deployment destination: [`ENV_DESTINATION`] for the project
/// `default`, else with the project in it (ids are unique across the projects a database
/// holds).
pub fn env_id(project_id: &str) -> String {
    if project_id == "default" {
        ENV_DESTINATION.to_string()
    } else {
        format!("{ENV_DESTINATION}:{project_id}")
    }
}

/// Deletes a destination with its undelivered deliveries (and their attempts); whether it
/// existed.
async fn delete_destination(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    project_id: &str,
    id: &str,
) -> Result<bool> {
    let gone = sqlx::query("DELETE FROM alert_destinations WHERE project_id = $1 AND id = $2")
        .bind(project_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected()
        == 1;
    sqlx::query(
        "DELETE FROM alert_attempts WHERE destination_id = $1 AND event_id IN
           (SELECT event_id FROM alert_deliveries WHERE destination_id = $1 AND status = 'pending')",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM alert_deliveries WHERE destination_id = $1 AND status = 'pending'")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_body_has_the_stable_shape() {
        let a = NewAlert::new("p", CONNECTED, None, json!({"userId": "u"}));
        let body: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["id"], a.id.as_str());
        assert_eq!(body["type"], CONNECTED);
        assert_eq!(body["projectId"], "p");
        assert_eq!(body["data"]["userId"], "u");
        let created = body["createdAt"].as_str().unwrap();
        assert!(created.ends_with('Z') && created.len() == 24, "{created}");
        assert_eq!(a.source, format!("event:{}", a.id));
    }

    #[test]
    fn destinations_take_their_types() {
        let mut d = Destination {
            id: "x".into(),
            project_id: "p".into(),
            url: "http://h".into(),
            events: vec![],
            secret: None,
            created_at: 0,
        };
        assert!(d.takes(RUN_FAILED));
        d.events = events_list(" credential.invalid, ,integration.connected");
        assert_eq!(d.events, [CREDENTIAL_INVALID, CONNECTED]);
        assert!(d.takes(CONNECTED) && !d.takes(RUN_FAILED));
    }
}
