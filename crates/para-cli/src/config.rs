//! Every environment variable `para` reads, in one place: [`EnvVars`] names them (each with
//! what it does; `docs/configuration.md` is the same list for users), and [`Env`] reads the
//! environment once and turns the variables into the typed settings the library crates take
//! (`Limits`, `EngineConfig`, `CorsPolicy`…). No library crate reads the environment: a
//! setting reaches it through a constructor or a config struct, so a test can set it per
//! server instead of per process, and a misspelt value fails here, at start, naming the
//! variable, instead of being ignored deep inside.
//!
//! The variables that also have a flag (`PARA_PORT`, `PARA_HOST`, `PARA_DATABASE_URL`,
//! `PARA_PUBLIC_URL`, `PARA_PROJECT`, `PARA_LOG_FORMAT`) are read by clap (`cli.rs`, `env =`),
//! so `--help` shows them; they are named here too.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use para_auth::env_secrets::EnvSecrets;
use para_server::limits::{Limits, parse_duration};
use para_server::{CorsPolicy, TelemetryConfig};
use para_telemetry::traces::OtlpConfig;
use para_worker::alerts::AlertsConfig;
use para_worker::deliveries::TriggersApiConfig;
use para_worker::{EngineConfig, SandboxMemoryConfig};

/// The names of the environment variables `para` reads (in the spirit of uv's `EnvVars`).
pub struct EnvVars;

impl EnvVars {
    // Flags' variables (read by clap, `cli.rs`).
    /// `--port` of `para serve`/`para dev`.
    pub const PARA_PORT: &str = "PARA_PORT";
    /// `--host` of `para serve`/`para dev`.
    pub const PARA_HOST: &str = "PARA_HOST";
    /// `--database` of `para serve`/`dev`/`run`/`runs`.
    pub const PARA_DATABASE_URL: &str = "PARA_DATABASE_URL";
    /// `--public-url` of `para serve`/`para dev`.
    pub const PARA_PUBLIC_URL: &str = "PARA_PUBLIC_URL";
    /// `--project` of every command that works on a project.
    pub const PARA_PROJECT: &str = "PARA_PROJECT";
    /// `--log-format` of `para serve`/`dev`/`run`: `text` or `json`.
    pub const PARA_LOG_FORMAT: &str = "PARA_LOG_FORMAT";
    /// `--server` of `para push`/`releases`/`rollback`: the server's URL.
    pub const PARA_SERVER_URL: &str = "PARA_SERVER_URL";

    // Logging.
    /// Which log lines are written: a level (`info`) or `tracing` directives
    /// (`info,para_worker=debug`). `RUST_LOG` is not read.
    pub const PARA_LOG: &str = "PARA_LOG";

    // Keys and secrets.
    /// The key credentials and secrets are sealed with (base64 of 32 bytes); else
    /// `.para/secret.key`.
    pub const PARA_SECRET_KEY: &str = para_auth::secrets::SECRET_KEY_ENV;
    /// A PEM public key user tokens are also accepted from.
    pub const PARA_USER_TOKEN_PUBLIC_KEY: &str = para_auth::keys::PUBLIC_KEY_ENV;
    /// The `aud` user tokens must carry; unset: any.
    pub const PARA_TOKEN_AUDIENCE: &str = "PARA_TOKEN_AUDIENCE";
    /// The key of the dashboard and the admin API; unset: they are off.
    pub const PARA_ADMIN_KEY: &str = "PARA_ADMIN_KEY";
    /// The key of the deploy API (`/deploy/`): the server's, and the one `para push`,
    /// `para releases` and `para rollback` send.
    pub const PARA_DEPLOY_KEY: &str = "PARA_DEPLOY_KEY";
    /// `PARA_SECRET_<NAME>`: the value of environment secret `<NAME>` (wins over
    /// `.para/secrets.json`).
    pub const SECRETS_PREFIX: &str = EnvSecrets::PREFIX;
    /// `PARA_OAUTH_<KEY>_CLIENT_ID`, `_CLIENT_SECRET`, `_WEBHOOK_SECRET`, `_AUTHORIZE_URL`, `_TOKEN_URL`,
    /// `_API_BASE_URL`: the company's OAuth app and endpoint overrides of integration `<KEY>`.
    pub const OAUTH_PREFIX: &str = "PARA_OAUTH_";

    // The server's limits.
    /// Connections open at once, in all.
    pub const PARA_MAX_CONNECTIONS: &str = "PARA_MAX_CONNECTIONS";
    /// Connections open at once from one peer address.
    pub const PARA_MAX_CONNECTIONS_PER_PEER: &str = "PARA_MAX_CONNECTIONS_PER_PEER";
    /// The minimum rate of a request body, bytes per second.
    pub const PARA_BODY_MIN_RATE: &str = "PARA_BODY_MIN_RATE";
    /// How long a body may take before the minimum rate applies.
    pub const PARA_BODY_GRACE_SECONDS: &str = "PARA_BODY_GRACE_SECONDS";
    /// `token` or `stored`: which user metadata workflows' permissions read.
    pub const PARA_PERMISSIONS_METADATA: &str = "PARA_PERMISSIONS_METADATA";
    /// The longest user-token lifetime accepted (`30d`, `12h`, `none`).
    pub const PARA_MAX_TOKEN_LIFETIME: &str = "PARA_MAX_TOKEN_LIFETIME";
    /// Configurations one credential may have.
    pub const PARA_MAX_CONFIGURATIONS_PER_CREDENTIAL: &str =
        "PARA_MAX_CONFIGURATIONS_PER_CREDENTIAL";
    /// What the proxy's bodies may hold at once, in bytes.
    pub const PARA_PROXY_MAX_INFLIGHT_BYTES: &str = "PARA_PROXY_MAX_INFLIGHT_BYTES";
    /// The largest answer the proxy wraps, in bytes.
    pub const PARA_PROXY_MAX_WRAPPED_BYTES: &str = "PARA_PROXY_MAX_WRAPPED_BYTES";
    /// Origins allowed CORS with credentials (comma-separated; `*`: others without).
    pub const PARA_CORS_ORIGINS: &str = "PARA_CORS_ORIGINS";

    // The Triggers API.
    /// The company's webhook URL Triggers API events are delivered to (a subscription's
    /// `webhookOverride.url` wins).
    pub const PARA_TRIGGERS_WEBHOOK_URL: &str = "PARA_TRIGGERS_WEBHOOK_URL";
    /// The key deliveries are signed with (`x-paragon-signature: v1=<hex HMAC-SHA256>`).
    pub const PARA_TRIGGERS_SIGNING_SECRET: &str = "PARA_TRIGGERS_SIGNING_SECRET";

    // Metrics and traces.
    /// The key `/metrics` on the main listener answers (`Authorization: Bearer <key>`).
    pub const PARA_METRICS_KEY: &str = "PARA_METRICS_KEY";
    /// An `IP:port` to serve `/metrics` on without a key (a private network).
    pub const PARA_METRICS_ADDR: &str = "PARA_METRICS_ADDR";
    /// The OTLP/HTTP collector's base URL (traces are POSTed to `<url>/v1/traces`).
    pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// The full URL traces are POSTed to (wins over the base URL).
    pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
    /// Headers of every export request (`key=value,…`, values percent-encoded).
    pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
    /// Headers of trace export requests (added after the general ones).
    pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
    /// `http/json` only (the default here); anything else is an error.
    pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    /// The traces' protocol (wins over the general one).
    pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
    /// An export request's timeout, in ms.
    pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
    /// The resource's `service.name` (default `para`).
    pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
    /// Further resource attributes (`key=value,…`).
    pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
    /// `otlp` (the default) or `none`.
    pub const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
    /// `true`: no traces.
    pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";

    // Alerts to the company (docs/alerts.md).
    /// The company's URL alerts are POSTed to (besides the dashboard's destinations).
    pub const PARA_ALERTS_WEBHOOK_URL: &str = "PARA_ALERTS_WEBHOOK_URL";
    /// The key alerts to that URL are signed with (`x-para-signature: t=…,v1=…`).
    pub const PARA_ALERTS_SIGNING_SECRET: &str = "PARA_ALERTS_SIGNING_SECRET";
    /// The event types sent to that URL, comma-separated; unset: all.
    pub const PARA_ALERTS_EVENTS: &str = "PARA_ALERTS_EVENTS";

    // The engine.
    /// How long a run's lease lasts without renewal, in ms.
    pub const PARA_ENGINE_LEASE_MS: &str = "PARA_ENGINE_LEASE_MS";
    /// How often the poller looks for due runs, in ms.
    pub const PARA_ENGINE_POLL_MS: &str = "PARA_ENGINE_POLL_MS";
    /// Runs executing at once in this process.
    pub const PARA_ENGINE_CONCURRENCY: &str = "PARA_ENGINE_CONCURRENCY";
    /// Runs of one user executing at once in this process.
    pub const PARA_ENGINE_USER_CONCURRENCY: &str = "PARA_ENGINE_USER_CONCURRENCY";
    /// The waits before a failed step's retries, in ms, comma-separated.
    pub const PARA_ENGINE_RETRY_DELAYS_MS: &str = "PARA_ENGINE_RETRY_DELAYS_MS";
    /// Branches of a fan-out executing at once.
    pub const PARA_ENGINE_FAN_OUT: &str = "PARA_ENGINE_FAN_OUT";
    /// A function step's time limit, in ms.
    pub const PARA_ENGINE_FUNCTION_TIMEOUT_MS: &str = "PARA_ENGINE_FUNCTION_TIMEOUT_MS";
    /// A function step's memory limit, in MiB.
    pub const PARA_ENGINE_FUNCTION_MEMORY_MB: &str = "PARA_ENGINE_FUNCTION_MEMORY_MB";
    /// The timeout of one HTTP request of a step, in ms.
    pub const PARA_ENGINE_REQUEST_TIMEOUT_MS: &str = "PARA_ENGINE_REQUEST_TIMEOUT_MS";
    /// Poll polling triggers this often (ms) instead of the catalog's interval.
    pub const PARA_ENGINE_TRIGGER_POLL_MS: &str = "PARA_ENGINE_TRIGGER_POLL_MS";
    /// What all function steps' runtimes may hold together, in MiB.
    pub const PARA_FUNCTION_MEMORY_BUDGET_MB: &str = "PARA_FUNCTION_MEMORY_BUDGET_MB";
    /// How long an allocation past that budget waits, in ms.
    pub const PARA_FUNCTION_MEMORY_WAIT_MS: &str = "PARA_FUNCTION_MEMORY_WAIT_MS";
    /// A function runtime holding more than this (MiB) after a call is collected or dropped.
    pub const PARA_FUNCTION_MEMORY_RETAIN_MB: &str = "PARA_FUNCTION_MEMORY_RETAIN_MB";

    // The compiler and the command line.
    /// `off`: `para build` evaluates every file with the engine (no direct recording).
    pub const PARA_DIRECT: &str = "PARA_DIRECT";
    /// Set: `para build` prints why each file goes to the engine.
    pub const PARA_TRACE_DIRECT: &str = "PARA_TRACE_DIRECT";
    /// The `tsc` binary `para build --typecheck` runs when the project has none.
    pub const PARA_TSC: &str = "PARA_TSC";

    // Not ours to rename.
    /// Set and not empty: no colour in `error:`/`hint:` labels.
    pub const NO_COLOR: &str = "NO_COLOR";
    /// Where `tsc` is looked for last.
    pub const PATH: &str = "PATH";
    /// The author `para push` records when `git config user.name` has none.
    pub const USER: &str = "USER";
    /// The outgoing proxy variables reqwest honours (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`,
    /// and lower case).
    pub const PROXY_VARS: [&str; 6] =
        ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];
}

/// A variable with a value it cannot take: the message names the variable and what it expects.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where every variable is described.
pub const DOCS: &str = "every variable is described in docs/configuration.md";

/// The environment, read once.
pub struct Env {
    vars: BTreeMap<String, String>,
    path: Option<OsString>,
}

/// The process's environment (read on first use, then kept: `para` never changes it).
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        Env::from_vars(
            std::env::vars_os()
                .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())),
            std::env::var_os(EnvVars::PATH),
        )
    })
}

impl Env {
    /// An environment of `vars` (tests).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
        path: Option<OsString>,
    ) -> Env {
        Env { vars: vars.into_iter().collect(), path }
    }

    /// A variable's value, trimmed; unset, empty and blank are all `None`.
    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// A whole number, or an error naming the variable.
    fn number<T: std::str::FromStr>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|v| {
                v.parse::<T>().map_err(|_| ConfigError(format!("{name} must be {what}, not `{v}`")))
            })
            .transpose()
    }

    /// `PARA_TOKEN_AUDIENCE`.
    pub fn token_audience(&self) -> Option<String> {
        self.get(EnvVars::PARA_TOKEN_AUDIENCE).map(str::to_string)
    }

    /// `PARA_ADMIN_KEY` (as given, not trimmed: a key is compared byte for byte).
    pub fn admin_key(&self) -> Option<String> {
        self.vars.get(EnvVars::PARA_ADMIN_KEY).filter(|k| !k.is_empty()).cloned()
    }

    /// `PARA_DEPLOY_KEY` (as given, not trimmed: a key is compared byte for byte).
    pub fn deploy_key(&self) -> Option<String> {
        self.vars.get(EnvVars::PARA_DEPLOY_KEY).filter(|k| !k.is_empty()).cloned()
    }

    /// `USER`: the login name, for `para push`'s author.
    pub fn user(&self) -> Option<&str> {
        self.get(EnvVars::USER)
    }

    /// `PARA_USER_TOKEN_PUBLIC_KEY`.
    pub fn user_token_public_key(&self) -> Option<&str> {
        self.get(EnvVars::PARA_USER_TOKEN_PUBLIC_KEY)
    }

    /// `PARA_SECRET_KEY`.
    pub fn secret_key(&self) -> Option<&str> {
        self.get(EnvVars::PARA_SECRET_KEY)
    }

    /// `PARA_SECRET_<NAME>` variables.
    pub fn env_secrets(&self) -> EnvSecrets {
        EnvSecrets::from_vars(
            self.vars
                .range(EnvVars::SECRETS_PREFIX.to_string()..)
                .take_while(|(k, _)| k.starts_with(EnvVars::SECRETS_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone())),
        )
    }

    /// `PARA_OAUTH_*` variables, for `para_connect::clients::load_oauth_clients_with`.
    pub fn oauth_vars(&self) -> Vec<(String, String)> {
        self.vars
            .range(EnvVars::OAUTH_PREFIX.to_string()..)
            .take_while(|(k, _)| k.starts_with(EnvVars::OAUTH_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether an outgoing proxy is configured (any of [`EnvVars::PROXY_VARS`] set, not empty).
    pub fn outgoing_proxy(&self) -> bool {
        EnvVars::PROXY_VARS.iter().any(|k| self.vars.get(*k).is_some_and(|v| !v.is_empty()))
    }

    /// `PARA_TSC`, when it names a file.
    pub fn tsc(&self) -> Option<PathBuf> {
        self.get(EnvVars::PARA_TSC).map(PathBuf::from).filter(|p| p.is_file())
    }

    /// `PATH`, as the operating system gave it.
    pub fn path(&self) -> Option<&OsString> {
        self.path.as_ref()
    }

    /// `NO_COLOR` set and not empty.
    pub fn no_color(&self) -> bool {
        self.vars.get(EnvVars::NO_COLOR).is_some_and(|v| !v.is_empty())
    }

    /// `PARA_LOG`: the log filter; `None`: the default (`info`).
    pub fn log_filter(&self) -> Option<&str> {
        self.get(EnvVars::PARA_LOG)
    }

    /// `PARA_DIRECT` (`on`, the default, or `off`) and `PARA_TRACE_DIRECT` (set: on).
    pub fn compiler(&self) -> Result<(bool, bool), ConfigError> {
        let direct = match self.get(EnvVars::PARA_DIRECT) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError(format!(
                    "PARA_DIRECT must be `on` or `off` (every file evaluated by the engine), not `{other}`"
                )));
            }
        };
        Ok((direct, self.get(EnvVars::PARA_TRACE_DIRECT).is_some()))
    }

    /// The server's limits: the defaults, each overridden by its variable.
    pub fn limits(&self) -> Result<Limits, ConfigError> {
        let mut limits = Limits::default();
        let whole = "a whole number";
        if let Some(n) = self.number::<usize>(EnvVars::PARA_MAX_CONNECTIONS, whole)? {
            limits.max_connections = n.max(1);
            limits.max_connections_per_peer =
                limits.max_connections_per_peer.min(limits.max_connections);
        }
        if let Some(n) = self.number::<usize>(EnvVars::PARA_MAX_CONNECTIONS_PER_PEER, whole)? {
            limits.max_connections_per_peer = n.max(1);
        }
        if let Some(n) =
            self.number(EnvVars::PARA_BODY_MIN_RATE, "a whole number of bytes per second")?
        {
            limits.body_min_rate = n;
        }
        if let Some(n) =
            self.number(EnvVars::PARA_BODY_GRACE_SECONDS, "a whole number of seconds")?
        {
            limits.body_grace = Duration::from_secs(n);
        }
        if let Some(v) = self.get(EnvVars::PARA_PERMISSIONS_METADATA) {
            limits.permissions_from_token_only = match v {
                "token" => true,
                "stored" => false,
                other => {
                    return Err(ConfigError(format!(
                        "PARA_PERMISSIONS_METADATA must be `token` (only the signed token's metadata) or `stored` (also what PATCH /sdk/me stored), not `{other}`"
                    )));
                }
            };
        }
        if let Some(v) = self.get(EnvVars::PARA_MAX_TOKEN_LIFETIME) {
            limits.max_token_lifetime = match v {
                "none" | "0" => None,
                text => Some(parse_duration(text).ok_or_else(|| {
                    ConfigError(format!("PARA_MAX_TOKEN_LIFETIME must be a duration like 30d, 12h or 900s (or `none`), not `{text}`"))
                })?),
            };
        }
        if let Some(n) = self.number(EnvVars::PARA_MAX_CONFIGURATIONS_PER_CREDENTIAL, whole)? {
            limits.max_configurations_per_credential = n;
        }
        let bytes = "a whole number of bytes";
        if let Some(n) = self.number(EnvVars::PARA_PROXY_MAX_INFLIGHT_BYTES, bytes)? {
            limits.proxy_max_inflight_bytes = n;
        }
        if let Some(n) = self.number(EnvVars::PARA_PROXY_MAX_WRAPPED_BYTES, bytes)? {
            limits.proxy_max_wrapped_bytes = n;
        }
        Ok(limits)
    }

    /// `PARA_TRIGGERS_WEBHOOK_URL` (an http(s) URL) and `PARA_TRIGGERS_SIGNING_SECRET` (as
    /// given, not trimmed: it is a key), with the default retry schedule.
    pub fn triggers_api(&self) -> Result<TriggersApiConfig, ConfigError> {
        let webhook_url = self.get(EnvVars::PARA_TRIGGERS_WEBHOOK_URL).map(str::to_string);
        if let Some(url) = &webhook_url {
            let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
            if host.is_none_or(|h| h.is_empty() || h.contains(char::is_whitespace)) {
                return Err(ConfigError(format!(
                    "PARA_TRIGGERS_WEBHOOK_URL must be an http(s) URL like https://example.com/paragon-events, not `{url}`"
                )));
            }
        }
        let signing_secret =
            self.vars.get(EnvVars::PARA_TRIGGERS_SIGNING_SECRET).filter(|k| !k.is_empty()).cloned();
        Ok(TriggersApiConfig { webhook_url, signing_secret, ..TriggersApiConfig::default() })
    }

    /// `PARA_METRICS_KEY` (as given: a key), `PARA_METRICS_ADDR` and the traces' `OTEL_*`.
    pub fn telemetry(&self) -> Result<TelemetryConfig, ConfigError> {
        let metrics_key =
            self.vars.get(EnvVars::PARA_METRICS_KEY).filter(|k| !k.is_empty()).cloned();
        let metrics_addr = self
            .get(EnvVars::PARA_METRICS_ADDR)
            .map(|v| {
                v.parse::<std::net::SocketAddr>().map_err(|_| {
                    ConfigError(format!(
                        "PARA_METRICS_ADDR must be an IP address and port like 10.0.0.5:9464 or 0.0.0.0:9464, not `{v}`"
                    ))
                })
            })
            .transpose()?;
        Ok(TelemetryConfig { metrics_key, metrics_addr, traces: self.traces()? })
    }

    /// Where runs' traces go: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is, or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; `None` when neither is set, or
    /// `OTEL_TRACES_EXPORTER=none` / `OTEL_SDK_DISABLED=true`.
    pub fn traces(&self) -> Result<Option<OtlpConfig>, ConfigError> {
        if self.get(EnvVars::OTEL_SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match self.get(EnvVars::OTEL_TRACES_EXPORTER) {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(ConfigError(format!(
                    "OTEL_TRACES_EXPORTER must be `otlp` or `none` (para sends traces over OTLP/HTTP only), not `{other}`"
                )));
            }
        }
        let url = match (
            self.get(EnvVars::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
            self.get(EnvVars::OTEL_EXPORTER_OTLP_ENDPOINT),
        ) {
            (Some(full), _) => (EnvVars::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, full.to_string()),
            (None, Some(base)) => (
                EnvVars::OTEL_EXPORTER_OTLP_ENDPOINT,
                format!("{}/v1/traces", base.trim_end_matches('/')),
            ),
            (None, None) => return Ok(None),
        };
        let (name, url) = url;
        let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        if host
            .is_none_or(|h| h.is_empty() || h.starts_with('/') || h.contains(char::is_whitespace))
        {
            return Err(ConfigError(format!(
                "{name} must be an http(s) URL like http://collector:4318, not `{url}`"
            )));
        }
        for name in
            [EnvVars::OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, EnvVars::OTEL_EXPORTER_OTLP_PROTOCOL]
        {
            match self.get(name) {
                None | Some("http/json") => {}
                Some(other) => {
                    return Err(ConfigError(format!(
                        "{name} must be `http/json` (para sends OTLP over HTTP as JSON, which collectors accept on port 4318), not `{other}`"
                    )));
                }
            }
        }
        let mut config = OtlpConfig::new(url);
        for name in
            [EnvVars::OTEL_EXPORTER_OTLP_HEADERS, EnvVars::OTEL_EXPORTER_OTLP_TRACES_HEADERS]
        {
            if let Some(list) = self.vars.get(name) {
                config.headers.extend(key_values(name, list)?);
            }
        }
        if let Some(list) = self.vars.get(EnvVars::OTEL_RESOURCE_ATTRIBUTES) {
            config.resource = key_values(EnvVars::OTEL_RESOURCE_ATTRIBUTES, list)?;
        }
        if let Some(name) = self.get(EnvVars::OTEL_SERVICE_NAME) {
            config.service_name = name.to_string();
        } else if let Some((_, name)) = config.resource.iter().find(|(k, _)| k == "service.name") {
            config.service_name = name.clone();
        }
        if let Some(ms) = self
            .number::<u64>(EnvVars::OTEL_EXPORTER_OTLP_TIMEOUT, "a whole number of milliseconds")?
        {
            config.timeout = Duration::from_millis(ms.max(1));
        }
        Ok(Some(config))
    }

    /// `PARA_ALERTS_WEBHOOK_URL` (an http(s) URL), `PARA_ALERTS_SIGNING_SECRET` (required
    /// with it; as given, not trimmed: it is a key) and `PARA_ALERTS_EVENTS` (known types,
    /// comma-separated), with the default retry schedule.
    pub fn alerts(&self) -> Result<AlertsConfig, ConfigError> {
        let webhook_url = self.get(EnvVars::PARA_ALERTS_WEBHOOK_URL).map(str::to_string);
        let signing_secret =
            self.vars.get(EnvVars::PARA_ALERTS_SIGNING_SECRET).filter(|k| !k.is_empty()).cloned();
        let events_text = self.get(EnvVars::PARA_ALERTS_EVENTS).unwrap_or("");
        let events = match &webhook_url {
            Some(url) => para_worker::alerts::parse_destination(url, events_text).map_err(|e| {
                let name = if e.starts_with("the URL") {
                    EnvVars::PARA_ALERTS_WEBHOOK_URL
                } else {
                    EnvVars::PARA_ALERTS_EVENTS
                };
                ConfigError(format!("{name}: {e}"))
            })?,
            None if !events_text.is_empty() => {
                return Err(ConfigError(
                    "PARA_ALERTS_EVENTS is set but PARA_ALERTS_WEBHOOK_URL is not: set the URL the events go to".into(),
                ));
            }
            None => Vec::new(),
        };
        if webhook_url.is_some() && signing_secret.is_none() {
            return Err(ConfigError(
                "PARA_ALERTS_WEBHOOK_URL is set but PARA_ALERTS_SIGNING_SECRET is not: every alert is signed; set a long random secret and give it to the receiver".into(),
            ));
        }
        Ok(AlertsConfig { webhook_url, signing_secret, events, ..AlertsConfig::default() })
    }

    /// `PARA_CORS_ORIGINS`.
    pub fn cors(&self) -> Result<CorsPolicy, ConfigError> {
        CorsPolicy::parse(self.get(EnvVars::PARA_CORS_ORIGINS))
            .map_err(|e| ConfigError(format!("PARA_CORS_ORIGINS: {e}")))
    }

    /// The engine's tunables: the defaults, each overridden by its `PARA_ENGINE_*` variable.
    pub fn engine(&self) -> Result<EngineConfig, ConfigError> {
        let mut config = EngineConfig::default();
        let ms = "a whole number of milliseconds";
        let count = "a whole number, at least 1";
        if let Some(list) = self.get(EnvVars::PARA_ENGINE_RETRY_DELAYS_MS) {
            config.options.retry_delays_ms = list
                .split(',')
                .map(|v| v.trim().parse().map_err(|_| v.trim()))
                .collect::<Result<_, _>>()
                .map_err(|bad| {
                    ConfigError(format!(
                        "PARA_ENGINE_RETRY_DELAYS_MS must be whole numbers of milliseconds separated by commas (like 1000,5000,30000), not `{bad}` in `{list}`"
                    ))
                })?;
        }
        let at_least_one = |name: &str, n: usize| {
            if n == 0 {
                Err(ConfigError(format!("{name} must be {count}, not `0`")))
            } else {
                Ok(n)
            }
        };
        if let Some(n) = self.number(EnvVars::PARA_ENGINE_FAN_OUT, count)? {
            config.options.fan_out_parallelism = at_least_one(EnvVars::PARA_ENGINE_FAN_OUT, n)?;
        }
        if let Some(n) = self.number(EnvVars::PARA_ENGINE_FUNCTION_TIMEOUT_MS, ms)? {
            config.function_limits.time = Duration::from_millis(n);
        }
        if let Some(mb) =
            self.number::<usize>(EnvVars::PARA_ENGINE_FUNCTION_MEMORY_MB, "a whole number of MiB")?
        {
            config.function_limits.memory_bytes = mb << 20;
        }
        if let Some(n) = self.number(EnvVars::PARA_ENGINE_LEASE_MS, ms)? {
            config.lease_ms = n;
        }
        if let Some(n) = self.number(EnvVars::PARA_ENGINE_POLL_MS, ms)? {
            config.poll_ms = n;
        }
        if let Some(n) = self.number(EnvVars::PARA_ENGINE_CONCURRENCY, count)? {
            config.concurrency = at_least_one(EnvVars::PARA_ENGINE_CONCURRENCY, n)?;
        }
        if let Some(n) = self.number(EnvVars::PARA_ENGINE_USER_CONCURRENCY, count)? {
            config.per_user = at_least_one(EnvVars::PARA_ENGINE_USER_CONCURRENCY, n)?;
        }
        if let Some(n) = self.number(EnvVars::PARA_ENGINE_REQUEST_TIMEOUT_MS, ms)? {
            config.request_timeout = Duration::from_millis(n);
        }
        config.trigger_poll_ms = self.number(EnvVars::PARA_ENGINE_TRIGGER_POLL_MS, ms)?;
        Ok(config)
    }

    /// Function steps' process-wide memory settings.
    pub fn function_memory(&self) -> Result<SandboxMemoryConfig, ConfigError> {
        fn mib(mb: u64) -> usize {
            usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
        }
        let mut config = SandboxMemoryConfig::default();
        let mb = "a whole number of MiB";
        if let Some(n) = self.number::<u64>(EnvVars::PARA_FUNCTION_MEMORY_BUDGET_MB, mb)? {
            if n == 0 {
                return Err(ConfigError(
                    "PARA_FUNCTION_MEMORY_BUDGET_MB must be at least 1 (MiB), not `0`".into(),
                ));
            }
            config.budget_bytes = mib(n);
        }
        if let Some(n) =
            self.number(EnvVars::PARA_FUNCTION_MEMORY_WAIT_MS, "a whole number of milliseconds")?
        {
            config.wait = Duration::from_millis(n);
        }
        if let Some(n) = self.number::<u64>(EnvVars::PARA_FUNCTION_MEMORY_RETAIN_MB, mb)? {
            config.retain_bytes = mib(n);
        }
        Ok(config)
    }
}

/// `key=value,…` as the OpenTelemetry variables write it (values percent-encoded), or an error
/// naming the variable (never quoting the value: a header may hold an API key).
fn key_values(name: &str, list: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut pairs = Vec::new();
    for (i, item) in list.split(',').enumerate().filter(|(_, item)| !item.trim().is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(ConfigError(format!(
                "{name} must be key=value pairs separated by commas; entry {} has no `=`",
                i + 1
            )));
        };
        let (key, value) = (percent_decoded(key.trim()), percent_decoded(value.trim()));
        if key.is_empty() {
            return Err(ConfigError(format!("{name}: entry {} has an empty key", i + 1)));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// `%XX` escapes decoded (an invalid one is kept as written).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())), None)
    }

    #[test]
    fn unset_and_blank_give_the_defaults() {
        for e in [env(&[]), env(&[("PARA_ENGINE_POLL_MS", " "), ("PARA_MAX_CONNECTIONS", "")])] {
            assert_eq!(e.engine().unwrap().poll_ms, EngineConfig::default().poll_ms);
            assert_eq!(e.limits().unwrap().max_connections, Limits::default().max_connections);
            assert_eq!(e.function_memory().unwrap(), SandboxMemoryConfig::default());
            assert_eq!(e.compiler().unwrap(), (true, false));
        }
    }

    #[test]
    fn metrics_and_traces_are_read() {
        assert_eq!(env(&[]).telemetry().unwrap().traces, None);
        let e = env(&[
            ("PARA_METRICS_KEY", "k 1"),
            ("PARA_METRICS_ADDR", "0.0.0.0:9464"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=a%3Db, x-team = ops"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ]);
        let t = e.telemetry().unwrap();
        assert_eq!(t.metrics_key.as_deref(), Some("k 1"));
        assert_eq!(t.metrics_addr, Some("0.0.0.0:9464".parse().unwrap()));
        let traces = t.traces.unwrap();
        assert_eq!(traces.traces_url, "http://collector:4318/v1/traces");
        assert_eq!(
            traces.headers,
            [("x-api-key".to_string(), "a=b".to_string()), ("x-team".into(), "ops".into())]
        );
        assert_eq!(traces.service_name, "para");
        assert_eq!(traces.resource, [("deployment.environment".into(), "prod".into())]);
        assert_eq!(traces.timeout, Duration::from_millis(500));
        let full = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c.example/otlp/traces"),
            ("OTEL_SERVICE_NAME", "para-eu"),
        ]);
        let traces = full.traces().unwrap().unwrap();
        assert_eq!(
            (traces.traces_url.as_str(), traces.service_name.as_str()),
            ("https://c.example/otlp/traces", "para-eu")
        );
        let off =
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "true")]);
        assert_eq!(off.traces().unwrap(), None);
    }

    #[test]
    fn values_are_read_into_the_settings() {
        let e = env(&[
            ("PARA_ENGINE_RETRY_DELAYS_MS", "10, 20,30"),
            ("PARA_ENGINE_POLL_MS", "100"),
            ("PARA_PROXY_MAX_WRAPPED_BYTES", "1000"),
            ("PARA_MAX_TOKEN_LIFETIME", "none"),
            ("PARA_FUNCTION_MEMORY_BUDGET_MB", "2"),
            ("PARA_DIRECT", "off"),
            ("PARA_TRACE_DIRECT", "1"),
            ("PARA_SECRET_TASKFLOW", "tf"),
            ("PARA_OAUTH_SLACK_CLIENT_ID", "id"),
            ("HTTPS_PROXY", "http://proxy:3128"),
        ]);
        let engine = e.engine().unwrap();
        assert_eq!((engine.options.retry_delays_ms, engine.poll_ms), (vec![10, 20, 30], 100));
        let limits = e.limits().unwrap();
        assert_eq!((limits.proxy_max_wrapped_bytes, limits.max_token_lifetime), (1000, None));
        assert_eq!(e.function_memory().unwrap().budget_bytes, 2 << 20);
        assert_eq!(e.compiler().unwrap(), (false, true));
        assert_eq!(e.env_secrets().get("TASKFLOW"), Some("tf"));
        assert_eq!(e.oauth_vars(), [("PARA_OAUTH_SLACK_CLIENT_ID".into(), "id".into())]);
        assert!(e.outgoing_proxy());
        assert!(!env(&[("HTTPS_PROXY", "")]).outgoing_proxy());
    }

    #[test]
    fn alerts_need_a_url_with_a_secret_and_known_event_types() {
        assert_eq!(env(&[]).alerts().unwrap().webhook_url, None);
        let url = ("PARA_ALERTS_WEBHOOK_URL", "https://example.com/alerts");
        let secret = ("PARA_ALERTS_SIGNING_SECRET", " key ");
        let events = ("PARA_ALERTS_EVENTS", "credential.invalid, workflow.run.failed");
        let config = env(&[url, secret, events]).alerts().unwrap();
        assert_eq!(config.webhook_url.as_deref(), Some("https://example.com/alerts"));
        assert_eq!(config.signing_secret.as_deref(), Some(" key "), "a key is taken as given");
        assert_eq!(config.events, ["credential.invalid", "workflow.run.failed"]);
        for (vars, says) in [
            (vec![url], "PARA_ALERTS_SIGNING_SECRET is not"),
            (vec![("PARA_ALERTS_WEBHOOK_URL", "example.com"), secret], "PARA_ALERTS_WEBHOOK_URL:"),
            (
                vec![url, secret, ("PARA_ALERTS_EVENTS", "run.failed")],
                "PARA_ALERTS_EVENTS: `run.failed`",
            ),
            (vec![events], "PARA_ALERTS_WEBHOOK_URL is not"),
        ] {
            let error = env(&vars).alerts().unwrap_err().0;
            assert!(error.contains(says), "{error}");
        }
    }

    /// A value a setting cannot take is an error naming the variable and what it expects,
    /// never silently the default.
    #[test]
    fn bad_values_name_the_variable() {
        type Read = fn(&Env) -> Option<ConfigError>;
        let cases: [(&str, &str, Read); 13] = [
            ("PARA_METRICS_ADDR", "metrics.internal", |e| e.telemetry().err()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", |e| e.traces().err()),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc", |e| e.traces().err()),
            ("OTEL_TRACES_EXPORTER", "zipkin", |e| e.traces().err()),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key", |e| e.traces().err()),
            ("PARA_ENGINE_POLL_MS", "fast", |e| e.engine().err()),
            ("PARA_ENGINE_RETRY_DELAYS_MS", "10,x", |e| e.engine().err()),
            ("PARA_ENGINE_CONCURRENCY", "0", |e| e.engine().err()),
            ("PARA_PROXY_MAX_INFLIGHT_BYTES", "1MB", |e| e.limits().err()),
            ("PARA_PERMISSIONS_METADATA", "yes", |e| e.limits().err()),
            ("PARA_FUNCTION_MEMORY_BUDGET_MB", "0", |e| e.function_memory().err()),
            ("PARA_CORS_ORIGINS", "app.example", |e| e.cors().err()),
            ("PARA_DIRECT", "no", |e| e.compiler().err()),
        ];
        for (name, value, read) in cases {
            // With a collector set, so that the trace settings are read at all.
            let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), (name, value)];
            let err = read(&env(&vars)).unwrap_or_else(|| panic!("{name}={value}"));
            assert!(err.0.contains(name), "{name}: {err}");
        }
    }
}
