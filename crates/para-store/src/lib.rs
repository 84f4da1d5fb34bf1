//! The durable state of a served project: connected users, their credentials (secrets sealed by
//! the caller, never stored in plain text), their settings and workflow toggles, and single-use
//! OAuth states. One schema, portable SQL, on SQLite (one process) or PostgreSQL (many).
//!
//! Every query of user data is keyed by `(project_id, user_id)`: a function that reads or writes
//! a user's rows takes both, so one user's data is never reachable with another's identity.

pub mod alerts;
pub mod history;
pub mod releases;
pub mod runs;
mod status;
pub mod trigger_subscriptions;
pub mod webhooks;

pub use status::{CredentialStatus, RunStatus, StepStatus, UnknownStatus};

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// The migrations, in order. Each runs once, in a transaction, recorded in `para_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_connect.sql")),
    (2, include_str!("../migrations/0002_oauth_sessions.sql")),
    (3, include_str!("../migrations/0003_runs.sql")),
    (4, include_str!("../migrations/0004_run_leases.sql")),
    (5, include_str!("../migrations/0005_trigger_state.sql")),
    (6, include_str!("../migrations/0006_run_credential.sql")),
    (7, include_str!("../migrations/0007_configurations.sql")),
    (8, include_str!("../migrations/0008_trigger_state_configuration.sql")),
    (9, include_str!("../migrations/0009_admin_sessions.sql")),
    (10, include_str!("../migrations/0010_signed_meta.sql")),
    (11, include_str!("../migrations/0011_webhooks.sql")),
    (12, include_str!("../migrations/0012_trigger_subscriptions.sql")),
    (13, include_str!("../migrations/0013_webhook_subscriptions.sql")),
    (14, include_str!("../migrations/0014_releases.sql")),
    (15, include_str!("../migrations/0015_alerts.sql")),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database file {0}: {1}")]
    File(String, std::io::Error),
    #[error("`{0}` is not a database URL para understands")]
    BadUrl(String),
    #[error("stored JSON is corrupt: {0}")]
    Json(#[from] serde_json::Error),
    /// A status column holds a text this version does not know (written by a newer para, or
    /// edited by hand).
    #[error("the database holds {0}; was it written by a newer version of para?")]
    Status(#[from] UnknownStatus),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Reads that need not wait for the writer: on a SQLite file, a few read-only connections
    /// beside the one writer (WAL lets them read while it writes); otherwise `pool` itself.
    reader: AnyPool,
    backend: Backend,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectedUser {
    pub user_id: String,
    pub meta: Value,
    /// The metadata of the user's last verified token (`{}` when none carried any): what
    /// `PATCH /sdk/me` cannot change.
    pub signed_meta: Value,
    pub created_at: i64,
}

/// `stored` with the claims of `signed` whose value differs from `last_signed`'s (a claim of a
/// token seen again is not applied twice, so what was patched since stays).
fn with_new_claims(stored: &Value, last_signed: &Value, signed: &Value) -> Value {
    let mut meta = match stored {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Value::Object(claims) = signed {
        for (key, value) in claims {
            if last_signed.get(key) != Some(value) {
                meta.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(meta)
}

/// A `connected_users` row: `user_id, meta, created_at, signed_meta`.
fn user_row(r: &AnyRow) -> Result<ConnectedUser> {
    let signed: Option<String> = r.get(3);
    Ok(ConnectedUser {
        user_id: r.get(0),
        meta: json(&r.get::<String, _>(1))?,
        signed_meta: match signed {
            Some(text) => json(&text)?,
            None => Value::Object(Map::new()),
        },
        created_at: r.get(2),
    })
}

/// A user's credential for one integration. `secret` is the caller's sealed text.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    pub id: String,
    /// The connected user it belongs to.
    pub user_id: String,
    pub integration: String,
    pub status: CredentialStatus,
    pub status_reason: Option<String>,
    pub provider_id: Option<String>,
    pub provider_data: Value,
    pub secret: String,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A credential to store ([`Store::insert_credential`]).
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    pub project_id: &'a str,
    pub user_id: &'a str,
    pub integration: &'a str,
    pub status: CredentialStatus,
    pub status_reason: Option<&'a str>,
    pub provider_id: Option<&'a str>,
    pub provider_data: Value,
    /// The caller's sealed text.
    pub secret: &'a str,
    pub expires_at: Option<i64>,
    /// The credential's id; `None`: a fresh UUID.
    pub id: Option<&'a str>,
    /// Recorded with the credential, in its transaction, when it is stored INVALID (the
    /// caller's `credential.invalid` event, naming `id`).
    pub invalid_alert: Option<&'a alerts::NewAlert>,
}

impl<'a> NewCredential<'a> {
    /// A credential with no reason, provider id, provider data (`{}`) or expiry.
    pub fn new(
        project_id: &'a str,
        user_id: &'a str,
        integration: &'a str,
        status: CredentialStatus,
        secret: &'a str,
    ) -> NewCredential<'a> {
        NewCredential {
            project_id,
            user_id,
            integration,
            status,
            status_reason: None,
            provider_id: None,
            provider_data: Value::Object(Default::default()),
            secret,
            expires_at: None,
            id: None,
            invalid_alert: None,
        }
    }
}

/// Whose settings a row holds: the integration-level ones, which every credential's default
/// configuration shows (so the user's accounts of the integration share them), or those of one
/// configuration made with `createConfiguration`.
///
/// Stored in `configuration_id` as `''` for the integration level and as the configuration's id
/// otherwise, as before this type existed, so the settings users saved then keep their meaning.
/// (A configuration's id is a UUID, never empty.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SettingsKey {
    Integration,
    /// The id of a configuration made with `createConfiguration`.
    Configuration(String),
}

impl SettingsKey {
    /// The configuration's settings for `Some(id)`, the integration-level ones for `None` (as
    /// a run's `configuration_id` says).
    pub fn of(configuration_id: Option<&str>) -> SettingsKey {
        match configuration_id {
            Some(id) => SettingsKey::Configuration(id.to_string()),
            None => SettingsKey::Integration,
        }
    }

    /// The configuration's id; `None` for the integration level.
    pub fn configuration_id(&self) -> Option<&str> {
        match self {
            SettingsKey::Integration => None,
            SettingsKey::Configuration(id) => Some(id),
        }
    }

    /// The `configuration_id` column's text.
    fn stored(&self) -> &str {
        self.configuration_id().unwrap_or("")
    }

    /// Reads [`SettingsKey::stored`]'s text.
    fn from_stored(text: String) -> SettingsKey {
        if text.is_empty() { SettingsKey::Integration } else { SettingsKey::Configuration(text) }
    }
}

/// Settings of one scope: the integration (`workflow_id` empty) or one of its workflows, in
/// the integration-level settings or one configuration's.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub integration: String,
    pub configuration: SettingsKey,
    pub workflow_id: String,
    /// `None`: never toggled (the workflow's `defaultEnabled` applies).
    pub enabled: Option<bool>,
    pub values: Value,
}

impl Settings {
    /// The row of one scope among a user's settings ([`Store::settings`]): `workflow_id`
    /// empty for the shared settings (not a workflow's).
    pub fn find<'s>(
        all: &'s [Settings],
        integration: &str,
        configuration: &SettingsKey,
        workflow_id: &str,
    ) -> Option<&'s Settings> {
        all.iter().find(|s| {
            s.integration == integration
                && s.configuration == *configuration
                && s.workflow_id == workflow_id
        })
    }
}

/// Where [`Store::put_settings`] writes: one user's integration, its integration-level settings
/// or a configuration's, and a workflow (empty: the shared settings).
#[derive(Debug, Clone, Copy)]
pub struct SettingsScope<'a> {
    pub project_id: &'a str,
    pub user_id: &'a str,
    pub integration: &'a str,
    pub configuration: &'a SettingsKey,
    pub workflow_id: &'a str,
}

/// A configuration of a credential that has a row: one created with `createConfiguration`
/// (its own settings), or a default one that was given metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialConfiguration {
    pub id: String,
    pub credential_id: String,
    pub external_id: Option<String>,
    pub is_default: bool,
    pub meta: Value,
    pub created_at: i64,
}

/// A pending OAuth authorization, kept until its callback (single use, expires).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthState {
    pub state: String,
    pub project_id: String,
    pub user_id: String,
    pub integration: String,
    /// Sealed by the caller: PKCE verifier, redirect URI, connect-time fields.
    pub sealed: String,
    pub expires_at: i64,
}

fn json(text: &str) -> Result<Value> {
    Ok(serde_json::from_str(text)?)
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates. `sqlite://path` / `sqlite::memory:`
    /// or `postgres://…`.
    pub async fn open(url: &str) -> Result<Store> {
        Self::open_migrated_to(url, i64::MAX).await
    }

    /// [`Store::open`] with the migrations up to `last_version` only: for tests of a
    /// migration on a database an older server left.
    #[doc(hidden)]
    pub async fn open_migrated_to(url: &str, last_version: i64) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        if backend == Backend::Sqlite
            && let Some(path) = sqlite_path(url)
        {
            owner_only(&path)?;
        }
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_string(),
        };
        let options = AnyPoolOptions::new();
        let pool = match backend {
            // One connection: SQLite serialises writers anyway, and an in-memory database exists
            // per connection. Write-ahead logging lets `para runs` read while the server writes;
            // with it, `synchronous = NORMAL` stays crash-safe (a power cut may lose the last
            // commits, never corrupt the file). The engine batches its commits (group commit).
            Backend::Sqlite => options.max_connections(1).after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.max_connections(16),
        }
        .connect(&url)
        .await?;
        let mut store = Store { reader: pool.clone(), pool, backend };
        store.migrate(last_version).await?;
        if backend == Backend::Sqlite && !url.contains(":memory:") {
            store.reader = AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        use sqlx::Executor;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA query_only = 1").await?;
                        Ok(())
                    })
                })
                .connect(&url)
                .await?;
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Asks the database a trivial question (`SELECT 1`) on a read connection: whether it
    /// answers at all (a server's readiness). The caller bounds how long it waits.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.reader).await?;
        Ok(())
    }

    /// Closes the connections: every later call fails at once (a server's shutdown; tests of
    /// what a server does without its database).
    pub async fn close(&self) {
        self.reader.close().await;
        self.pool.close().await;
    }

    async fn migrate(&self, last_version: i64) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            // Several servers may start at once: one migrates, the others wait.
            sqlx::query("SELECT pg_advisory_lock(7261626172617068)").execute(&mut *conn).await?;
        }
        let result = async {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS para_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .execute(&mut *conn)
            .await?;
            let done: Vec<i64> = sqlx::query("SELECT version FROM para_migrations")
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| r.get::<i64, _>(0))
                .collect();
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= last_version) {
                if done.contains(version) {
                    continue;
                }
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                for statement in statements(sql) {
                    // Our own embedded migration text, not input.
                    sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut *tx).await?;
                }
                sqlx::query("INSERT INTO para_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(*version)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<(), StoreError>(())
        }
        .await;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock(7261626172617068)").execute(&mut *conn).await?;
        }
        result
    }

    // ------------------------------------------------------------ users

    /// Records that the user of a verified token was seen, with the token's `meta` (`None`:
    /// the token carried none). The token's metadata is kept as the signed metadata, which
    /// only a token changes. The stored metadata takes the claims that are new: on first sight
    /// all of them, later only those whose value differs from the last verified token's
    /// (a claim the token no longer carries is left as stored). So a token seen again does
    /// not undo what [`Store::merge_user_meta`] (`PATCH /sdk/me`) set, and a token whose claim
    /// changed overrides it for that key. Returns the user.
    pub async fn touch_signed_user(
        &self,
        project_id: &str,
        user_id: &str,
        meta: Option<&Value>,
    ) -> Result<ConnectedUser> {
        let signed = meta.cloned().unwrap_or_else(|| Value::Object(Map::new()));
        let mut tx = self.pool.begin().await?;
        // A write first, so that on SQLite the transaction holds the write lock from its start
        // (a read that later writes could fail to upgrade). On first sight the claims are the
        // metadata.
        sqlx::query(
            "INSERT INTO connected_users (project_id, user_id, meta, created_at, updated_at, signed_meta)
             VALUES ($1, $2, $3, $4, $4, $3)
             ON CONFLICT (project_id, user_id) DO UPDATE SET updated_at = excluded.updated_at",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(signed.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let user = self.user_for_update(&mut tx, project_id, user_id).await?;
        let meta = with_new_claims(&user.meta, &user.signed_meta, &signed);
        if meta == user.meta && signed == user.signed_meta {
            tx.commit().await?;
            return Ok(user);
        }
        sqlx::query(
            "UPDATE connected_users SET meta = $3, signed_meta = $4 WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(meta.to_string())
        .bind(signed.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ConnectedUser { meta, signed_meta: signed, ..user })
    }

    /// `PATCH /sdk/me {meta}`: each top-level key of `patch` replaces that key of the stored
    /// metadata (a `null` value is stored as `null`); keys not in `patch` are kept. The signed
    /// metadata is untouched. Returns the user, or `None` (nothing written) when the merged
    /// metadata would be longer than `max_len` bytes of JSON.
    pub async fn merge_user_meta(
        &self,
        project_id: &str,
        user_id: &str,
        patch: &Map<String, Value>,
        max_len: usize,
    ) -> Result<Option<ConnectedUser>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO connected_users (project_id, user_id, meta, created_at, updated_at)
             VALUES ($1, $2, '{}', $3, $3)
             ON CONFLICT (project_id, user_id) DO UPDATE SET updated_at = excluded.updated_at",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let user = self.user_for_update(&mut tx, project_id, user_id).await?;
        let mut meta = match &user.meta {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        for (key, value) in patch {
            meta.insert(key.clone(), value.clone());
        }
        let meta = Value::Object(meta);
        let text = meta.to_string();
        if text.len() > max_len {
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query("UPDATE connected_users SET meta = $3 WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .bind(text)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(ConnectedUser { meta, ..user }))
    }

    /// The user's row inside `tx`, locked until it ends on PostgreSQL (SQLite has one writer).
    async fn user_for_update(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        project_id: &str,
        user_id: &str,
    ) -> Result<ConnectedUser> {
        let query = match self.backend {
            Backend::Postgres => {
                "SELECT user_id, meta, created_at, signed_meta FROM connected_users WHERE project_id = $1 AND user_id = $2 FOR UPDATE"
            }
            Backend::Sqlite => {
                "SELECT user_id, meta, created_at, signed_meta FROM connected_users WHERE project_id = $1 AND user_id = $2"
            }
        };
        let row = sqlx::query(query).bind(project_id).bind(user_id).fetch_one(&mut **tx).await?;
        user_row(&row)
    }

    /// Records that the user was seen; `meta` replaces the stored metadata when given (for
    /// callers that set it whole: `para run`, tests). Returns the user.
    pub async fn touch_user(
        &self,
        project_id: &str,
        user_id: &str,
        meta: Option<&Value>,
    ) -> Result<ConnectedUser> {
        let now = now_ms();
        let meta_text = meta.map(Value::to_string);
        let row = sqlx::query(
            "INSERT INTO connected_users (project_id, user_id, meta, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (project_id, user_id) DO UPDATE
               SET meta = CASE WHEN $5 = 1 THEN excluded.meta ELSE connected_users.meta END,
                   updated_at = excluded.updated_at
             RETURNING user_id, meta, created_at, signed_meta",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(meta_text.clone().unwrap_or_else(|| "{}".into()))
        .bind(now)
        .bind(i64::from(meta.is_some()))
        .fetch_one(&self.pool)
        .await?;
        user_row(&row)
    }

    pub async fn user(&self, project_id: &str, user_id: &str) -> Result<Option<ConnectedUser>> {
        let row = sqlx::query(
            "SELECT user_id, meta, created_at, signed_meta FROM connected_users WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project_id)
        .bind(user_id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(user_row).transpose()
    }

    /// Every connected user of a project, oldest first (for the dashboard).
    pub async fn users(&self, project_id: &str) -> Result<Vec<ConnectedUser>> {
        let rows = sqlx::query(
            "SELECT user_id, meta, created_at, signed_meta FROM connected_users WHERE project_id = $1 ORDER BY created_at, user_id",
        )
        .bind(project_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(user_row).collect()
    }

    // ------------------------------------------------------------ credentials

    const CREDENTIAL_COLUMNS: &str = "id, integration, status, status_reason, provider_id, provider_data, secret, expires_at, created_at, updated_at, user_id";

    fn credential_row(r: &AnyRow) -> Result<Credential> {
        Ok(Credential {
            id: r.get(0),
            integration: r.get(1),
            status: status::read(r, 2)?,
            status_reason: r.get(3),
            provider_id: r.get(4),
            provider_data: json(&r.get::<String, _>(5))?,
            secret: r.get(6),
            expires_at: r.get(7),
            created_at: r.get(8),
            updated_at: r.get(9),
            user_id: r.get(10),
        })
    }

    /// Stores a new credential and returns it as written (with a fresh id).
    pub async fn insert_credential(&self, new: &NewCredential<'_>) -> Result<Credential> {
        let id = new.id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO credentials (id, project_id, user_id, integration, status, status_reason, provider_id, provider_data, secret, expires_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(&id)
        .bind(new.project_id)
        .bind(new.user_id)
        .bind(new.integration)
        .bind(new.status.as_str())
        .bind(new.status_reason)
        .bind(new.provider_id)
        .bind(new.provider_data.to_string())
        .bind(new.secret)
        .bind(new.expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if new.status == CredentialStatus::Invalid
            && let Some(alert) = new.invalid_alert
        {
            alerts::record(&mut tx, alert, now).await?;
        }
        tx.commit().await?;
        Ok(Credential {
            id,
            user_id: new.user_id.to_string(),
            integration: new.integration.to_string(),
            status: new.status,
            status_reason: new.status_reason.map(str::to_string),
            provider_id: new.provider_id.map(str::to_string),
            provider_data: new.provider_data.clone(),
            secret: new.secret.to_string(),
            expires_at: new.expires_at,
            created_at: now,
            updated_at: now,
        })
    }

    /// The user's credentials, newest first, optionally of one integration.
    pub async fn credentials(
        &self,
        project_id: &str,
        user_id: &str,
        integration: Option<&str>,
    ) -> Result<Vec<Credential>> {
        let sql = format!(
            "SELECT {} FROM credentials WHERE project_id = $1 AND user_id = $2 AND ($3 = '' OR integration = $3) ORDER BY created_at DESC, id",
            Self::CREDENTIAL_COLUMNS
        );
        // Built from constants only; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(user_id)
            .bind(integration.unwrap_or(""))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(Self::credential_row).collect()
    }

    /// One credential of the user (`None` if it does not exist or belongs to someone else).
    pub async fn credential(
        &self,
        project_id: &str,
        user_id: &str,
        id: &str,
    ) -> Result<Option<Credential>> {
        let sql = format!(
            "SELECT {} FROM credentials WHERE project_id = $1 AND user_id = $2 AND id = $3",
            Self::CREDENTIAL_COLUMNS
        );
        // Built from constants only; every value is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(user_id)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(Self::credential_row).transpose()
    }

    /// Replaces a credential's secret, expiry and status (after a refresh or a check). Returns
    /// the credential as the update left it (`RETURNING`: no second read), or `None` when the
    /// user has no such credential.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_credential(
        &self,
        project_id: &str,
        user_id: &str,
        id: &str,
        status: CredentialStatus,
        status_reason: Option<&str>,
        secret: &str,
        expires_at: Option<i64>,
    ) -> Result<Option<Credential>> {
        let sql = credential_update(false);
        let update = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(user_id)
            .bind(id)
            .bind(status.as_str())
            .bind(status_reason)
            .bind(secret)
            .bind(expires_at)
            .bind(now_ms());
        let row = update.fetch_optional(&self.pool).await?;
        row.as_ref().map(Self::credential_row).transpose()
    }

    /// [`Store::update_credential`], and when it changes the credential to INVALID from
    /// another status (not when it was INVALID already), records `invalid_alert` in the same
    /// transaction: a credential's change to INVALID is announced exactly once. The answer
    /// says whether it was; `None` when the user has no such credential.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_credential_alerting(
        &self,
        project_id: &str,
        user_id: &str,
        id: &str,
        status: CredentialStatus,
        status_reason: Option<&str>,
        secret: &str,
        expires_at: Option<i64>,
        invalid_alert: &alerts::NewAlert,
    ) -> Result<Option<(Credential, bool)>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let update = |only_changed: bool| {
            sqlx::query(sqlx::AssertSqlSafe(credential_update(only_changed)))
                .bind(project_id)
                .bind(user_id)
                .bind(id)
                .bind(status.as_str())
                .bind(status_reason)
                .bind(secret)
                .bind(expires_at)
                .bind(now)
        };
        // The first statement writes (SQLite takes the write lock at once; PostgreSQL locks
        // the row): a concurrent change to INVALID waits, then finds it INVALID.
        let changed = if status == CredentialStatus::Invalid {
            update(true).fetch_optional(&mut *tx).await?
        } else {
            None
        };
        let (row, announced) = match changed {
            Some(row) => {
                alerts::record(&mut tx, invalid_alert, now).await?;
                (Some(row), true)
            }
            None => (update(false).fetch_optional(&mut *tx).await?, false),
        };
        tx.commit().await?;
        row.as_ref().map(|r| Ok((Self::credential_row(r)?, announced))).transpose()
    }

    /// Replaces a credential's `provider_data` (the account facts shown to the app). Returns
    /// the credential as the update left it, or `None` when the user has no such credential.
    pub async fn set_provider_data(
        &self,
        project_id: &str,
        user_id: &str,
        id: &str,
        provider_data: &Value,
    ) -> Result<Option<Credential>> {
        let sql = format!(
            "UPDATE credentials SET provider_data = $4, updated_at = $5
             WHERE project_id = $1 AND user_id = $2 AND id = $3 RETURNING {}",
            Self::CREDENTIAL_COLUMNS
        );
        // Built from constants only; every value is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(user_id)
            .bind(id)
            .bind(provider_data.to_string())
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::credential_row).transpose()
    }

    /// Deletes one credential of the user; false if there was none.
    pub async fn delete_credential(
        &self,
        project_id: &str,
        user_id: &str,
        id: &str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "DELETE FROM credentials WHERE project_id = $1 AND user_id = $2 AND id = $3",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            delete_configurations(&mut tx, project_id, user_id, id).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Uninstall: every credential and setting of the user for the integration. Returns how
    /// many credentials were removed.
    pub async fn uninstall(
        &self,
        project_id: &str,
        user_id: &str,
        integration: &str,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM configurations WHERE project_id = $1 AND user_id = $2 AND credential_id IN
               (SELECT id FROM credentials WHERE project_id = $1 AND user_id = $2 AND integration = $3)",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(integration)
        .execute(&mut *tx)
        .await?;
        let removed = sqlx::query(
            "DELETE FROM credentials WHERE project_id = $1 AND user_id = $2 AND integration = $3",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(integration)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        delete_settings(&mut tx, project_id, user_id, integration).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Uninstalls one account of several: deletes the credential `id` of the user's `integration`;
    /// when it was the last one, also the user's settings of the integration (as
    /// [`Store::uninstall`]). `None` when the user has no such credential for the integration;
    /// otherwise how many credentials of the integration remain.
    pub async fn uninstall_credential(
        &self,
        project_id: &str,
        user_id: &str,
        integration: &str,
        id: &str,
    ) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query(
            "DELETE FROM credentials
             WHERE project_id = $1 AND user_id = $2 AND integration = $3 AND id = $4",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(integration)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 0 {
            return Ok(None);
        }
        delete_configurations(&mut tx, project_id, user_id, id).await?;
        let remaining: i64 = sqlx::query(
            "SELECT COUNT(*) FROM credentials WHERE project_id = $1 AND user_id = $2 AND integration = $3",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(integration)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if remaining == 0 {
            delete_settings(&mut tx, project_id, user_id, integration).await?;
        }
        tx.commit().await?;
        Ok(Some(remaining))
    }

    // ------------------------------------------------------------ settings

    /// Every settings row of the user.
    pub async fn settings(&self, project_id: &str, user_id: &str) -> Result<Vec<Settings>> {
        let rows = sqlx::query(
            "SELECT integration, configuration_id, workflow_id, enabled, settings FROM user_settings
             WHERE project_id = $1 AND user_id = $2 ORDER BY integration, configuration_id, workflow_id",
        )
        .bind(project_id)
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Settings {
                    integration: r.get(0),
                    configuration: SettingsKey::from_stored(r.get(1)),
                    workflow_id: r.get(2),
                    enabled: r.get::<Option<i64>, _>(3).map(|e| e != 0),
                    values: json(&r.get::<String, _>(4))?,
                })
            })
            .collect()
    }

    /// Writes one scope's settings. `enabled: None` keeps the stored toggle; `values: None`
    /// keeps the stored values.
    pub async fn put_settings(
        &self,
        scope: SettingsScope<'_>,
        enabled: Option<bool>,
        values: Option<&Value>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_settings (project_id, user_id, integration, configuration_id, workflow_id, enabled, settings, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (project_id, user_id, integration, configuration_id, workflow_id) DO UPDATE
               SET enabled = CASE WHEN $9 = 1 THEN excluded.enabled ELSE user_settings.enabled END,
                   settings = CASE WHEN $10 = 1 THEN excluded.settings ELSE user_settings.settings END,
                   updated_at = excluded.updated_at",
        )
        .bind(scope.project_id)
        .bind(scope.user_id)
        .bind(scope.integration)
        .bind(scope.configuration.stored())
        .bind(scope.workflow_id)
        .bind(enabled.map(i64::from))
        .bind(values.map_or_else(|| "{}".to_string(), Value::to_string))
        .bind(now_ms())
        .bind(i64::from(enabled.is_some()))
        .bind(i64::from(values.is_some()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ------------------------------------------------------------ configurations

    /// The user's configurations that have rows, oldest first.
    pub async fn configurations(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Vec<CredentialConfiguration>> {
        let rows = sqlx::query(
            "SELECT id, credential_id, external_id, is_default, meta, created_at FROM configurations
             WHERE project_id = $1 AND user_id = $2 ORDER BY created_at, id",
        )
        .bind(project_id)
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CredentialConfiguration {
                    id: r.get(0),
                    credential_id: r.get(1),
                    external_id: r.get(2),
                    is_default: r.get::<i64, _>(3) != 0,
                    meta: json(&r.get::<String, _>(4))?,
                    created_at: r.get(5),
                })
            })
            .collect()
    }

    /// Adds a configuration (not the default one) to the user's credential `credential_id`,
    /// which the caller has checked is the user's. An `external_id` the credential already
    /// has is refused by the database (unique index).
    pub async fn insert_configuration(
        &self,
        project_id: &str,
        user_id: &str,
        credential_id: &str,
        external_id: Option<&str>,
    ) -> Result<CredentialConfiguration> {
        let created = CredentialConfiguration {
            id: uuid::Uuid::new_v4().to_string(),
            credential_id: credential_id.to_string(),
            external_id: external_id.map(str::to_string),
            is_default: false,
            meta: Value::Object(serde_json::Map::new()),
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO configurations (id, project_id, user_id, credential_id, external_id, is_default, meta, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 0, '{}', $6, $6)",
        )
        .bind(&created.id)
        .bind(project_id)
        .bind(user_id)
        .bind(credential_id)
        .bind(external_id)
        .bind(created.created_at)
        .execute(&self.pool)
        .await?;
        Ok(created)
    }

    /// Replaces a configuration's metadata. A default configuration without a row gets one
    /// (`id` is then the id the caller derives for it, `is_default` true). Rows of another
    /// user are never touched: false then.
    pub async fn put_configuration_meta(
        &self,
        project_id: &str,
        user_id: &str,
        configuration: &CredentialConfiguration,
    ) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO configurations (id, project_id, user_id, credential_id, external_id, is_default, meta, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET meta = excluded.meta, updated_at = excluded.updated_at
             WHERE configurations.project_id = excluded.project_id
               AND configurations.user_id = excluded.user_id",
        )
        .bind(&configuration.id)
        .bind(project_id)
        .bind(user_id)
        .bind(&configuration.credential_id)
        .bind(configuration.external_id.as_deref())
        .bind(i64::from(configuration.is_default))
        .bind(configuration.meta.to_string())
        .bind(configuration.created_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes one of the user's (non-default) configurations and its settings; false if the
    /// user has no such configuration.
    pub async fn delete_configuration(
        &self,
        project_id: &str,
        user_id: &str,
        id: &str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query(
            "DELETE FROM configurations
             WHERE project_id = $1 AND user_id = $2 AND id = $3 AND is_default = 0",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 1 {
            sqlx::query(
                "DELETE FROM user_settings
                 WHERE project_id = $1 AND user_id = $2 AND configuration_id = $3",
            )
            .bind(project_id)
            .bind(user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(removed == 1)
    }

    // ------------------------------------------------------------ OAuth states

    pub async fn put_oauth_state(&self, state: &OAuthState) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_states (state, project_id, user_id, integration, sealed, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&state.state)
        .bind(&state.project_id)
        .bind(&state.user_id)
        .bind(&state.integration)
        .bind(&state.sealed)
        .bind(now_ms())
        .bind(state.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Consumes a state: returns it once, if it exists, is unused and unexpired; a second call
    /// (a replayed callback) gets `None`. One statement marks it used and returns it, so no
    /// other write can come between.
    pub async fn take_oauth_state(&self, state: &str) -> Result<Option<OAuthState>> {
        let row = sqlx::query(
            "UPDATE oauth_states SET used_at = $2 WHERE state = $1 AND used_at IS NULL AND expires_at > $2
             RETURNING state, project_id, user_id, integration, sealed, expires_at",
        )
        .bind(state)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| OAuthState {
            state: row.get(0),
            project_id: row.get(1),
            user_id: row.get(2),
            integration: row.get(3),
            sealed: row.get(4),
            expires_at: row.get(5),
        }))
    }
}

/// Where the SDK's OAuth session (`oauthMetaKeyId`) stands.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthSession {
    pub credential_id: Option<String>,
    pub error: Option<String>,
}

impl Store {
    // ------------------------------------------------------------ OAuth sessions and nonces

    /// Records that the user started the session (idempotent).
    pub async fn start_oauth_session(
        &self,
        project_id: &str,
        user_id: &str,
        session_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_sessions (project_id, user_id, session_id, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project_id, user_id, session_id) DO NOTHING",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(session_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends the session with its credential or its error.
    pub async fn finish_oauth_session(
        &self,
        project_id: &str,
        user_id: &str,
        session_id: &str,
        credential_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_sessions (project_id, user_id, session_id, credential_id, error, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (project_id, user_id, session_id) DO UPDATE
               SET credential_id = excluded.credential_id, error = excluded.error",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(session_id)
        .bind(credential_id)
        .bind(error)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user's session, if it exists.
    pub async fn oauth_session(
        &self,
        project_id: &str,
        user_id: &str,
        session_id: &str,
    ) -> Result<Option<OAuthSession>> {
        let row = sqlx::query(
            "SELECT credential_id, error FROM oauth_sessions WHERE project_id = $1 AND user_id = $2 AND session_id = $3",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| OAuthSession { credential_id: r.get(0), error: r.get(1) }))
    }

    pub async fn delete_oauth_session(
        &self,
        project_id: &str,
        user_id: &str,
        session_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "DELETE FROM oauth_sessions WHERE project_id = $1 AND user_id = $2 AND session_id = $3",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(session_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Binds a browser (a cookie holding `nonce`) to a user for the OAuth callback.
    pub async fn put_oauth_nonce(
        &self,
        nonce: &str,
        project_id: &str,
        user_id: &str,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM oauth_nonces WHERE expires_at < $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO oauth_nonces (nonce, project_id, user_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(nonce)
        .bind(project_id)
        .bind(user_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The `(project, user)` an unexpired nonce was issued to.
    pub async fn oauth_nonce(&self, nonce: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT project_id, user_id FROM oauth_nonces WHERE nonce = $1 AND expires_at > $2",
        )
        .bind(nonce)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    // ------------------------------------------------------------ dashboard sessions

    /// Records a dashboard session (`session_hash`: the SHA-256 of the cookie's value) made
    /// under the admin key with `key_fingerprint`, valid until `expires_at`; forgets expired
    /// ones.
    pub async fn put_admin_session(
        &self,
        project_id: &str,
        session_hash: &str,
        key_fingerprint: &str,
        expires_at: i64,
    ) -> Result<()> {
        let now = now_ms();
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO admin_sessions (session_hash, project_id, key_fingerprint, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session_hash)
        .bind(project_id)
        .bind(key_fingerprint)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether a dashboard session is current: recorded, unexpired, of this project and made
    /// under the admin key with `key_fingerprint`.
    pub async fn admin_session(
        &self,
        project_id: &str,
        session_hash: &str,
        key_fingerprint: &str,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM admin_sessions WHERE session_hash = $1 AND project_id = $2
             AND key_fingerprint = $3 AND expires_at > $4",
        )
        .bind(session_hash)
        .bind(project_id)
        .bind(key_fingerprint)
        .bind(now_ms())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.is_some())
    }

    /// Ends a dashboard session.
    pub async fn delete_admin_session(&self, project_id: &str, session_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE session_hash = $1 AND project_id = $2")
            .bind(session_hash)
            .bind(project_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------ refresh lease

    /// Takes the refresh lease of a credential until `until_ms` if nobody holds it: true when
    /// this caller may refresh. Works across processes (one conditional UPDATE).
    pub async fn try_lease_refresh(&self, id: &str, until_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE credentials SET refresh_lock_until = $2
             WHERE id = $1 AND (refresh_lock_until IS NULL OR refresh_lock_until < $3)",
        )
        .bind(id)
        .bind(until_ms)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease back.
    pub async fn release_refresh(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE credentials SET refresh_lock_until = NULL WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The file of a `sqlite:` URL (`sqlite://path/para.db?…`, `sqlite:para.db`); none in memory.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Makes the database file, and SQLite's `-wal` and `-shm` files beside it, readable by their
/// owner only: they hold users' metadata, sealed secrets and run journals. A new file is
/// created so (SQLite gives the files it adds the main file's mode); existing ones are
/// tightened.
fn owner_only(path: &std::path::Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::File(path.display().to_string(), e))?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(meta) = std::fs::metadata(&file)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| StoreError::File(file.display().to_string(), e))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A migration's statements: comments dropped first (they may hold `;`), then split at `;`.
fn statements(sql: &str) -> Vec<String> {
    let code: String =
        sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    code.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The statement that replaces a credential's status, reason, secret and expiry (`$1`–`$8`:
/// project, user, id, status, reason, secret, expiry, now), returning it; with `only_changed`,
/// only if its status is another. Built from constants only; every value is bound.
fn credential_update(only_changed: bool) -> String {
    format!(
        "UPDATE credentials SET status = $4, status_reason = $5, secret = $6, expires_at = $7, updated_at = $8
         WHERE project_id = $1 AND user_id = $2 AND id = $3{} RETURNING {}",
        if only_changed { " AND status <> $4" } else { "" },
        Store::CREDENTIAL_COLUMNS
    )
}

/// Deletes a deleted credential's configurations and their settings, inside its transaction.
async fn delete_configurations(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    project_id: &str,
    user_id: &str,
    credential_id: &str,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM user_settings WHERE project_id = $1 AND user_id = $2 AND configuration_id IN
           (SELECT id FROM configurations WHERE project_id = $1 AND user_id = $2 AND credential_id = $3)",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(credential_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM configurations WHERE project_id = $1 AND user_id = $2 AND credential_id = $3",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(credential_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes the user's settings of an integration, inside an uninstall's transaction.
async fn delete_settings(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    project_id: &str,
    user_id: &str,
    integration: &str,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM user_settings WHERE project_id = $1 AND user_id = $2 AND integration = $3",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(integration)
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

    #[tokio::test]
    async fn users_meta_is_replaced_only_when_given() {
        let (_dir, s) = store().await;
        let u = s.touch_user("p", "alice", Some(&json!({"plan": "pro"}))).await.unwrap();
        assert_eq!(u.meta, json!({"plan": "pro"}));
        let u = s.touch_user("p", "alice", None).await.unwrap();
        assert_eq!(u.meta, json!({"plan": "pro"}));
        s.touch_user("p", "bob", None).await.unwrap();
        assert_eq!(s.users("p").await.unwrap().len(), 2);
        assert!(s.user("other", "alice").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_token_seen_again_keeps_patched_metadata_and_a_changed_claim_wins() {
        let (_dir, s) = store().await;
        let claims = json!({"plan": "pro", "team": "a"});
        let u = s.touch_signed_user("p", "ann", Some(&claims)).await.unwrap();
        assert_eq!((&u.meta, &u.signed_meta), (&claims, &claims));
        let patch = json!({"Name": "Ann", "plan": "trial"});
        let u = s.merge_user_meta("p", "ann", patch.as_object().unwrap(), 1000).await.unwrap();
        assert_eq!(u.unwrap().meta, json!({"Name": "Ann", "plan": "trial", "team": "a"}));
        let u = s.user("p", "ann").await.unwrap().unwrap();
        assert_eq!(u.signed_meta, claims, "a patch never changes the signed metadata");
        // Too long once merged: refused, nothing written.
        let big = json!({ "blob": "x".repeat(1000) });
        assert!(
            s.merge_user_meta("p", "ann", big.as_object().unwrap(), 1000).await.unwrap().is_none()
        );
        assert_eq!(s.user("p", "ann").await.unwrap().unwrap().meta, u.meta);
        // The same claims again (the same token, or a new one saying the same): kept as patched.
        let u = s.touch_signed_user("p", "ann", Some(&claims)).await.unwrap();
        assert_eq!(u.meta, json!({"Name": "Ann", "plan": "trial", "team": "a"}));
        assert_eq!(s.user("p", "ann").await.unwrap().unwrap().meta, u.meta);
        // A token whose `team` changed: that claim wins; `plan`, unchanged, stays as patched.
        let u = s.touch_signed_user("p", "ann", Some(&json!({"plan": "pro", "team": "b"}))).await;
        let u = u.unwrap();
        assert_eq!(u.meta, json!({"Name": "Ann", "plan": "trial", "team": "b"}));
        assert_eq!(u.signed_meta, json!({"plan": "pro", "team": "b"}));
        // A token without metadata changes nothing stored but the signed metadata.
        let u = s.touch_signed_user("p", "ann", None).await.unwrap();
        assert_eq!(u.meta, json!({"Name": "Ann", "plan": "trial", "team": "b"}));
        assert_eq!(u.signed_meta, json!({}));
        // Patches merge by top-level key; other users and projects are untouched.
        let patch = json!({"team": null});
        let u = s.merge_user_meta("p", "ann", patch.as_object().unwrap(), 1000).await.unwrap();
        assert_eq!(u.unwrap().meta, json!({"Name": "Ann", "plan": "trial", "team": null}));
        assert!(s.user("p", "bob").await.unwrap().is_none());
        assert!(s.user("q", "ann").await.unwrap().is_none());
        assert_eq!(s.user("p", "ann").await.unwrap().unwrap().signed_meta, json!({}));
    }

    /// The integration-level settings.
    const SHARED: &SettingsKey = &SettingsKey::Integration;

    /// A made configuration's settings.
    fn key(id: &str) -> SettingsKey {
        SettingsKey::Configuration(id.into())
    }

    fn scope<'a>(
        user: &'a str,
        configuration: &'a SettingsKey,
        workflow: &'a str,
    ) -> SettingsScope<'a> {
        SettingsScope {
            project_id: "p",
            user_id: user,
            integration: "slack",
            configuration,
            workflow_id: workflow,
        }
    }

    async fn slack_credential(s: &Store, user: &str) -> Credential {
        s.insert_credential(&NewCredential::new(
            "p",
            user,
            "slack",
            CredentialStatus::Valid,
            "v1:x",
        ))
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn configurations_have_their_own_settings_and_go_with_their_credential() {
        let (_dir, s) = store().await;
        let first = slack_credential(&s, "alice").await;
        let second = slack_credential(&s, "alice").await;
        let a = s.insert_configuration("p", "alice", &first.id, Some("team-a")).await.unwrap();
        let b = s.insert_configuration("p", "alice", &second.id, None).await.unwrap();
        assert!(
            s.insert_configuration("p", "alice", &first.id, Some("team-a")).await.is_err(),
            "an external id is unique per credential"
        );
        s.insert_configuration("p", "alice", &second.id, Some("team-a")).await.unwrap();
        s.put_settings(scope("alice", SHARED, ""), None, Some(&json!({"channel": "shared"})))
            .await
            .unwrap();
        s.put_settings(scope("alice", &key(&a.id), ""), None, Some(&json!({"channel": "A"})))
            .await
            .unwrap();
        s.put_settings(scope("alice", &key(&a.id), "wf1"), Some(true), None).await.unwrap();
        s.put_settings(scope("alice", &key(&b.id), "wf1"), Some(false), None).await.unwrap();
        let settings = s.settings("p", "alice").await.unwrap();
        let of = |configuration: &SettingsKey, workflow: &str| {
            Settings::find(&settings, "slack", configuration, workflow).cloned()
        };
        assert_eq!(of(SHARED, "").unwrap().values, json!({"channel": "shared"}));
        assert_eq!(of(&key(&a.id), "").unwrap().values, json!({"channel": "A"}));
        assert_eq!(of(&key(&a.id), "wf1").unwrap().enabled, Some(true));
        assert_eq!(of(&key(&b.id), "wf1").unwrap().enabled, Some(false));

        // Metadata: Bob cannot overwrite Alice's row, even knowing its id.
        let with_meta = CredentialConfiguration { meta: json!({"x": 1}), ..a.clone() };
        assert!(s.put_configuration_meta("p", "alice", &with_meta).await.unwrap());
        let stolen = CredentialConfiguration { meta: json!({"x": "bob"}), ..a.clone() };
        assert!(!s.put_configuration_meta("p", "bob", &stolen).await.unwrap());
        // A default configuration gets a row with its metadata; it cannot be deleted.
        let default = CredentialConfiguration {
            id: "default-of-first".into(),
            credential_id: first.id.clone(),
            external_id: None,
            is_default: true,
            meta: json!({"isIntegrationEnableTriggered": true}),
            created_at: first.created_at,
        };
        assert!(s.put_configuration_meta("p", "alice", &default).await.unwrap());
        assert!(!s.delete_configuration("p", "alice", &default.id).await.unwrap());
        let rows = s.configurations("p", "alice").await.unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows.iter().find(|r| r.id == a.id).unwrap().meta, json!({"x": 1}));
        assert!(rows.iter().any(|r| r == &default));
        assert!(s.configurations("p", "bob").await.unwrap().is_empty());

        // Deleting a configuration takes its settings; Bob cannot delete Alice's.
        assert!(!s.delete_configuration("p", "bob", &b.id).await.unwrap());
        assert!(s.delete_configuration("p", "alice", &b.id).await.unwrap());
        assert!(
            s.settings("p", "alice").await.unwrap().iter().all(|x| x.configuration != key(&b.id))
        );
        // Uninstalling one account takes its configurations and their settings, not the
        // integration-level settings while another account remains.
        assert_eq!(
            s.uninstall_credential("p", "alice", "slack", &first.id).await.unwrap(),
            Some(1)
        );
        let left = s.settings("p", "alice").await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].configuration, SettingsKey::Integration);
        let rows = s.configurations("p", "alice").await.unwrap();
        assert!(rows.iter().all(|r| r.credential_id == second.id), "{rows:?}");
        // Deleting the last credential takes its configurations too.
        assert!(s.delete_credential("p", "alice", &second.id).await.unwrap());
        assert!(s.configurations("p", "alice").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_configurations_migration_keeps_stored_settings() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("para.db").display());
        // A database as a server before migration 7 left it.
        let old = Store::open_migrated_to(&url, 6).await.unwrap();
        sqlx::query(
            "INSERT INTO user_settings (project_id, user_id, integration, workflow_id, enabled, settings, updated_at)
             VALUES ('p', 'alice', 'slack', 'wf1', 1, '{\"n\":2}', 5)",
        )
        .execute(&old.pool)
        .await
        .unwrap();
        old.pool.close().await;
        old.reader.close().await;
        let s = Store::open(&url).await.unwrap();
        let settings = s.settings("p", "alice").await.unwrap();
        assert_eq!(
            settings,
            [Settings {
                integration: "slack".into(),
                configuration: SettingsKey::Integration,
                workflow_id: "wf1".into(),
                enabled: Some(true),
                values: json!({"n": 2}),
            }]
        );
        s.put_settings(scope("alice", SHARED, "wf1"), None, Some(&json!({"n": 3}))).await.unwrap();
        assert_eq!(s.settings("p", "alice").await.unwrap()[0].values, json!({"n": 3}));
    }

    #[tokio::test]
    async fn credentials_and_settings_belong_to_one_user() {
        let (_dir, s) = store().await;
        let c = s
            .insert_credential(&NewCredential {
                provider_id: Some("U1"),
                status_reason: Some("why"),
                provider_data: json!({"team": "T1"}),
                expires_at: Some(7),
                ..NewCredential::new("p", "alice", "slack", CredentialStatus::Valid, "v1:sealed")
            })
            .await
            .unwrap();
        // What the insert returns is what was stored (it is not read back).
        assert_eq!(s.credential("p", "alice", &c.id).await.unwrap().as_ref(), Some(&c));
        let touched = s.touch_user("p", "alice", Some(&json!({"m": 1}))).await.unwrap();
        assert_eq!(s.user("p", "alice").await.unwrap().as_ref(), Some(&touched));
        assert_eq!(s.touch_user("p", "alice", None).await.unwrap().meta, json!({"m": 1}));
        assert_eq!(s.credentials("p", "alice", None).await.unwrap().len(), 1);
        assert_eq!(s.credentials("p", "alice", Some("slack")).await.unwrap().len(), 1);
        assert!(s.credentials("p", "alice", Some("jira")).await.unwrap().is_empty());
        // Bob cannot see, change or delete Alice's credential, even knowing its id.
        assert!(s.credential("p", "bob", &c.id).await.unwrap().is_none());
        assert!(
            s.update_credential("p", "bob", &c.id, CredentialStatus::Invalid, None, "x", None)
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.set_provider_data("p", "bob", &c.id, &json!({"x": 1})).await.unwrap().is_none());
        assert!(!s.delete_credential("p", "bob", &c.id).await.unwrap());
        assert!(s.credential("other-project", "alice", &c.id).await.unwrap().is_none());
        let set = s.set_provider_data("p", "alice", &c.id, &json!({"site": "eng"})).await.unwrap();
        let shown = s.credential("p", "alice", &c.id).await.unwrap().unwrap();
        assert_eq!(set.as_ref(), Some(&shown), "what the update returns is what is stored");
        assert_eq!(
            (shown.provider_data, shown.secret.as_str()),
            (json!({"site": "eng"}), "v1:sealed")
        );

        s.put_settings(scope("alice", SHARED, ""), None, Some(&json!({"channel": "C1"})))
            .await
            .unwrap();
        s.put_settings(scope("alice", SHARED, "wf1"), Some(true), None).await.unwrap();
        s.put_settings(scope("alice", SHARED, "wf1"), None, Some(&json!({"n": 2}))).await.unwrap();
        let settings = s.settings("p", "alice").await.unwrap();
        assert_eq!(settings.len(), 2);
        assert_eq!(settings[1].enabled, Some(true), "the toggle survives a values update");
        assert_eq!(settings[1].values, json!({"n": 2}));
        assert!(s.settings("p", "bob").await.unwrap().is_empty());

        assert_eq!(s.uninstall("p", "alice", "slack").await.unwrap(), 1);
        assert!(s.settings("p", "alice").await.unwrap().is_empty());
        assert!(s.credentials("p", "alice", None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn oauth_states_are_single_use_and_expire() {
        let (_dir, s) = store().await;
        let state = |name: &str, expires_at| OAuthState {
            state: name.into(),
            project_id: "p".into(),
            user_id: "alice".into(),
            integration: "slack".into(),
            sealed: "v1:x".into(),
            expires_at,
        };
        let fresh = state("fresh", now_ms() + 60_000);
        s.put_oauth_state(&fresh).await.unwrap();
        s.put_oauth_state(&state("stale", now_ms() - 1)).await.unwrap();
        assert_eq!(s.take_oauth_state("fresh").await.unwrap(), Some(fresh), "as it was written");
        assert!(s.take_oauth_state("fresh").await.unwrap().is_none(), "replay refused");
        assert!(s.take_oauth_state("stale").await.unwrap().is_none(), "expired refused");
        assert!(s.take_oauth_state("never").await.unwrap().is_none());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn database_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("para.db");
        let mode = |suffix: &str| {
            let file = format!("{}{suffix}", path.display());
            std::fs::metadata(file).unwrap().permissions().mode() & 0o777
        };
        let s = Store::open(&format!("sqlite://{}", path.display())).await.unwrap();
        s.touch_user("p", "ann", None).await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            assert_eq!(mode(suffix), 0o600, "para.db{suffix}");
        }
        drop(s);
        // A file an older version left world-readable is tightened when opened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _s = Store::open(&format!("sqlite://{}", path.display())).await.unwrap();
        assert_eq!(mode(""), 0o600);
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("sqlite:rel.db?mode=ro"), Some("rel.db".into()));
    }

    #[tokio::test]
    async fn admin_sessions_expire_end_and_belong_to_one_key_and_project() {
        let (_dir, s) = store().await;
        s.put_admin_session("p", "h1", "fp", now_ms() + 60_000).await.unwrap();
        s.put_admin_session("p", "old", "fp", now_ms() - 1).await.unwrap();
        assert!(s.admin_session("p", "h1", "fp").await.unwrap());
        assert!(!s.admin_session("p", "h1", "other-key").await.unwrap(), "a new admin key ends it");
        assert!(!s.admin_session("q", "h1", "fp").await.unwrap(), "another project's");
        assert!(!s.admin_session("p", "old", "fp").await.unwrap(), "expired");
        s.delete_admin_session("p", "h1").await.unwrap();
        assert!(!s.admin_session("p", "h1", "fp").await.unwrap(), "signed out");
    }

    #[tokio::test]
    async fn sessions_nonces_and_refresh_leases() {
        let (_dir, s) = store().await;
        s.start_oauth_session("p", "alice", "sess1").await.unwrap();
        let pending = s.oauth_session("p", "alice", "sess1").await.unwrap().unwrap();
        assert_eq!(pending.credential_id, None);
        assert!(s.oauth_session("p", "bob", "sess1").await.unwrap().is_none());
        s.finish_oauth_session("p", "alice", "sess1", Some("c1"), None).await.unwrap();
        let done = s.oauth_session("p", "alice", "sess1").await.unwrap().unwrap();
        assert_eq!(done.credential_id.as_deref(), Some("c1"));
        s.delete_oauth_session("p", "alice", "sess1").await.unwrap();
        assert!(s.oauth_session("p", "alice", "sess1").await.unwrap().is_none());

        s.put_oauth_nonce("n1", "p", "alice", now_ms() + 60_000).await.unwrap();
        s.put_oauth_nonce("n2", "p", "alice", now_ms() - 1).await.unwrap();
        assert_eq!(s.oauth_nonce("n1").await.unwrap(), Some(("p".into(), "alice".into())));
        assert_eq!(s.oauth_nonce("n2").await.unwrap(), None);

        let c = s
            .insert_credential(&NewCredential::new(
                "p",
                "alice",
                "x",
                CredentialStatus::Valid,
                "v1:s",
            ))
            .await
            .unwrap();
        assert!(s.try_lease_refresh(&c.id, now_ms() + 30_000).await.unwrap());
        assert!(!s.try_lease_refresh(&c.id, now_ms() + 30_000).await.unwrap(), "held");
        s.release_refresh(&c.id).await.unwrap();
        assert!(s.try_lease_refresh(&c.id, now_ms() - 1).await.unwrap());
        assert!(s.try_lease_refresh(&c.id, now_ms() + 1000).await.unwrap(), "expired lease");
    }

    #[tokio::test]
    async fn reopening_does_not_migrate_twice() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("para.db").display());
        Store::open(&url).await.unwrap().touch_user("p", "u", None).await.unwrap();
        let again = Store::open(&url).await.unwrap();
        assert!(again.user("p", "u").await.unwrap().is_some());
    }
}
