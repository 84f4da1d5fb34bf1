//! Webhook events and per-account webhook URLs (issue 21).
//!
//! - [`Store::insert_webhook_events`] records a delivery's events before the provider is
//!   answered; a second delivery of an event (same integration, URL and key) records nothing.
//! - [`Store::claim_webhook_events`] leases pending events to a dispatcher (PostgreSQL: `FOR
//!   UPDATE SKIP LOCKED`); an expired lease (a crashed process) makes them claimable again.
//! - [`crate::runs::Write::EventRouted`], applied with the runs the event starts, marks it
//!   routed under its lease: the runs and the mark commit together or not at all.
//! - [`Store::insert_subscription`] and the functions after it keep the webhooks para registers
//!   with providers ([`Subscription`]): one unfinished registration per key, each acted on under
//!   a lease, retried or renewed when due.

use serde_json::Value;
use sqlx::Row;

use crate::{Backend, Result, Store, json, now_ms};

/// An event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhookEvent {
    pub project_id: String,
    pub integration: String,
    /// `""`: the integration's app-level URL; otherwise the hook's id.
    pub hook: String,
    /// `id:<provider id>` or `sha256:<hex>`.
    pub dedupe_key: String,
    pub event_type: String,
    pub account: Option<String>,
    pub body: Value,
    /// The request's headers (those that carry credentials left out).
    pub headers: Value,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub id: String,
    pub project_id: String,
    pub integration: String,
    pub hook: String,
    pub dedupe_key: String,
    pub event_type: String,
    pub account: Option<String>,
    pub body: Value,
    pub headers: Value,
    pub received_at: i64,
    /// `pending` or `routed`.
    pub status: String,
    pub runs: i64,
    pub note: Option<String>,
}

const EVENT_COLUMNS: &str = "id, project_id, integration, hook, dedupe_key, event_type, account, body, headers, received_at, status, runs, note";

fn event_row(r: &sqlx::any::AnyRow) -> Result<WebhookEvent> {
    Ok(WebhookEvent {
        id: r.get(0),
        project_id: r.get(1),
        integration: r.get(2),
        hook: r.get(3),
        dedupe_key: r.get(4),
        event_type: r.get(5),
        account: r.get(6),
        body: json(&r.get::<String, _>(7))?,
        headers: json(&r.get::<String, _>(8))?,
        received_at: r.get(9),
        status: r.get(10),
        runs: r.get(11),
        note: r.get(12),
    })
}

/// A per-account webhook URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    /// The URL's secret part: `/webhooks/{project}/{integration}/{id}`.
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub integration: String,
    pub credential_id: String,
    /// `""`: every workflow of the account.
    pub workflow_id: String,
    /// `""`: the integration-level settings.
    pub configuration_id: String,
    /// The URL's signing secret, sealed.
    pub secret: Option<String>,
    pub remote_id: Option<String>,
    /// `pending`, `active`, `failed` or `removed`.
    pub status: String,
    pub error: Option<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const HOOK_COLUMNS: &str = "id, project_id, user_id, integration, credential_id, workflow_id, configuration_id, secret, remote_id, status, error, expires_at, created_at, updated_at";

fn hook_row(r: &sqlx::any::AnyRow) -> Hook {
    Hook {
        id: r.get(0),
        project_id: r.get(1),
        user_id: r.get(2),
        integration: r.get(3),
        credential_id: r.get(4),
        workflow_id: r.get(5),
        configuration_id: r.get(6),
        secret: r.get(7),
        remote_id: r.get(8),
        status: r.get(9),
        error: r.get(10),
        expires_at: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
    }
}

impl Store {
    /// Records events in one transaction; for each, true if it is new, false if that event was
    /// recorded before (a redelivery).
    pub async fn insert_webhook_events(&self, events: &[NewWebhookEvent]) -> Result<Vec<bool>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let added = sqlx::query(
                "INSERT INTO webhook_events (id, project_id, integration, hook, dedupe_key, event_type, account, body, headers, received_at, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending')
                 ON CONFLICT (project_id, integration, hook, dedupe_key) DO NOTHING",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&e.project_id)
            .bind(&e.integration)
            .bind(&e.hook)
            .bind(&e.dedupe_key)
            .bind(&e.event_type)
            .bind(e.account.as_deref())
            .bind(e.body.to_string())
            .bind(e.headers.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            out.push(added == 1);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Leases up to `limit` pending events of the project to `owner` for `lease_ms`, oldest
    /// first.
    pub async fn claim_webhook_events(
        &self,
        project_id: &str,
        owner: &str,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<WebhookEvent>> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE webhook_events SET lease_owner = $1, lease_until = $2
             WHERE id IN (
               SELECT id FROM webhook_events
               WHERE project_id = $3 AND status = 'pending' AND (lease_until IS NULL OR lease_until < $4)
               ORDER BY received_at LIMIT $5{lock})
             RETURNING {EVENT_COLUMNS}"
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
        let mut events: Vec<WebhookEvent> = rows.iter().map(event_row).collect::<Result<_>>()?;
        events.sort_by_key(|e| e.received_at);
        Ok(events)
    }

    /// The project's events, newest first (at most `limit`).
    pub async fn webhook_events(&self, project_id: &str, limit: i64) -> Result<Vec<WebhookEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM webhook_events WHERE project_id = $1 ORDER BY received_at DESC LIMIT $2"
        );
        // Built from constants only; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(event_row).collect()
    }

    /// Deletes the project's routed events received before `before` (Unix ms): their dedupe
    /// keys are forgotten with them, so `before` must lie beyond the providers' retry windows.
    /// Pending events are kept whatever their age. How many were deleted.
    pub async fn prune_webhook_events(&self, project_id: &str, before: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM webhook_events WHERE project_id = $1 AND status = 'routed' AND received_at < $2",
        )
        .bind(project_id)
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records a per-account webhook URL.
    pub async fn insert_hook(&self, hook: &Hook) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_hooks (id, project_id, user_id, integration, credential_id, workflow_id, configuration_id, secret, remote_id, status, error, expires_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&hook.id)
        .bind(&hook.project_id)
        .bind(&hook.user_id)
        .bind(&hook.integration)
        .bind(&hook.credential_id)
        .bind(&hook.workflow_id)
        .bind(&hook.configuration_id)
        .bind(hook.secret.as_deref())
        .bind(hook.remote_id.as_deref())
        .bind(&hook.status)
        .bind(hook.error.as_deref())
        .bind(hook.expires_at)
        .bind(hook.created_at)
        .bind(hook.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A hook of the project by its id (the URL's secret part).
    pub async fn hook(&self, project_id: &str, id: &str) -> Result<Option<Hook>> {
        let sql =
            format!("SELECT {HOOK_COLUMNS} FROM webhook_hooks WHERE project_id = $1 AND id = $2");
        // Built from constants only; every value is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(hook_row))
    }

    /// A user's hooks of an integration.
    pub async fn hooks_of_user(
        &self,
        project_id: &str,
        user_id: &str,
        integration: &str,
    ) -> Result<Vec<Hook>> {
        let sql = format!(
            "SELECT {HOOK_COLUMNS} FROM webhook_hooks WHERE project_id = $1 AND user_id = $2 AND integration = $3 ORDER BY created_at"
        );
        // Built from constants only; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(user_id)
            .bind(integration)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(hook_row).collect())
    }

    /// The user a credential of the project belongs to.
    pub async fn credential_owner(&self, project_id: &str, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT user_id FROM credentials WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The valid credentials of the integration (any user of the project) whose provider id is
    /// `provider_id`, or, for credentials without one, whose account facts (the `account` of
    /// their provider data, looked up at connect) hold it as a value: `(user_id,
    /// credential_id)`.
    pub async fn credentials_with_provider_id(
        &self,
        project_id: &str,
        integration: &str,
        provider_id: &str,
    ) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT user_id, id, provider_id, provider_data FROM credentials
             WHERE project_id = $1 AND integration = $2 AND status = $3
               AND (provider_id = $4 OR (provider_id IS NULL AND provider_data LIKE $5))",
        )
        .bind(project_id)
        .bind(integration)
        .bind(crate::CredentialStatus::Valid.as_str())
        .bind(provider_id)
        .bind(format!("%{}%", like_escape(provider_id)))
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let matches = match r.get::<Option<String>, _>(2) {
                Some(id) => id == provider_id,
                None => {
                    let data = json(&r.get::<String, _>(3))?;
                    data.get("account").and_then(Value::as_object).is_some_and(|facts| {
                        facts.values().any(|v| match v {
                            Value::String(s) => s == provider_id,
                            Value::Number(n) => n.to_string() == provider_id,
                            _ => false,
                        })
                    })
                }
            };
            if matches {
                out.push((r.get(0), r.get(1)));
            }
        }
        Ok(out)
    }

    /// The credentials of the integration (any user of the project) whose provider data holds
    /// `value` at the dotted `path`: the accounts an app-level event belongs to. Returns
    /// `(user_id, credential_id)` of valid credentials.
    pub async fn credentials_with_account(
        &self,
        project_id: &str,
        integration: &str,
        path: &str,
        value: &str,
    ) -> Result<Vec<(String, String)>> {
        // Provider data is JSON text in both backends; the match is made here, not in SQL,
        // so the two stay alike. A cheap text filter first keeps the rows read few.
        let rows = sqlx::query(
            "SELECT user_id, id, provider_data FROM credentials
             WHERE project_id = $1 AND integration = $2 AND status = $3 AND provider_data LIKE $4",
        )
        .bind(project_id)
        .bind(integration)
        .bind(crate::CredentialStatus::Valid.as_str())
        .bind(format!("%{}%", like_escape(value)))
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let data = json(&r.get::<String, _>(2))?;
            let found =
                path.split('.').try_fold(&data, |v, segment| v.get(segment)).map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            if found.as_deref() == Some(value) {
                out.push((r.get(0), r.get(1)));
            }
        }
        Ok(out)
    }
}

/// `value` for a `LIKE` pattern where `%` and `_` match themselves: they are replaced by `_`
/// (any one character), which only widens the pre-filter; the exact match follows.
fn like_escape(value: &str) -> String {
    value.replace(['%', '_', '\\'], "_")
}

/// A hook para registers with the provider through its API for one workflow of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// `status`: `pending` (not registered yet), `active`, `failed` (registering failed; retried),
    /// `removing` (to be removed at the provider; retried) or `removed`.
    pub hook: Hook,
    /// What it was registered for: `{ "trigger": …, "parameters": { name: value } }`.
    pub registration: Value,
    /// Failed attempts in a row (registration, renewal or removal).
    pub attempts: i64,
    /// When the next attempt (retry or renewal) is due; `None`: nothing to do.
    pub next_attempt_at: Option<i64>,
}

/// What an attempt left of a [`Subscription`] ([`Store::finish_subscription`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubscriptionUpdate {
    pub status: String,
    pub remote_id: Option<String>,
    /// The sealed signing secret (kept when `None`).
    pub secret: Option<String>,
    pub error: Option<String>,
    pub expires_at: Option<i64>,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
}

const SUBSCRIPTION_COLUMNS: &str = "id, project_id, user_id, integration, credential_id, workflow_id, configuration_id, secret, remote_id, status, error, expires_at, created_at, updated_at, registration, attempts, next_attempt_at";

fn subscription_row(r: &sqlx::any::AnyRow) -> Result<Subscription> {
    Ok(Subscription {
        hook: hook_row(r),
        registration: json(&r.get::<String, _>(14))?,
        attempts: r.get(15),
        next_attempt_at: r.get(16),
    })
}

/// The unfinished states: a hook in one holds its registration key.
const UNFINISHED: &str = "'pending', 'active', 'failed'";

impl Store {
    /// Records a hook to register (status `pending`), leased to `owner` for `lease_ms`. False
    /// when an unfinished registration with the same `key` exists (another process made it).
    pub async fn insert_subscription(
        &self,
        hook: &Hook,
        key: &str,
        registration: &Value,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool> {
        let added = sqlx::query(
            "INSERT INTO webhook_hooks (id, project_id, user_id, integration, credential_id, workflow_id, configuration_id, secret, remote_id, status, error, expires_at, created_at, updated_at, registration, registration_key, attempts, next_attempt_at, lease_owner, lease_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 'pending', NULL, NULL, $9, $9, $10, $11, 0, $9, $12, $13)
             ON CONFLICT DO NOTHING",
        )
        .bind(&hook.id)
        .bind(&hook.project_id)
        .bind(&hook.user_id)
        .bind(&hook.integration)
        .bind(&hook.credential_id)
        .bind(&hook.workflow_id)
        .bind(&hook.configuration_id)
        .bind(hook.secret.as_deref())
        .bind(hook.created_at)
        .bind(registration.to_string())
        .bind(key)
        .bind(owner)
        .bind(hook.created_at + lease_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    /// A user's registrations of an integration that are not removed, oldest first.
    pub async fn subscriptions_of_user(
        &self,
        project_id: &str,
        user_id: &str,
        integration: &str,
    ) -> Result<Vec<Subscription>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_hooks
             WHERE project_id = $1 AND user_id = $2 AND integration = $3
               AND registration IS NOT NULL AND status <> 'removed' ORDER BY created_at"
        );
        // Built from constants only; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(user_id)
            .bind(integration)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(subscription_row).collect()
    }

    /// A user's registrations of every integration, newest first (at most `limit`), removed
    /// ones included: what the dashboard shows.
    pub async fn subscriptions_of(
        &self,
        project_id: &str,
        user_id: &str,
        limit: i64,
    ) -> Result<Vec<Subscription>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_hooks
             WHERE project_id = $1 AND user_id = $2 AND registration IS NOT NULL
             ORDER BY created_at DESC LIMIT $3"
        );
        // Built from constants only; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(user_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(subscription_row).collect()
    }

    /// Leases a registration to `owner` for `lease_ms` unless another holder's lease runs;
    /// the registration as it is now, or `None` when it is leased elsewhere or gone.
    pub async fn lease_subscription(
        &self,
        project_id: &str,
        id: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<Subscription>> {
        let now = now_ms();
        let sql = format!(
            "UPDATE webhook_hooks SET lease_owner = $1, lease_until = $2
             WHERE project_id = $3 AND id = $4 AND registration IS NOT NULL
               AND (lease_until IS NULL OR lease_until < $5 OR lease_owner = $1)
             RETURNING {SUBSCRIPTION_COLUMNS}"
        );
        // Built from constants only; every value is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now + lease_ms)
            .bind(project_id)
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(subscription_row).transpose()
    }

    /// Leases up to `limit` registrations of the project that are due (a retry, a renewal),
    /// most overdue first (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so processes share them out).
    pub async fn claim_due_subscriptions(
        &self,
        project_id: &str,
        owner: &str,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<Subscription>> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE webhook_hooks SET lease_owner = $1, lease_until = $2
             WHERE id IN (
               SELECT id FROM webhook_hooks
               WHERE project_id = $3 AND registration IS NOT NULL AND status <> 'removed'
                 AND next_attempt_at IS NOT NULL AND next_attempt_at <= $4
                 AND (lease_until IS NULL OR lease_until < $4)
               ORDER BY next_attempt_at LIMIT $5{lock})
             RETURNING {SUBSCRIPTION_COLUMNS}"
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
        let mut due: Vec<Subscription> =
            rows.iter().map(subscription_row).collect::<Result<_>>()?;
        due.sort_by_key(|s| s.next_attempt_at);
        Ok(due)
    }

    /// Writes what an attempt left and gives the lease up; false (nothing written) when
    /// `owner` no longer holds it. A registration moving to `removing` or `removed` frees its
    /// key, so the same workflow can be registered again.
    pub async fn finish_subscription(
        &self,
        project_id: &str,
        id: &str,
        owner: &str,
        update: &SubscriptionUpdate,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE webhook_hooks SET status = $1, remote_id = $2, secret = COALESCE($3, secret),
                    error = $4, expires_at = $5, attempts = $6, next_attempt_at = $7,
                    updated_at = $8, lease_owner = NULL, lease_until = NULL,
                    registration_key = CASE WHEN $1 IN ({UNFINISHED}) THEN registration_key ELSE NULL END
             WHERE project_id = $9 AND id = $10 AND lease_owner = $11"
        );
        // Built from constants only; every value is bound.
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&update.status)
            .bind(update.remote_id.as_deref())
            .bind(update.secret.as_deref())
            .bind(update.error.as_deref())
            .bind(update.expires_at)
            .bind(update.attempts)
            .bind(update.next_attempt_at)
            .bind(now_ms())
            .bind(project_id)
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(done == 1)
    }
}
