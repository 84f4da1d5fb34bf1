//! Receiving a provider's webhook, as its catalog `[webhooks]` table describes: the URL-check
//! handshakes, the signature (HMAC-SHA256/SHA1 of a template over the raw body, a timestamp
//! inside a tolerance window, or a token), and the events a request carries (each with the id
//! that deduplicates it, its type and its account). No I/O: the server hands the request in,
//! stores what comes out, and answers.

use std::fmt;

use base64::Engine as _;
use para_catalog::{
    Challenge, Encoding, Signature, SignatureScheme, TimestampUnit, Webhooks as Spec,
};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

/// The most a handshake echoes back (a challenge is a short token).
const MAX_ECHO: usize = 512;

/// A request as the provider sent it.
pub struct Incoming<'a> {
    pub method: &'a str,
    /// The URL the provider called, as configured there (the public URL, path and query).
    pub url: &'a str,
    /// Header names lower-case.
    pub headers: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Incoming<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON: a JSON body as is; a form as an object of its fields, or, when its
    /// only field `payload` holds JSON (Slack's interactivity), that JSON; anything else (or
    /// nothing) as `null`.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        if let Ok(value) = serde_json::from_slice::<Value>(self.body) {
            return value;
        }
        let fields: Vec<(String, String)> = form_urlencoded::parse(self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if fields.is_empty() || fields.iter().any(|(k, _)| k.is_empty()) {
            return Value::Null;
        }
        if let [(name, payload)] = fields.as_slice()
            && name == "payload"
            && let Ok(value) = serde_json::from_str::<Value>(payload)
        {
            return value;
        }
        let mut object = Map::new();
        for (name, value) in fields {
            insert_form_field(&mut object, &name, value);
        }
        Value::Object(object)
    }
}

/// A form field into `object`, a bracketed name as a path: `data[merges][EMAIL]=…` is
/// `{"data": {"merges": {"EMAIL": …}}}` (how Mailchimp and ActiveCampaign post).
fn insert_form_field(object: &mut Map<String, Value>, name: &str, value: String) {
    let mut parts = Vec::new();
    match name.split_once('[') {
        Some((head, rest)) if rest.ends_with(']') => {
            parts.push(head.to_string());
            parts.extend(rest[..rest.len() - 1].split("][").map(str::to_string));
        }
        _ => parts.push(name.to_string()),
    }
    let mut at = object;
    let last = parts.pop().unwrap_or_default();
    for part in parts {
        let slot = at.entry(part).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else { return };
        at = next;
    }
    at.insert(last, Value::String(value));
}

/// Why a request was refused (answered 401 and counted, never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No signature where the scheme needs one.
    Unsigned(String),
    /// A signature that does not match the body (a bad secret or a tampered body).
    BadSignature,
    /// A timestamp outside the tolerance window (a replay, or a clock far off).
    Stale { age_seconds: i64, tolerance: u32 },
    /// The secret the scheme needs is not configured on this server.
    NoSecret(String),
    /// A per-account URL is required and this is not one.
    NeedsAccountUrl,
}

impl Refused {
    /// A short stable name, for counting.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Unsigned(_) => "unsigned",
            Refused::BadSignature => "bad_signature",
            Refused::Stale { .. } => "stale",
            Refused::NoSecret(_) => "no_secret",
            Refused::NeedsAccountUrl => "needs_account_url",
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Unsigned(what) => write!(f, "the request is not signed: {what}"),
            Refused::BadSignature => write!(f, "the signature does not match the body"),
            Refused::Stale { age_seconds, tolerance } => write!(
                f,
                "the request's timestamp is {age_seconds} s away from now (at most {tolerance} s is accepted)"
            ),
            Refused::NoSecret(what) => write!(f, "{what}"),
            Refused::NeedsAccountUrl => write!(
                f,
                "this integration's webhooks are accepted only at a per-account URL (the one para registered)"
            ),
        }
    }
}

/// What a handshake is answered with.
#[derive(Debug, Clone, PartialEq)]
pub enum Handshake {
    /// 200 with this text (`text/plain`).
    Text(String),
    /// 200 with this JSON.
    Json(Value),
    /// 200 with this JSON and the header (name, value).
    JsonWithHeader(Value, &'static str, String),
    /// 200, empty.
    Empty,
    /// 200, empty, and the request is kept as an event of type `verification` (Notion's
    /// verification token, which the company's admin needs to read once).
    Keep,
}

/// A handshake that carries no signature (it is answered before the signature is checked):
/// Graph's `validationToken`, Dropbox's `challenge`, Trello's `HEAD`, Google's `sync`,
/// monday.com's and Smartsheet's challenges.
pub fn unsigned_handshake(spec: &Spec, request: &Incoming) -> Option<Handshake> {
    let echo = |s: &str| (s.len() <= MAX_ECHO).then(|| s.to_string());
    match spec.challenge? {
        Challenge::Graph => request.query("validationToken").and_then(echo).map(Handshake::Text),
        Challenge::Dropbox if request.method == "GET" => {
            request.query("challenge").and_then(echo).map(Handshake::Text)
        }
        Challenge::Trello if request.method == "HEAD" => Some(Handshake::Empty),
        Challenge::Mailchimp if request.method == "GET" => Some(Handshake::Empty),
        Challenge::Notion => {
            let body = request.json();
            body.get("verification_token")?.as_str()?;
            (body.as_object()?.len() == 1).then_some(Handshake::Keep)
        }
        Challenge::Google => {
            (request.header("x-goog-resource-state") == Some("sync")).then_some(Handshake::Empty)
        }
        Challenge::Monday => {
            let body = request.json();
            let challenge = body.get("challenge")?.as_str().and_then(echo)?;
            Some(Handshake::Json(json!({ "challenge": challenge })))
        }
        Challenge::Smartsheet => {
            let challenge = request.header("smartsheet-hook-challenge").and_then(echo)?;
            Some(Handshake::JsonWithHeader(
                json!({ "smartsheetHookResponse": challenge }),
                "smartsheet-hook-response",
                challenge,
            ))
        }
        _ => None,
    }
}

/// A handshake that is signed like an event (checked after [`verify`]): Slack's
/// `url_verification` and Zoom's `endpoint.url_validation`.
pub fn signed_handshake(
    spec: &Spec,
    request: &Incoming,
    secret: Option<&[u8]>,
) -> Option<Handshake> {
    let body = request.json();
    match spec.challenge? {
        Challenge::Slack if body.get("type")?.as_str()? == "url_verification" => {
            let challenge = body.get("challenge")?.as_str()?;
            (challenge.len() <= MAX_ECHO).then(|| Handshake::Text(challenge.to_string()))
        }
        Challenge::Zoom if body.get("event")?.as_str()? == "endpoint.url_validation" => {
            let plain = body.pointer("/payload/plainToken")?.as_str()?;
            if plain.len() > MAX_ECHO {
                return None;
            }
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret?);
            let encrypted = hex(ring::hmac::sign(&key, plain.as_bytes()).as_ref());
            Some(Handshake::Json(json!({ "plainToken": plain, "encryptedToken": encrypted })))
        }
        _ => None,
    }
}

/// Checks the request's signature (or token) with `secret` at `now` (Unix seconds).
/// `url_secret` schemes check nothing here: only a per-account URL is accepted for them, which
/// the caller checks.
pub fn verify(
    signature: &Signature,
    secret: Option<&[u8]>,
    request: &Incoming,
    now: i64,
) -> Result<(), Refused> {
    let algorithm = match signature.scheme {
        SignatureScheme::UrlSecret => return Ok(()),
        SignatureScheme::Token => {
            let secret =
                secret.ok_or_else(|| Refused::NoSecret("no token is configured".into()))?;
            let given = first(request, &Value::Null, &signature.from)
                .ok_or_else(|| Refused::Unsigned(format!("no {}", signature.from)))?;
            return if constant_time_eq(text(&given).as_bytes(), secret) {
                Ok(())
            } else {
                Err(Refused::BadSignature)
            };
        }
        SignatureScheme::HmacSha256 => ring::hmac::HMAC_SHA256,
        SignatureScheme::HmacSha1 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
    };
    let header = first(request, &Value::Null, &signature.from)
        .map(|v| text(&v))
        .ok_or_else(|| Refused::Unsigned(format!("no {}", signature.from)))?;
    // The signatures offered (a pair list may hold several, during a secret's rotation) and the
    // timestamp.
    let (offered, timestamp): (Vec<String>, Option<String>) = match &signature.signature_key {
        Some(key) => {
            let pairs: Vec<(&str, &str)> =
                header.split(',').filter_map(|p| p.trim().split_once('=')).collect();
            let offered = pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.to_string());
            let stamp = signature
                .timestamp_key
                .as_ref()
                .and_then(|t| pairs.iter().find(|(k, _)| k == t).map(|(_, v)| v.to_string()));
            (offered.collect(), stamp)
        }
        None => {
            let Some(value) = header.strip_prefix(signature.prefix.as_str()) else {
                return Err(Refused::Unsigned(format!(
                    "{} does not start with `{}`",
                    signature.from, signature.prefix
                )));
            };
            let stamp = signature
                .timestamp
                .as_ref()
                .and_then(|l| first(request, &Value::Null, l))
                .map(|v| text(&v));
            (vec![value.trim().to_string()], stamp)
        }
    };
    if offered.is_empty() {
        return Err(Refused::Unsigned(format!("no signature in {}", signature.from)));
    }
    let timed = signature.signed.contains("{timestamp}")
        || signature.timestamp.is_some()
        || signature.timestamp_key.is_some();
    if timed {
        let stamp = timestamp.as_deref().ok_or_else(|| Refused::Unsigned("no timestamp".into()))?;
        let seconds = match signature.timestamp_unit {
            TimestampUnit::Seconds => stamp.trim().parse::<i64>().ok(),
            TimestampUnit::Milliseconds => stamp.trim().parse::<i64>().ok().map(|t| t / 1000),
            TimestampUnit::Rfc3339 => {
                chrono::DateTime::parse_from_rfc3339(stamp.trim()).ok().map(|t| t.timestamp())
            }
        }
        .ok_or_else(|| Refused::Unsigned(format!("the timestamp `{stamp}` cannot be read")))?;
        let age = now.saturating_sub(seconds);
        if age.unsigned_abs() > u64::from(signature.tolerance_seconds) {
            return Err(Refused::Stale {
                age_seconds: age,
                tolerance: signature.tolerance_seconds,
            });
        }
    }
    let secret =
        secret.ok_or_else(|| Refused::NoSecret("no signing secret is configured".into()))?;
    let message = signed_bytes(&signature.signed, request, timestamp.as_deref().unwrap_or(""));
    let key = ring::hmac::Key::new(algorithm, secret);
    let matches = offered.iter().any(|o| {
        let decoded = match signature.encoding {
            Encoding::Hex => unhex(o),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(o).ok(),
        };
        decoded.is_some_and(|tag| ring::hmac::verify(&key, &message, &tag).is_ok())
    });
    if matches { Ok(()) } else { Err(Refused::BadSignature) }
}

/// The bytes the provider signed: the template with its parts filled in.
fn signed_bytes(template: &str, request: &Incoming, timestamp: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(request.body.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.extend_from_slice(&rest.as_bytes()[..start]);
        let Some(end) = rest[start..].find('}') else { break };
        match &rest[start + 1..start + end] {
            "body" => out.extend_from_slice(request.body),
            "timestamp" => out.extend_from_slice(timestamp.as_bytes()),
            "method" => out.extend_from_slice(request.method.as_bytes()),
            "url" => out.extend_from_slice(request.url.as_bytes()),
            "form" => {
                let mut fields: Vec<(String, String)> = form_urlencoded::parse(request.body)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                fields.sort();
                for (k, v) in fields {
                    out.extend_from_slice(k.as_bytes());
                    out.extend_from_slice(v.as_bytes());
                }
            }
            other => out.extend_from_slice(format!("{{{other}}}").as_bytes()),
        }
        rest = &rest[start + end + 1..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

/// One event of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What deduplicates it: `id:<provider's event id>`, or `sha256:<hex of the event>` when the
    /// provider gives none.
    pub key: String,
    /// The event's type (`push`, `message`), empty when the request names none.
    pub kind: String,
    /// The provider's account (team, portal) the event belongs to, if the spec says where.
    pub account: Option<String>,
    /// The event: the whole body, or one element of a batch.
    pub body: Value,
}

/// The secret that signs an integration's webhooks, by its `[webhooks]` table: the company's
/// app webhook secret or OAuth client secret (from `.para/oauth-clients.json` or
/// `PARA_OAUTH_<KEY>_…`), or the hook's own (sealed in the store); `Err` says what to set.
pub fn secret(
    connect: &crate::Connect,
    integration: &str,
    signature: &Signature,
    hook: Option<&para_store::webhooks::Hook>,
) -> Result<Option<Vec<u8>>, Refused> {
    use para_catalog::SecretSource;
    if matches!(signature.scheme, SignatureScheme::UrlSecret) {
        return Ok(None);
    }
    let key = crate::env_key(integration);
    let client = connect.oauth_client(integration);
    let missing = |what: &str, var: &str, field: &str| {
        Refused::NoSecret(format!(
            "no {what} is configured for {integration}: set PARA_OAUTH_{key}_{var} (or `{field}` in .para/oauth-clients.json)"
        ))
    };
    let text = match signature.secret {
        SecretSource::App => client
            .and_then(|c| c.webhook_secret.clone())
            .filter(|s| !s.is_empty())
            .map(|s| Some(s.into_bytes()))
            .ok_or_else(|| missing("webhook signing secret", "WEBHOOK_SECRET", "webhookSecret")),
        SecretSource::ClientSecret => client
            .map(|c| c.client_secret.clone())
            .filter(|s| !s.is_empty())
            .map(|s| Some(s.into_bytes()))
            .ok_or_else(|| missing("OAuth client secret", "CLIENT_SECRET", "clientSecret")),
        SecretSource::Hook => {
            let hook = hook.ok_or(Refused::NeedsAccountUrl)?;
            let sealed = hook.secret.as_deref().ok_or_else(|| {
                Refused::NoSecret(format!("the URL of {integration} has no signing secret"))
            })?;
            open_hook_secret(connect, &hook.id, sealed).map(Some)
        }
    }?;
    let Some(text) = text else { return Ok(None) };
    let key = match signature.secret_encoding {
        para_catalog::SecretEncoding::Text => Some(text),
        para_catalog::SecretEncoding::Hex => std::str::from_utf8(&text).ok().and_then(unhex),
        para_catalog::SecretEncoding::Base64 => {
            base64::engine::general_purpose::STANDARD.decode(&text).ok()
        }
    };
    key.map(Some).ok_or_else(|| {
        Refused::NoSecret(format!(
            "the webhook secret of {integration} is not valid {:?}",
            signature.secret_encoding
        ))
    })
}

/// A hook's signing secret sealed for the store (bound to the project and the hook).
pub fn seal_hook_secret(connect: &crate::Connect, hook_id: &str, secret: &[u8]) -> String {
    seal_hook_secret_with(&connect.secrets, &connect.project_id, hook_id, secret)
}

/// [`seal_hook_secret`] with the server's key and project id given (for tools and tests that
/// write a hook without a running server).
pub fn seal_hook_secret_with(
    secrets: &para_auth::SecretKey,
    project_id: &str,
    hook_id: &str,
    secret: &[u8],
) -> String {
    secrets.seal(secret, hook_aad(project_id, hook_id).as_bytes())
}

/// A hook's signing secret, opened ([`seal_hook_secret`] sealed it).
pub fn open_hook_secret(
    connect: &crate::Connect,
    hook_id: &str,
    sealed: &str,
) -> Result<Vec<u8>, Refused> {
    connect.secrets.open(sealed, hook_aad(&connect.project_id, hook_id).as_bytes()).map_err(|_| {
        Refused::NoSecret(
            "the URL's signing secret cannot be decrypted: the server's secret key (PARA_SECRET_KEY) changed".into(),
        )
    })
}

fn hook_aad(project_id: &str, hook_id: &str) -> String {
    format!("webhook-hook\u{0}{project_id}\u{0}{hook_id}")
}

/// The events a verified request carries.
pub fn events(spec: &Spec, request: &Incoming) -> Vec<Event> {
    let body = request.json();
    let items: Vec<(Value, Option<Vec<u8>>)> = match &spec.batch {
        Some(locator) => match first(request, &body, locator) {
            Some(Value::Array(items)) => items.into_iter().map(|i| (i, None)).collect(),
            _ => Vec::new(),
        },
        None => vec![(body, Some(request.body.to_vec()))],
    };
    items
        .into_iter()
        .map(|(item, raw)| {
            let read = |l: &Option<String>| {
                l.as_ref().and_then(|l| first(request, &item, l)).map(|v| text(&v))
            };
            let key = match read(&spec.event_id).filter(|id| !id.is_empty()) {
                Some(id) => format!("id:{id}"),
                None => {
                    let bytes = raw.unwrap_or_else(|| item.to_string().into_bytes());
                    format!("sha256:{}", hex(&sha2::Sha256::digest(&bytes)))
                }
            };
            Event {
                key,
                kind: read(&spec.event_type).unwrap_or_default(),
                account: spec
                    .account
                    .as_ref()
                    .and_then(|a| first(request, &item, &a.from))
                    .map(|v| text(&v)),
                body: item,
            }
        })
        .collect()
}

/// The first value a locator (`header:X|body:a.b`) finds, reading `body:` paths in `body`.
pub fn first(request: &Incoming, body: &Value, locator: &str) -> Option<Value> {
    locator.split('|').find_map(|one| match one.split_once(':')? {
        ("header", name) => request.header(name).map(|v| Value::String(v.to_string())),
        ("query", name) => request.query(name).map(|v| Value::String(v.to_string())),
        ("body", "") => (!body.is_null()).then(|| body.clone()),
        ("body", path) => walk(body, path).filter(|v| !v.is_null()).cloned(),
        _ => None,
    })
}

/// A dotted path into JSON (array indexes as numbers).
pub fn walk<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A value as text for comparing: strings as they are, other JSON as written.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The request's headers to keep with an event: all but those that carry credentials.
pub fn kept_headers(headers: &[(String, String)]) -> Map<String, Value> {
    const DROPPED: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];
    headers
        .iter()
        .filter(|(n, _)| !DROPPED.contains(&n.as_str()))
        .map(|(n, v)| (n.clone(), Value::String(v.clone())))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(integration: &str) -> Spec {
        para_catalog::lookup(integration).unwrap().webhooks.clone().unwrap()
    }

    fn request<'a>(
        headers: &'a [(String, String)],
        query: &'a [(String, String)],
        body: &'a [u8],
    ) -> Incoming<'a> {
        Incoming { method: "POST", url: "https://para.example/webhooks/p/x", headers, query, body }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_lowercase(), v.to_string())).collect()
    }

    fn mac(secret: &[u8], message: &[u8]) -> Vec<u8> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        ring::hmac::sign(&key, message).as_ref().to_vec()
    }

    #[test]
    fn stripe_pairs_with_a_timestamp_window() {
        let s = spec("stripe");
        let body = br#"{"id":"evt_1","type":"customer.created"}"#;
        let now = 1_800_000_000;
        let sig = |t: i64, secret: &[u8]| {
            let mut m = format!("{t}.").into_bytes();
            m.extend_from_slice(body);
            format!("t={t},v1={}", hex(&mac(secret, &m)))
        };
        let good = h(&[("Stripe-Signature", &sig(now - 10, b"whsec"))]);
        assert_eq!(verify(&s.signature, Some(b"whsec"), &request(&good, &[], body), now), Ok(()));
        // Several v1 values: one of them matches (a secret being rolled).
        let two = h(&[("Stripe-Signature", &format!("{},v1=00ff", sig(now, b"whsec")))]);
        assert_eq!(verify(&s.signature, Some(b"whsec"), &request(&two, &[], body), now), Ok(()));
        let old = h(&[("Stripe-Signature", &sig(now - 301, b"whsec"))]);
        assert!(matches!(
            verify(&s.signature, Some(b"whsec"), &request(&old, &[], body), now),
            Err(Refused::Stale { .. })
        ));
        let wrong = h(&[("Stripe-Signature", &sig(now, b"other"))]);
        assert_eq!(
            verify(&s.signature, Some(b"whsec"), &request(&wrong, &[], body), now),
            Err(Refused::BadSignature)
        );
        let tampered = br#"{"id":"evt_1","type":"customer.deleted"}"#;
        assert_eq!(
            verify(&s.signature, Some(b"whsec"), &request(&good, &[], tampered), now),
            Err(Refused::BadSignature)
        );
        assert!(matches!(
            verify(&s.signature, Some(b"whsec"), &request(&[], &[], body), now),
            Err(Refused::Unsigned(_))
        ));
        let events = events(&s, &request(&good, &[], body));
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].key.as_str(), events[0].kind.as_str()),
            ("id:evt_1", "customer.created")
        );
    }

    #[test]
    fn hubspot_batches_sign_method_url_body_and_milliseconds() {
        let s = spec("hubspot");
        let body = br#"[{"eventId":1,"portalId":62515,"subscriptionType":"object.creation"},{"eventId":2,"portalId":7,"subscriptionType":"object.deletion"}]"#;
        let now = 1_800_000_000;
        let ms = (now * 1000 - 2_000).to_string();
        let mut m = b"POSThttps://para.example/webhooks/p/x".to_vec();
        m.extend_from_slice(body);
        m.extend_from_slice(ms.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac(b"client", &m));
        let headers = h(&[("X-HubSpot-Signature-v3", &sig), ("X-HubSpot-Request-Timestamp", &ms)]);
        let r = request(&headers, &[], body);
        assert_eq!(verify(&s.signature, Some(b"client"), &r, now), Ok(()));
        let got = events(&s, &r);
        let summary: Vec<(&str, &str, Option<&str>)> =
            got.iter().map(|e| (e.key.as_str(), e.kind.as_str(), e.account.as_deref())).collect();
        assert_eq!(
            summary,
            [("id:1", "object.creation", Some("62515")), ("id:2", "object.deletion", Some("7"))]
        );
    }

    #[test]
    fn slack_and_zoom_handshakes_are_signed_and_answered() {
        let body = br#"{"type":"url_verification","challenge":"c-123","token":"t"}"#;
        assert_eq!(
            signed_handshake(&spec("slack"), &request(&[], &[], body), None),
            Some(Handshake::Text("c-123".into()))
        );
        let body = br#"{"event":"endpoint.url_validation","payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"}}"#;
        let Some(Handshake::Json(answer)) =
            signed_handshake(&spec("zoom"), &request(&[], &[], body), Some(b"secret-token"))
        else {
            panic!("no answer")
        };
        assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
        assert_eq!(answer["encryptedToken"], hex(&mac(b"secret-token", b"qgg8vlvZRS6UYooatFL8Aw")));
    }

    #[test]
    fn forms_with_a_json_payload_read_as_that_json() {
        let body = b"payload=%7B%22type%22%3A%22block_actions%22%7D";
        assert_eq!(request(&[], &[], body).json(), json!({"type": "block_actions"}));
        assert_eq!(request(&[], &[], b"a=1&b=x").json(), json!({"a": "1", "b": "x"}));
        assert_eq!(request(&[], &[], b"").json(), Value::Null);
    }

    #[test]
    fn events_without_an_id_are_keyed_by_their_bytes() {
        let s = spec("zoom");
        let a = events(
            &s,
            &request(&[], &[], br#"{"event":"meeting.ended","payload":{"account_id":"A"}}"#),
        );
        let b = events(
            &s,
            &request(&[], &[], br#"{"event":"meeting.ended","payload":{"account_id":"B"}}"#),
        );
        assert!(a[0].key.starts_with("sha256:"));
        assert_ne!(a[0].key, b[0].key);
        assert_eq!(a[0].account.as_deref(), Some("A"));
    }

    #[test]
    fn box_signs_body_then_an_rfc3339_timestamp() {
        let s = spec("box");
        let body = br#"{"id":"e1","trigger":"FILE.UPLOADED"}"#;
        let now = 1_800_000_000;
        let stamp = chrono::DateTime::from_timestamp(now - 60, 0).unwrap().to_rfc3339();
        let mut m = body.to_vec();
        m.extend_from_slice(stamp.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac(b"primary", &m));
        let headers = h(&[("BOX-SIGNATURE-PRIMARY", &sig), ("BOX-DELIVERY-TIMESTAMP", &stamp)]);
        assert_eq!(
            verify(&s.signature, Some(b"primary"), &request(&headers, &[], body), now),
            Ok(())
        );
        let late = now + 601;
        assert!(matches!(
            verify(&s.signature, Some(b"primary"), &request(&headers, &[], body), late),
            Err(Refused::Stale { .. })
        ));
    }

    #[test]
    fn mailchimp_checks_with_a_get_and_posts_bracketed_forms() {
        let s = spec("mailchimp");
        let get = Incoming { method: "GET", ..request(&[], &[], b"") };
        assert_eq!(unsigned_handshake(&s, &get), Some(Handshake::Empty));
        let body = b"type=subscribe&data%5Bmerges%5D%5BEMAIL%5D=a%40b.c&data%5Blist_id%5D=L1";
        let r = request(&[], &[], body);
        assert_eq!(unsigned_handshake(&s, &r), None);
        assert_eq!(
            r.json(),
            json!({"type": "subscribe", "data": {"merges": {"EMAIL": "a@b.c"}, "list_id": "L1"}})
        );
        assert_eq!(events(&s, &r)[0].kind, "subscribe");
    }

    #[test]
    fn notions_verification_token_is_kept_not_run() {
        let s = spec("notion");
        let r = request(&[], &[], br#"{"verification_token":"secret_abc"}"#);
        assert_eq!(unsigned_handshake(&s, &r), Some(Handshake::Keep));
        let event = request(&[], &[], br#"{"verification_token":"x","type":"page.created"}"#);
        assert_eq!(unsigned_handshake(&s, &event), None);
    }
}
