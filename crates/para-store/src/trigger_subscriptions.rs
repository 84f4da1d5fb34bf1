//! The Triggers API (issue 21): a company subscribes one of its users to a catalog trigger
//! type, and the events of that type are delivered to the company's webhook.
//!
//! - A [`TriggerSubscription`] belongs to one user: every function that reads or changes one
//!   takes the user's id, so another user's id finds nothing.
//! - [`crate::runs::Write::Delivery`] records a delivery (the outbox row) in the transaction
//!   that routes the event or records the poll that found it, so an event is recorded for
//!   delivery exactly when it is marked routed; a second routing of the same source records
//!   nothing.
//! - [`Store::claim_trigger_deliveries`] leases due deliveries of ACTIVE subscriptions to one
//!   sender (PostgreSQL: `FOR UPDATE SKIP LOCKED`); [`Store::finish_trigger_delivery`] records
//!   an attempt's outcome under the lease. The last failed attempt marks the subscription
//!   `ERRORED` in the same transaction; its other deliveries wait until it is updated (which
//!   makes it ACTIVE again).

use serde_json::Value;
use sqlx::Row;

use crate::{Backend, Result, Store, json, now_ms};

/// Whether a subscription receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// Receiving events.
    Active,
    /// Deliveries failed repeatedly: nothing is sent until the subscription is updated.
    Errored,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "ACTIVE",
            SubscriptionStatus::Errored => "ERRORED",
        }
    }

    fn read(text: &str) -> Result<SubscriptionStatus> {
        match text {
            "ACTIVE" => Ok(SubscriptionStatus::Active),
            "ERRORED" => Ok(SubscriptionStatus::Errored),
            other => Err(crate::StoreError::Status(crate::UnknownStatus {
                kind: "trigger subscription status",
                value: other.to_string(),
                known: &["ACTIVE", "ERRORED"],
            })),
        }
    }
}

/// A user's subscription to a trigger type.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerSubscription {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub integration: String,
    /// The catalog trigger's intent.
    pub trigger_type: String,
    /// A JSON object: the trigger's parameters.
    pub parameters: Value,
    /// The account its events belong to.
    pub credential_id: String,
    /// `{url, headers, metadata}`; `None`: the project's webhook URL.
    pub webhook_override: Option<Value>,
    pub status: SubscriptionStatus,
    /// Delivery attempts failed in a row.
    pub failures: i64,
    pub error: Option<String>,
    /// When an event was last recorded for it (Unix ms).
    pub last_event_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const SUBSCRIPTION_COLUMNS: &str = "id, project_id, user_id, integration, trigger_type, parameters, credential_id, webhook_override, status, failures, error, last_event_at, created_at, updated_at";

fn subscription_row(r: &sqlx::any::AnyRow) -> Result<TriggerSubscription> {
    Ok(TriggerSubscription {
        id: r.get(0),
        project_id: r.get(1),
        user_id: r.get(2),
        integration: r.get(3),
        trigger_type: r.get(4),
        parameters: json(&r.get::<String, _>(5))?,
        credential_id: r.get(6),
        webhook_override: r.get::<Option<String>, _>(7).map(|t| json(&t)).transpose()?,
        status: SubscriptionStatus::read(&r.get::<String, _>(8))?,
        failures: r.get(9),
        error: r.get(10),
        last_event_at: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
    })
}

/// A delivery to record ([`crate::runs::Write::Delivery`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The payload's `eventId` (a UUID the caller made, since the body names it).
    pub id: String,
    pub project_id: String,
    pub subscription_id: String,
    /// What it came from (`webhook:<event id>`, `poll:<item id>`).
    pub source: String,
    /// The exact JSON text to POST.
    pub body: String,
}

/// A recorded delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub project_id: String,
    pub subscription_id: String,
    pub source: String,
    pub body: String,
    /// Attempts made so far.
    pub attempts: i64,
    pub next_attempt_at: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// The HTTP status of the last attempt, when one answered.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

const DELIVERY_COLUMNS: &str = "id, project_id, subscription_id, source, body, attempts, next_attempt_at, status, last_status, last_error, created_at, finished_at";

fn delivery_row(r: &sqlx::any::AnyRow) -> Delivery {
    Delivery {
        id: r.get(0),
        project_id: r.get(1),
        subscription_id: r.get(2),
        source: r.get(3),
        body: r.get(4),
        attempts: r.get(5),
        next_attempt_at: r.get(6),
        status: r.get(7),
        last_status: r.get(8),
        last_error: r.get(9),
        created_at: r.get(10),
        finished_at: r.get(11),
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// A 2xx answer.
    Delivered { status: u16 },
    /// Failed; tried again at `at` (Unix ms).
    Retry { at: i64, status: Option<u16>, error: String },
    /// Failed for the last time: the delivery is given up and the subscription is marked
    /// `ERRORED` with `error`.
    Failed { status: Option<u16>, error: String },
}

impl DeliveryOutcome {
    /// What an outbox row stores of it (the Triggers API's and the alerts'): its status
    /// (`delivered`, `pending`, `failed`), when it is tried next, the answer's status and the
    /// error.
    pub(crate) fn columns(&self) -> (&'static str, Option<i64>, Option<u16>, Option<&str>) {
        match self {
            DeliveryOutcome::Delivered { status } => ("delivered", None, Some(*status), None),
            DeliveryOutcome::Retry { at, status, error } => {
                ("pending", Some(*at), *status, Some(error.as_str()))
            }
            DeliveryOutcome::Failed { status, error } => {
                ("failed", None, *status, Some(error.as_str()))
            }
        }
    }
}

impl Store {
    /// Records a new subscription.
    pub async fn insert_trigger_subscription(&self, s: &TriggerSubscription) -> Result<()> {
        sqlx::query(
            "INSERT INTO trigger_subscriptions (id, project_id, user_id, integration, trigger_type, parameters, credential_id, webhook_override, status, failures, error, last_event_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&s.id)
        .bind(&s.project_id)
        .bind(&s.user_id)
        .bind(&s.integration)
        .bind(&s.trigger_type)
        .bind(s.parameters.to_string())
        .bind(&s.credential_id)
        .bind(s.webhook_override.as_ref().map(Value::to_string))
        .bind(s.status.as_str())
        .bind(s.failures)
        .bind(s.error.as_deref())
        .bind(s.last_event_at)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One of the user's subscriptions.
    pub async fn trigger_subscription(
        &self,
        project_id: &str,
        user_id: &str,
        id: &str,
    ) -> Result<Option<TriggerSubscription>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM trigger_subscriptions WHERE project_id = $1 AND user_id = $2 AND id = $3"
        );
        // Built from constants only; every value is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(user_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(subscription_row).transpose()
    }

    /// The user's subscriptions, oldest first; of one integration when `integration` is set.
    pub async fn trigger_subscriptions(
        &self,
        project_id: &str,
        user_id: &str,
        integration: Option<&str>,
    ) -> Result<Vec<TriggerSubscription>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM trigger_subscriptions
             WHERE project_id = $1 AND user_id = $2 ORDER BY created_at, id"
        );
        // Built from constants only; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        let all = rows.iter().map(subscription_row).collect::<Result<Vec<_>>>()?;
        Ok(all.into_iter().filter(|s| integration.is_none_or(|i| s.integration == i)).collect())
    }

    /// A subscription's webhook override, by the subscription's id alone (the sender's
    /// look-up: a delivery names its subscription, not its user). `None`: no such
    /// subscription; `Some(None)`: it has no override.
    pub async fn trigger_subscription_override(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Option<Option<Value>>> {
        let row = sqlx::query(
            "SELECT webhook_override FROM trigger_subscriptions WHERE project_id = $1 AND id = $2",
        )
        .bind(project_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.get::<Option<String>, _>(0).map(|t| json(&t)).transpose()).transpose()
    }

    /// Every ACTIVE subscription of the project to the integration's trigger types (the
    /// polling loop's work).
    pub async fn active_trigger_subscriptions(
        &self,
        project_id: &str,
        integration: &str,
    ) -> Result<Vec<TriggerSubscription>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM trigger_subscriptions
             WHERE project_id = $1 AND integration = $2 AND status = 'ACTIVE'
             ORDER BY created_at, id"
        );
        // Built from constants only; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(integration)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(subscription_row).collect()
    }

    /// Changes a subscription's parameters and webhook override, and makes it ACTIVE again
    /// (its failures forgotten). `None` when the user has no such subscription.
    pub async fn update_trigger_subscription(
        &self,
        project_id: &str,
        user_id: &str,
        id: &str,
        parameters: &Value,
        webhook_override: Option<&Value>,
    ) -> Result<Option<TriggerSubscription>> {
        let sql = format!(
            "UPDATE trigger_subscriptions SET parameters = $4, webhook_override = $5, status = 'ACTIVE',
                    failures = 0, error = NULL, updated_at = $6
             WHERE project_id = $1 AND user_id = $2 AND id = $3
             RETURNING {SUBSCRIPTION_COLUMNS}"
        );
        // Built from constants only; every value is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(user_id)
            .bind(id)
            .bind(parameters.to_string())
            .bind(webhook_override.map(Value::to_string))
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(subscription_row).transpose()
    }

    /// Removes a subscription with its undelivered deliveries and its polling state; false
    /// when the user has no such subscription.
    pub async fn delete_trigger_subscription(
        &self,
        project_id: &str,
        user_id: &str,
        id: &str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query(
            "DELETE FROM trigger_subscriptions WHERE project_id = $1 AND user_id = $2 AND id = $3",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if gone {
            sqlx::query(
                "DELETE FROM trigger_deliveries WHERE subscription_id = $1 AND status = 'pending'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM trigger_state WHERE project_id = $1 AND workflow_id = $2 AND user_id = $3",
            )
            .bind(project_id)
            .bind(subscription_state_key(id))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    /// Leases up to `limit` due deliveries of the project's ACTIVE subscriptions to `owner`
    /// for `lease_ms`, the longest due first.
    pub async fn claim_trigger_deliveries(
        &self,
        project_id: &str,
        owner: &str,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<Delivery>> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE trigger_deliveries SET lease_owner = $1, lease_until = $2
             WHERE id IN (
               SELECT d.id FROM trigger_deliveries d
               JOIN trigger_subscriptions s ON s.id = d.subscription_id
               WHERE d.project_id = $3 AND d.status = 'pending' AND d.next_attempt_at <= $4
                 AND (d.lease_until IS NULL OR d.lease_until < $4) AND s.status = 'ACTIVE'
               ORDER BY d.next_attempt_at LIMIT $5{lock})
             RETURNING {DELIVERY_COLUMNS}"
        );
        // Built from constants only; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now + lease_ms)
            .bind(project_id)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<Delivery> = rows.iter().map(delivery_row).collect();
        out.sort_by_key(|d| d.next_attempt_at);
        Ok(out)
    }

    /// When the next delivery of the project is due (Unix ms), if any is pending for an
    /// ACTIVE subscription.
    pub async fn next_trigger_delivery_at(&self, project_id: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(d.next_attempt_at) FROM trigger_deliveries d
             JOIN trigger_subscriptions s ON s.id = d.subscription_id
             WHERE d.project_id = $1 AND d.status = 'pending' AND s.status = 'ACTIVE'",
        )
        .bind(project_id)
        .fetch_one(&self.reader)
        .await?;
        Ok(row.get::<Option<i64>, _>(0))
    }

    /// Records one attempt's outcome, if `owner` still holds the delivery's lease (false
    /// otherwise: nothing is written). The subscription's failures in a row are counted; a
    /// [`DeliveryOutcome::Failed`] marks it `ERRORED` in the same transaction.
    pub async fn finish_trigger_delivery(
        &self,
        owner: &str,
        id: &str,
        outcome: &DeliveryOutcome,
    ) -> Result<bool> {
        let now = now_ms();
        let (status, next, code, error) = outcome.columns();
        let finished = (status != "pending").then_some(now);
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE trigger_deliveries SET status = $3, attempts = attempts + 1,
                    next_attempt_at = COALESCE($4, next_attempt_at), last_status = $5, last_error = $6,
                    finished_at = $7, lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_owner = $2 AND status = 'pending'
             RETURNING subscription_id",
        )
        .bind(id)
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
        let subscription: String = row.get(0);
        let query = match outcome {
            DeliveryOutcome::Delivered { .. } => {
                sqlx::query("UPDATE trigger_subscriptions SET failures = 0 WHERE id = $1")
                    .bind(&subscription)
            }
            DeliveryOutcome::Retry { .. } => sqlx::query(
                "UPDATE trigger_subscriptions SET failures = failures + 1 WHERE id = $1",
            )
            .bind(&subscription),
            DeliveryOutcome::Failed { .. } => sqlx::query(
                "UPDATE trigger_subscriptions SET failures = failures + 1, status = 'ERRORED', error = $2, updated_at = $3 WHERE id = $1",
            )
            .bind(&subscription)
            .bind(error.unwrap_or(""))
            .bind(now),
        };
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A subscription's deliveries, oldest first (at most `limit`).
    pub async fn trigger_deliveries(
        &self,
        project_id: &str,
        subscription_id: &str,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM trigger_deliveries
             WHERE project_id = $1 AND subscription_id = $2 ORDER BY created_at, id LIMIT $3"
        );
        // Built from constants only; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(subscription_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(delivery_row).collect())
    }
}

/// The `trigger_state.workflow_id` of a polling subscription's state (polled by the same code
/// as workflows, keyed apart from them).
pub fn subscription_state_key(id: &str) -> String {
    format!("subscription:{id}")
}
