//! The one way a request is sent with a user's credential: the proxy (the SDK's `request()`),
//! the engine's request steps and actions, the connection test and account lookup, and the
//! choices of a User Setting all go through [`Connect::send`].
//!
//! What it guarantees, whoever calls it:
//! - **Path guard.** A caller's path is a [`Destination::below`] the integration's API base:
//!   absolute URLs, `..` segments (also percent-encoded), backslashes and encoded slashes are
//!   refused before anything is sent. The target is then the base's path + the checked path,
//!   encoded as a URL parser would (a test compares the two for every character); for an
//!   unusual base (not in its parsed form, or with a query, fragment or user info) the URL is
//!   joined, parsed and checked to have the base's scheme, host, port and path prefix. Only the
//!   integration's own settings (its test endpoint, its account lookup) may name a whole URL.
//! - **The credential applied.** The connector's headers and query parameters, rendered once
//!   per credential ([`Prepared`], cached for a burst of requests).
//! - **One refresh after a 401.** A stored credential that can be refreshed is, once (exactly
//!   once across processes, see `refresh.rs`), and the request is sent again.
//! - **429.** An answer asking to wait at most [`Outgoing::wait_429`] (`Retry-After` in
//!   seconds) is waited for and the request sent once more; otherwise the 429 is the answer
//!   (the engine then waits durably, the SDK's caller decides).

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use para_store::{Credential, now_ms};
use para_upstream as upstream;
use para_upstream::Answer;

use crate::connector::{Connector, Material};
use crate::{Connect, Error, Kind, refresh};

/// Whose credential a request is sent with.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    pub user_id: &'a str,
    pub integration: &'a str,
    /// The credential the caller names (`X-Paragon-Credential`, a run's account); `None`: the
    /// user's newest valid one.
    pub credential_id: Option<&'a str>,
    /// Refuse a named credential that is not VALID (a run: the user must reconnect) instead of
    /// trying it (the proxy: a refresh may still revive it).
    pub require_valid: bool,
}

/// Where a request goes: a path below the integration's API base, or (the integration's own
/// settings only) a whole URL.
#[derive(Debug, Clone)]
pub struct Destination<'a>(Dest<'a>);

#[derive(Debug, Clone)]
enum Dest<'a> {
    Below(&'a str),
    Configured(Box<url::Url>),
}

impl<'a> Destination<'a> {
    /// `path` below the API base; refused (a 400, code `proxy_path`) when it could leave it.
    pub fn below(path: &'a str) -> Result<Destination<'a>, Error> {
        safe_path(path).map(|p| Destination(Dest::Below(p))).map_err(path_refused)
    }

    /// A URL the integration's settings name (test endpoint, account lookup).
    pub(crate) fn configured(url: url::Url) -> Destination<'static> {
        Destination(Dest::Configured(Box::new(url)))
    }
}

/// A request for [`Connect::send`].
pub struct Outgoing<'a> {
    pub method: Method,
    pub destination: Destination<'a>,
    /// The query, encoded, sent as it is (a [`Destination::below`] only).
    pub query: Option<&'a str>,
    /// The caller's headers; the credential's replace those of the same name, `Host` is set,
    /// and a `User-Agent` added when there is none.
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Which of the answer's headers to keep.
    pub keep: fn(&HeaderName) -> bool,
    /// The longest `Retry-After` of a 429 waited for before sending once more (zero: the 429
    /// is the answer).
    pub wait_429: Duration,
}

/// Keeps every header of an answer.
pub fn every_header(_: &HeaderName) -> bool {
    true
}

/// Keeps only `Content-Type` (an answer read as JSON or wrapped needs no other).
pub fn is_content_type(name: &HeaderName) -> bool {
    name == header::CONTENT_TYPE
}

/// The most of an answer's body read whole by [`read_body`]'s callers here and in the
/// engine: 16 MiB.
pub const MAX_READ: usize = 16 * 1024 * 1024;

/// An answer's body read whole, at most `limit` bytes (else why not): an [`Answer`] of
/// [`Connect::send`], or another client's.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, String>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt as _;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(format!("the answer is larger than {} MiB", limit / (1024 * 1024)))
        }
        Err(e) => Err(format!("reading the answer failed: {e}")),
    }
}

fn path_refused(message: impl Into<String>) -> Error {
    Error::new(Kind::BadRequest, "proxy_path", message)
}

/// The `User-Agent` when the caller sent none.
fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("para/", env!("CARGO_PKG_VERSION")))
}

impl Connect {
    /// The user's credential for `account`, opened (refreshed first when about to expire) and
    /// prepared; from the cache when it was prepared moments ago.
    pub async fn prepare(&self, account: Account<'_>) -> Result<Arc<Prepared>, Error> {
        let connector = self.connector_of(account.integration)?;
        if let Some(hit) = self.cached(&connector, account)? {
            return Ok(hit);
        }
        let fresh = Box::pin(self.prepare_fresh(&connector, account)).await?;
        usable_for(account, fresh)
    }

    /// [`Connect::prepare`] when the cache has the credential, without waiting (the proxy's
    /// hot path: no future of its own); `Ok(None)`: call [`Connect::prepare`].
    pub fn prepared_now(&self, account: Account<'_>) -> Result<Option<Arc<Prepared>>, Error> {
        self.cached(&self.connector_of(account.integration)?, account)
    }

    /// The cached credential of `account`, prepared with `connector`.
    fn cached(
        &self,
        connector: &Arc<Connector>,
        account: Account<'_>,
    ) -> Result<Option<Arc<Prepared>>, Error> {
        let selected = account.credential_id.unwrap_or("");
        match self.credential_cache.get(account.user_id, account.integration, selected) {
            // Prepared with this connector (a rebuilt project has new ones).
            Some(hit) if Arc::ptr_eq(&hit.connector, connector) => {
                usable_for(account, hit).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn connector_of(&self, integration: &str) -> Result<Arc<Connector>, Error> {
        self.connector(integration).ok_or_else(|| {
            Error::not_found(format!("no integration `{integration}` in this project"))
        })
    }

    async fn prepare_fresh(
        &self,
        connector: &Arc<Connector>,
        account: Account<'_>,
    ) -> Result<Arc<Prepared>, Error> {
        let Account { user_id, integration, credential_id, .. } = account;
        let all = self.store.credentials(&self.project_id, user_id, Some(integration)).await?;
        let c = match (acting_credential(&all, integration, credential_id), credential_id) {
            (Some(c), _) => c.clone(),
            (None, Some(id)) => {
                return Err(Error::not_found(format!(
                    "you have no credential `{id}` for {integration}"
                )));
            }
            (None, None) => {
                return Err(Error::new(
                    Kind::BadRequest,
                    "not_connected",
                    format!(
                        "connect {integration} first: this user has no valid credential for it"
                    ),
                ));
            }
        };
        let (c, m) = refresh::usable(self, connector, c).await?;
        let prepared = Arc::new(Prepared::new(self, connector, Some(c), m));
        self.credential_cache.put(user_id, integration, credential_id.unwrap_or(""), &prepared);
        Ok(prepared)
    }

    /// [`Connect::prepare`] then [`Connect::send`].
    pub async fn send_as(
        &self,
        account: Account<'_>,
        request: Outgoing<'_>,
    ) -> Result<Response<Answer>, Error> {
        let prepared = self.prepare(account).await?;
        self.send(prepared, request).await
    }

    /// Sends `request` with the prepared credential (see the module's guarantees). An HTTP
    /// error status is an answer; `Err` is a request refused here or that got no answer.
    ///
    /// The request's fields are used in place (not moved into locals) and the rare paths are
    /// boxed: this future is part of every proxied request's, which is moved into a box per
    /// request, so its size is paid on each one.
    #[inline]
    pub async fn send(
        &self,
        mut prepared: Arc<Prepared>,
        mut request: Outgoing<'_>,
    ) -> Result<Response<Answer>, Error> {
        if !request.headers.contains_key(header::USER_AGENT) {
            request.headers.insert(header::USER_AGENT, user_agent());
        }
        // One second attempt (after a refresh or a wait) needs the headers again.
        let refreshable =
            prepared.credential.is_some() && refresh::can_refresh(&prepared.connector);
        let mut again =
            (refreshable || !request.wait_429.is_zero()).then(|| request.headers.clone());
        loop {
            let mut target = prepared.target_of(self, &request.destination, request.query)?;
            let authorization = prepared.authorization()?;
            target.append_query(&authorization.query);
            let mut headers = std::mem::take(&mut request.headers);
            for (name, value) in &authorization.headers {
                headers.insert(name.clone(), value.clone());
            }
            headers.entry(header::HOST).or_insert_with(|| target.host.clone());
            let origin = target.origin.clone();
            let outgoing = upstream::Outgoing {
                method: request.method.clone(),
                target: target.text,
                headers,
                body: request.body.clone(),
            };
            let answer = match self.upstream.send(&origin, outgoing, request.keep).await {
                Ok(answer) => answer,
                Err(e) => return Err(self.no_answer(&prepared, &request, &origin, &e)),
            };
            let retry = match answer.status() {
                StatusCode::UNAUTHORIZED if refreshable => Some(None),
                StatusCode::TOO_MANY_REQUESTS => {
                    retry_after(answer.headers()).filter(|wait| *wait <= request.wait_429).map(Some)
                }
                _ => None,
            };
            if let Some(wait) = retry
                && let Some(headers) = again.take()
            {
                drop(answer);
                prepared = Box::pin(self.before_again(prepared, wait)).await?;
                request.headers = headers;
                continue;
            }
            return Ok(answer);
        }
    }

    /// What a request is sent again with: after a 401 (`wait` none) the credential refreshed
    /// once (or as another request just refreshed it); after a 429, the same, once `wait` is
    /// over.
    async fn before_again(
        &self,
        prepared: Arc<Prepared>,
        wait: Option<Duration>,
    ) -> Result<Arc<Prepared>, Error> {
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
            return Ok(prepared);
        }
        let Some(c) = prepared.credential.clone() else { return Ok(prepared) };
        match refresh::after_unauthorized(self, &prepared.connector, c).await? {
            Some((fresh, m)) => {
                Ok(Arc::new(Prepared::new(self, &prepared.connector, Some(fresh), m)))
            }
            None => Ok(prepared),
        }
    }

    /// The error of a request that got no answer.
    #[cold]
    fn no_answer(
        &self,
        prepared: &Prepared,
        request: &Outgoing<'_>,
        origin: &upstream::Origin,
        e: &upstream::Failure,
    ) -> Error {
        let what = if e.is_timeout() { "timed out" } else { "failed" };
        let path = match prepared.target_of(self, &request.destination, request.query) {
            Ok(target) => target.path().to_string(),
            Err(e) => return e,
        };
        Error::new(
            Kind::Upstream,
            "upstream",
            format!(
                "{} {}://{}{path} {what}: {e}",
                prepared.connector.name,
                origin.scheme(),
                origin.host(),
            ),
        )
    }
}

/// `prepared`, unless the account must be usable as it is (a run's) and its credential needs
/// reconnecting.
fn usable_for(account: Account<'_>, prepared: Arc<Prepared>) -> Result<Arc<Prepared>, Error> {
    if account.require_valid
        && let Some(c) = &prepared.credential
        && c.status != para_store::CredentialStatus::Valid
    {
        return Err(Error::new(
            Kind::BadRequest,
            "credential_unusable",
            format!(
                "the {} account (credential `{}`) is {}: the user must connect it again",
                account.integration, c.id, c.status
            ),
        ));
    }
    Ok(prepared)
}

/// A 429's `Retry-After` (seconds or an HTTP-date, [`para_engine::retry_after::parse`]); none
/// when absent or unreadable, and then the 429 is the answer.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    para_engine::retry_after::parse(value, std::time::SystemTime::now())
}

/// The credential a request of `integration` acts with among the user's: the one named
/// (whatever its status, so the caller can say why it cannot be used), else the newest valid
/// one.
pub fn acting_credential<'c>(
    credentials: &'c [Credential],
    integration: &str,
    credential_id: Option<&str>,
) -> Option<&'c Credential> {
    let mut mine = credentials.iter().filter(|c| c.integration == integration);
    match credential_id {
        Some(id) => mine.find(|c| c.id == id),
        None => mine.find(|c| c.status == para_store::CredentialStatus::Valid),
    }
}

/// Refuses a path that could leave the API base. Returns the path to append.
pub fn safe_path(tail: &str) -> Result<&str, String> {
    if !tail.bytes().any(|b| b == b'%' || b == b'\\')
        && !tail.starts_with("//")
        && !tail.contains("://")
    {
        // Nothing encoded (the usual case): the path is its own decoding, checked as below.
        return plain_segments(tail).map(|()| tail);
    }
    let lower = tail.to_ascii_lowercase();
    if tail.contains('\\') || lower.contains("%5c") {
        return Err("backslashes are not allowed in a proxied path".into());
    }
    if lower.contains("%2f") || lower.contains("%00") {
        return Err("encoded slashes or NUL are not allowed in a proxied path".into());
    }
    if tail.starts_with("//") {
        return Err("a proxied path must not start with `//`".into());
    }
    if tail.contains("://") || lower.contains("%3a%2f%2f") {
        return Err("a proxied path must be a path below the API base, not a URL".into());
    }
    let decoded = percent_decode(tail).ok_or("the proxied path is not valid percent-encoding")?;
    plain_segments(&decoded).map(|()| tail)
}

/// A decoded path: no `.`/`..` segment, also with path parameters (`..;x`: servlet
/// containers drop what follows `;` in a segment before resolving it), no control character.
fn plain_segments(decoded: &str) -> Result<(), String> {
    // `.` or `..`, alone or before `;`.
    let dots = |seg: &[u8]| match seg {
        [b'.', rest @ ..] => {
            let rest = rest.strip_prefix(b".").unwrap_or(rest);
            rest.first().is_none_or(|&b| b == b';')
        }
        _ => false,
    };
    if decoded.as_bytes().split(|&b| b == b'/').any(dots) {
        return Err("`.` and `..` segments (also `..;`) are not allowed in a proxied path".into());
    }
    if decoded.chars().any(|c| c.is_control()) {
        return Err("control characters are not allowed in a proxied path".into());
    }
    Ok(())
}

/// Joins base + path and checks the result stays below the base.
pub fn join(base: &str, tail: &str, query: Option<&str>) -> Result<url::Url, String> {
    let joined = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{base}{tail}?{q}"),
        None => format!("{base}{tail}"),
    };
    let url = url::Url::parse(&joined).map_err(|e| format!("`{joined}` is not a URL: {e}"))?;
    let base_url = url::Url::parse(base).map_err(|e| format!("bad API base `{base}`: {e}"))?;
    let same_origin = url.scheme() == base_url.scheme()
        && url.host_str() == base_url.host_str()
        && url.port_or_known_default() == base_url.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none();
    let base_path = base_url.path().trim_end_matches('/');
    let below = url.path() == base_path
        || url.path().strip_prefix(base_path).is_some_and(|rest| rest.starts_with('/'));
    if !same_origin || !below {
        return Err("the proxied path leaves the integration's API base".into());
    }
    Ok(url)
}

/// `%XX` sequences decoded; `None` when one is malformed or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// An error worked out once for a credential and answered on each request that meets it.
#[derive(Debug, Clone)]
struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn error(&self) -> Error {
        Error::new(Kind::Upstream, self.code, self.message.clone())
    }
}

/// Credentials recently opened for a user and integration (optionally one selected
/// credential), so a burst of proxied requests reads and decrypts once, and renders the
/// credential's API base and authorization once ([`Prepared`]). An entry lives
/// [`Cache::TTL_MS`] and never past its token's refresh point; this process forgets entries
/// whenever it changes the credential, other processes' changes are seen within the TTL.
///
/// Entries are keyed by a 64-bit hash of (user, integration, selected id) under a per-process
/// random seed and hold the three, compared on every hit: a collision is a miss.
#[derive(Default)]
pub struct Cache {
    map: Mutex<HashMap<u64, CacheEntry, foldhash::fast::FixedState>>,
    hasher: foldhash::fast::RandomState,
}

struct CacheEntry {
    user: Box<str>,
    integration: Box<str>,
    /// The selected credential id, or "".
    selected: Box<str>,
    until: i64,
    prepared: Arc<Prepared>,
}

impl Cache {
    const TTL_MS: i64 = 2_000;
    const MAX: usize = 50_000;

    fn key(&self, user: &str, integration: &str, selected: &str) -> u64 {
        self.hasher.hash_one((user, integration, selected))
    }

    pub fn get(&self, user: &str, integration: &str, selected: &str) -> Option<Arc<Prepared>> {
        let key = self.key(user, integration, selected);
        let map = self.map.lock().expect("credential cache");
        let e = map.get(&key)?;
        let now = now_ms();
        (*e.user == *user
            && *e.integration == *integration
            && *e.selected == *selected
            && e.until > now
            && !refresh::expiring_at(
                e.prepared.credential.as_ref().and_then(|c| c.expires_at),
                now,
            ))
        .then(|| e.prepared.clone())
    }

    pub fn put(&self, user: &str, integration: &str, selected: &str, prepared: &Arc<Prepared>) {
        let key = self.key(user, integration, selected);
        let entry = CacheEntry {
            user: user.into(),
            integration: integration.into(),
            selected: selected.into(),
            until: now_ms() + Self::TTL_MS,
            prepared: prepared.clone(),
        };
        let mut map = self.map.lock().expect("credential cache");
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key, entry);
    }

    /// Forgets everything cached for the user's integration.
    pub fn forget(&self, user: &str, integration: &str) {
        self.map
            .lock()
            .expect("credential cache")
            .retain(|_, e| &*e.user != user || &*e.integration != integration);
    }
}

/// A credential made ready for the proxy, once per cache entry ([`Cache`]) or connection check:
/// opened, its API base URL rendered, parsed and checked, its origin's connection pool found,
/// and its authorization rendered into header values and query text. A request then renders
/// no template and parses no URL.
pub struct Prepared {
    /// `None`: material not stored yet (a connection being checked); never refreshed.
    pub credential: Option<Credential>,
    /// The connector it was prepared with.
    pub connector: Arc<Connector>,
    /// The credential's secret part, opened (templates of listings read it).
    material: Material,
    base: Result<Base, Refusal>,
    authorization: Result<Authorization, Refusal>,
}

struct Base {
    /// The rendered API base URL, without a trailing `/`.
    text: String,
    /// Set when the base is in its parsed form and has no query, fragment or user info (the
    /// usual case, see [`is_simple_base`]): a target is then its path + the checked tail,
    /// without joining and parsing.
    simple: Option<SimpleBase>,
}

struct SimpleBase {
    origin: Arc<upstream::Origin>,
    /// The `Host` header: host, and the port when it is not the scheme's default.
    host: HeaderValue,
    /// The base's path as a URL parser normalises and encodes it, without a trailing `/`.
    path: String,
}

struct Authorization {
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Query parameters, `application/x-www-form-urlencoded`, appended to the query.
    query: String,
}

/// Whether `text` (a base URL without a trailing `/`) is already what parsing makes of it (so
/// no `.`/`..` segments, nothing to encode, a lower-case host, no default port), with no user
/// info, query or fragment. Then a checked tail appended to its path stays below it exactly as
/// joining and parsing would put it.
fn is_simple_base(text: &str, url: &url::Url) -> bool {
    url.as_str().trim_end_matches('/') == text
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
}

/// The `Host` header of a URL (as hyper-util's client writes it).
fn host_header(url: &url::Url) -> Option<HeaderValue> {
    let host = url.host_str()?;
    let value = match url.port() {
        Some(port) => HeaderValue::from_str(&format!("{host}:{port}")),
        None => HeaderValue::from_str(host),
    };
    value.ok()
}

impl Prepared {
    pub fn new(
        state: &Connect,
        connector: &Arc<Connector>,
        credential: Option<Credential>,
        material: Material,
    ) -> Prepared {
        let base = connector
            .base_url(&material)
            .map_err(|e| Refusal { code: "api_base", message: e.0 })
            .map(|text| {
                let simple = url::Url::parse(&text).ok().and_then(|url| {
                    if !is_simple_base(&text, &url) {
                        return None;
                    }
                    Some(SimpleBase {
                        origin: state.upstream.origin(&url)?,
                        host: host_header(&url)?,
                        path: url.path().trim_end_matches('/').to_string(),
                    })
                });
                Base { text, simple }
            });
        let authorization = connector
            .authorize(&material)
            .map_err(|e| Refusal { code: "authorization", message: e.0 })
            .and_then(|auth| {
                let mut headers = Vec::with_capacity(auth.headers.len());
                for (name, value) in &auth.headers {
                    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Refusal {
                        code: "authorization",
                        message: format!("`{name}` is not a header name"),
                    })?;
                    let value = HeaderValue::from_str(value).map_err(|_| Refusal {
                        code: "authorization",
                        message: format!("the `{name}` header value is not valid"),
                    })?;
                    headers.push((name, value));
                }
                let query = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&auth.query)
                    .finish();
                Ok(Authorization { headers, query })
            });
        Prepared { credential, connector: connector.clone(), material, base, authorization }
    }

    /// The credential's opened secret part.
    pub fn material(&self) -> &Material {
        &self.material
    }

    fn authorization(&self) -> Result<&Authorization, Error> {
        self.authorization.as_ref().map_err(Refusal::error)
    }

    /// Where a request to `destination` goes.
    fn target_of(
        &self,
        state: &Connect,
        destination: &Destination<'_>,
        query: Option<&str>,
    ) -> Result<Target, Error> {
        match &destination.0 {
            Dest::Below(tail) => self.target(state, tail, query),
            Dest::Configured(url) => Target::of_url(state, url).ok_or_else(|| {
                Error::new(Kind::Upstream, "api_base", format!("`{url}` cannot be requested"))
            }),
        }
    }

    /// Where `tail` (checked by [`safe_path`]) and `query` go: below the API base, always.
    fn target(&self, state: &Connect, tail: &str, query: Option<&str>) -> Result<Target, Error> {
        let base = self.base.as_ref().map_err(Refusal::error)?;
        let query = query.filter(|q| !q.is_empty());
        match &base.simple {
            // A checked tail is empty or `/…` without `.`/`..` segments, `//` at the start,
            // backslashes or encoded slashes: appended to the base's path it stays below it.
            Some(simple) if tail.is_empty() || tail.starts_with('/') => {
                let (text, path_len, query) = below(&simple.path, tail, query);
                Ok(Target {
                    origin: simple.origin.clone(),
                    host: simple.host.clone(),
                    text,
                    path_len,
                    query,
                })
            }
            _ => {
                let url = join(&base.text, tail, query).map_err(path_refused)?;
                Target::of_url(state, &url).ok_or_else(|| {
                    Error::new(
                        Kind::Upstream,
                        "api_base",
                        format!("the API base URL `{}` cannot be used", base.text),
                    )
                })
            }
        }
    }
}

/// `base_path` (a parsed base's path without the trailing `/`) + a checked `tail` (empty or
/// `/…`) and the query, encoded as a URL parser encodes them: the path and query text, the
/// path's length, and whether there is a query. The same as [`join`] gives for such a base
/// (a test compares them), without parsing.
fn below(base_path: &str, tail: &str, query: Option<&str>) -> (String, usize, QueryState) {
    let mut text =
        String::with_capacity(base_path.len() + tail.len() + query.map_or(0, str::len) + 64);
    text.push_str(base_path);
    encode_into(&mut text, tail, &PATH_SET);
    if text.is_empty() {
        text.push('/');
    }
    let path_len = text.len();
    let state = match query.filter(|q| !q.is_empty()) {
        Some(q) => {
            text.push('?');
            encode_into(&mut text, q, &QUERY_SET);
            QueryState::Some
        }
        None => QueryState::None,
    };
    (text, path_len, state)
}

/// Whether a target has a query, as `url`'s `query_pairs_mut` sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum QueryState {
    None,
    Empty,
    Some,
}

/// A request's destination: the origin, and the path and query to ask for.
struct Target {
    origin: Arc<upstream::Origin>,
    host: HeaderValue,
    /// Path and query, encoded.
    text: String,
    path_len: usize,
    query: QueryState,
}

impl Target {
    /// The target of a parsed `http(s)` URL (`None` for another scheme or no host).
    fn of_url(state: &Connect, url: &url::Url) -> Option<Target> {
        let origin = state.upstream.origin(url)?;
        let host = host_header(url)?;
        let text = url[url::Position::BeforePath..url::Position::AfterQuery].to_string();
        let query = match url.query() {
            None => QueryState::None,
            Some("") => QueryState::Empty,
            Some(_) => QueryState::Some,
        };
        Some(Target { origin, host, path_len: url.path().len(), text, query })
    }

    fn path(&self) -> &str {
        &self.text[..self.path_len]
    }

    /// Appends encoded `name=value` pairs to the query (as `url`'s `append_pair` would).
    fn append_query(&mut self, pairs: &str) {
        if pairs.is_empty() {
            return;
        }
        match self.query {
            QueryState::None => self.text.push('?'),
            QueryState::Empty => {}
            QueryState::Some => self.text.push('&'),
        }
        self.text.push_str(pairs);
        self.query = QueryState::Some;
    }
}

/// Bytes a URL parser percent-encodes in a path (special schemes): controls, space,
/// `" # < > ? ` { }`, and everything beyond ASCII.
const PATH_SET: [bool; 256] = byte_set(b"\"#<>?`{}");

/// Bytes a URL parser percent-encodes in a query (special schemes): controls, space,
/// `" # < > '`, and everything beyond ASCII.
const QUERY_SET: [bool; 256] = byte_set(b"\"#<>'");

/// A table of the bytes to encode: controls, space, everything beyond ASCII, and `extra`.
const fn byte_set(extra: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut b = 0;
    while b < 256 {
        set[b] = b <= 0x20 || b >= 0x7f;
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        set[extra[i] as usize] = true;
        i += 1;
    }
    set
}

/// `text` appended to `out` with the bytes of `set` percent-encoded (a table lookup per byte:
/// this runs on every proxied request's path and query).
fn encode_into(out: &mut String, text: &str, set: &[bool; 256]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = text.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if set[usize::from(b)] {
            // Runs left as they are hold ASCII only (every byte beyond is encoded), so they
            // start and end on character boundaries.
            if plain < i {
                out.push_str(&text[plain..i]);
            }
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
            plain = i + 1;
        }
    }
    if plain < text.len() {
        out.push_str(&text[plain..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use para_upstream::Client;

    #[test]
    fn paths_that_leave_the_base_are_refused() {
        for bad in [
            "/../admin",
            "/a/../../admin",
            "/%2e%2e/admin",
            "/%2E%2E/admin",
            "/a/%2e%2e%2fadmin",
            "//evil.com/x",
            "/http://evil.com",
            "/a\\..\\b",
            "/a%5c..",
            "/a%00b",
            "/./x",
            "/..;/admin",
            "/a/..;x=1/b",
            "/.;/x",
            "/%2e%2e;/x",
            "/..%3b/x",
            "/..%3B/x",
        ] {
            assert!(safe_path(bad).is_err(), "{bad} must be refused");
        }
        for good in [
            "",
            "/",
            "/v1/items",
            "/search?q=a",
            "/a%20b",
            "/user@example.com/x",
            "/@evil.com",
            "/a;v=1/b",
            "/..x;y/x.;.",
            "/;/x",
        ] {
            assert!(safe_path(good).is_ok(), "{good} must pass");
        }
    }

    #[test]
    fn joined_urls_stay_below_the_base() {
        let base = "http://127.0.0.1:9000/v2";
        assert_eq!(
            join(base, "/tasks", Some("a=1")).unwrap().as_str(),
            "http://127.0.0.1:9000/v2/tasks?a=1"
        );
        assert!(join(base, "@evil.com/x", None).is_err());
        assert!(join(base, "x/y", None).is_err(), "/v2x is not below /v2");
        assert_eq!(join(base, "/@evil.com", None).unwrap().host_str(), Some("127.0.0.1"));
        assert!(join(base, ":8080/x", None).is_err());
        assert!(join(base, ".evil.com/x", None).is_err());
        assert!(join("https://api.example.com", ".evil.com/x", None).is_err());
    }

    /// The fast path (a prepared base's path + the checked tail, encoded here) gives exactly
    /// what joining and parsing the URL gives, for every printable character.
    #[test]
    fn targets_below_a_simple_base_are_what_joining_gives() {
        let bases = [
            "http://127.0.0.1:9000/v2",
            "http://127.0.0.1:9000/v2/",
            "http://h",
            "http://h/",
            "https://API.example.com:443/a b/c",
            "http://h:80/x",
            "http://h/v2/.",
            "http://h/v2/..",
            "http://h/v2/%2e%2E",
            "http://h/%7Bx%7D/{y}",
            "http://h/é/ü",
            "http://h/%C3%A9/a%20b/%7Bx%7D",
            "http://[::1]:8080/api",
            "https://api.example.com/v1",
        ];
        let simple: Vec<&str> = bases
            .iter()
            .copied()
            .filter(|b| is_simple_base(b.trim_end_matches('/'), &url::Url::parse(b).unwrap()))
            .collect();
        assert_eq!(
            simple,
            [
                "http://127.0.0.1:9000/v2",
                "http://127.0.0.1:9000/v2/",
                "http://h",
                "http://h/",
                "http://h/%C3%A9/a%20b/%7Bx%7D",
                "http://[::1]:8080/api",
                "https://api.example.com/v1",
            ]
        );
        let mut tails: Vec<String> = [
            "",
            "/",
            "/a",
            "/a/",
            "/a//b",
            "/a%20b",
            "/%7E",
            "/é/ü",
            "/.x",
            "/x.",
            "/..x",
            "/a.b/c..",
            "/@evil.com",
            "/:8080/x",
            "/%",
            "/a%2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for c in (0x21u8..0x7f).map(char::from).filter(|c| !"?#\\".contains(*c)) {
            tails.push(format!("/a{c}b/{c}"));
        }
        let mut queries: Vec<Option<String>> = vec![
            None,
            Some(String::new()),
            Some("a=1".into()),
            Some("a=1&".into()),
            Some("&&".into()),
            Some("q=é ü".into()),
        ];
        for c in (0x21u8..0x7f).map(char::from).filter(|c| *c != '#') {
            queries.push(Some(format!("a{c}=b{c}c")));
        }
        let pairs = [("api_key", "k/2 é"), ("sig", "a b&c=d")];
        let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        let client = Client::new(None);
        let mut compared = 0;
        for base in bases {
            let text = base.trim_end_matches('/');
            let parsed = url::Url::parse(text).unwrap();
            if !is_simple_base(text, &parsed) {
                // Joined and parsed on each request instead.
                continue;
            }
            let base_path = parsed.path().trim_end_matches('/');
            for tail in &tails {
                if safe_path(tail).is_err() {
                    continue;
                }
                for query in &queries {
                    let query = query.as_deref();
                    let Ok(mut joined) = join(text, tail, query) else {
                        panic!("{base} + {tail} + {query:?} must join");
                    };
                    let (got, path_len, state) = below(base_path, tail, query);
                    let expected = &joined[url::Position::BeforePath..url::Position::AfterQuery];
                    assert_eq!(got, expected, "{base} + {tail:?} + {query:?}");
                    assert_eq!(&got[..path_len], joined.path());
                    // Authorization in the query, appended as `append_pair` does.
                    let mut target = Target {
                        origin: client.origin(&parsed).unwrap(),
                        host: HeaderValue::from_static("h"),
                        text: got,
                        path_len,
                        query: state,
                    };
                    target.append_query(&encoded);
                    joined.query_pairs_mut().extend_pairs(pairs);
                    let expected = &joined[url::Position::BeforePath..url::Position::AfterQuery];
                    assert_eq!(target.text, expected, "{base} + {tail:?} + {query:?} + auth");
                    let text = &target.text;
                    assert!(http::uri::PathAndQuery::try_from(text.as_str()).is_ok(), "{text}");
                    assert!(text.bytes().all(|b| b > b' ' && b < 0x7f), "{text}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 10_000, "{compared}");
    }
}
