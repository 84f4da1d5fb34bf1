//! The Connect Portal: server-rendered pages where a connected user sees the project's
//! integrations, connects and disconnects accounts, fills in User Settings and turns
//! workflows on and off. Plain HTML forms, no script, embeddable in the company's app.
//!
//! Routes (all under `/projects/{project}/portal`):
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the integrations, with icon, accent colour and connection status |
//! | `GET /{integration}` | one integration: overview, connection, settings, workflows |
//! | `POST /{integration}/connect` | start OAuth (303 to the provider) or store a non-OAuth credential |
//! | `POST /{integration}/disconnect` | `credential`: that account (the settings with the last one); without it every account and setting of the integration |
//! | `POST /{integration}/settings` | integration-level settings |
//! | `POST /{integration}/workflows/{workflow}` | a workflow's toggle and its settings |
//!
//! Who is asking: a user token (the same RS256 token the SDK uses) arrives once as `?token=`;
//! the page answers with a redirect to the same address without it and keeps the token in an
//! HttpOnly cookie scoped to the portal's path, so the token does not stay in the address bar,
//! history or access logs. Every form carries a CSRF token derived from the user token, checked
//! on each POST: the cookie alone is not proof that the user meant to submit (embedded pages
//! need a cookie that cross-site requests also carry).
//!
//! Values are checked with [`crate::settings::validate`]; an invalid form comes back with 422,
//! the values as typed and a message under each field.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use para_build::{Input, Integration, IntegrationKind};
use para_store::{CredentialStatus, SettingsKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connect::{self, BeginOAuth, ConnectField, ConnectKind};
use crate::routes::{api, options};
use crate::settings::{self, FieldError};
use crate::state::AppState;

/// Where the stylesheet shared by the portal and the dashboard is served.
pub(crate) const STYLESHEET: &str = "/_para/style.css";
/// The cookie holding the portal user's token.
const TOKEN_COOKIE: &str = "para_token";
/// The hidden form field carrying the CSRF token.
const CSRF_FIELD: &str = "csrf";
/// The accent colour of pages whose integration has none we can use.
const DEFAULT_ACCENT: &str = "#4F46E5";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(STYLESHEET, get(stylesheet))
        .route("/projects/{project}/portal", get(list))
        .route("/projects/{project}/portal/{integration}", get(page))
        .route("/projects/{project}/portal/{integration}/connect", post(connect_account))
        .route("/projects/{project}/portal/{integration}/disconnect", post(disconnect))
        .route("/projects/{project}/portal/{integration}/settings", post(save_settings))
        .route("/projects/{project}/portal/{integration}/workflows/{workflow}", post(save_workflow))
        .route("/projects/{project}/portal/_switch", post(switch_user))
}

// ---------------------------------------------------------------- templates and responses

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../../templates/layout.html")),
    ("message.html", include_str!("../../templates/message.html")),
    ("fields.html", include_str!("../../templates/fields.html")),
    ("portal_list.html", include_str!("../../templates/portal_list.html")),
    ("portal_integration.html", include_str!("../../templates/portal_integration.html")),
    ("dashboard_login.html", include_str!("../../templates/dashboard_login.html")),
    ("dashboard_users.html", include_str!("../../templates/dashboard_users.html")),
    ("dashboard_user.html", include_str!("../../templates/dashboard_user.html")),
    ("dashboard_runs.html", include_str!("../../templates/dashboard_runs.html")),
    ("dashboard_run.html", include_str!("../../templates/dashboard_run.html")),
    ("dashboard_releases.html", include_str!("../../templates/dashboard_releases.html")),
    ("dashboard_alerts.html", include_str!("../../templates/dashboard_alerts.html")),
    ("portal_switch.html", include_str!("../../templates/portal_switch.html")),
];

/// The template environment: every page template, HTML-escaped by default (`.html` names).
fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
        }
        env
    })
}

/// Renders a page template. A template error is a bug: it is logged and a short page is
/// shown instead.
pub(crate) fn render(name: &str, context: &impl Serialize) -> String {
    let rendered = templates()
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(context))));
    match rendered {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(template = name, error = format!("{e:#}"), "a page template failed");
            "<!doctype html><meta charset=utf-8><title>Error</title><p>This page could not be shown."
                .to_string()
        }
    }
}

/// Whether a page may be shown inside another site's frame.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Framing {
    /// The portal: any site may embed it.
    Anywhere,
    /// The dashboard: never framed.
    Never,
}

/// An HTML response with the headers every page carries: a CSP that allows no script,
/// no caching, no referrer (a URL may have held a token), no MIME sniffing.
pub(crate) fn html(status: StatusCode, body: String, framing: Framing) -> Response {
    let ancestors = match framing {
        Framing::Anywhere => "*",
        Framing::Never => "'none'",
    };
    let csp = format!(
        "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: https:; object-src 'none'; base-uri 'none'; frame-ancestors {ancestors}"
    );
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    if framing == Framing::Never {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// A 303 to `location`, with optional cookies to set.
pub(crate) fn see_other(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[derive(Serialize)]
struct Link {
    href: String,
    label: String,
}

#[derive(Serialize)]
struct MessagePage<'a> {
    stylesheet: &'static str,
    accent: Option<&'a str>,
    accent_ink: Option<&'a str>,
    heading: &'a str,
    paragraphs: Vec<String>,
    code: Option<String>,
    link: Option<Link>,
}

/// A page that only says something (an error, a refusal).
pub(crate) fn message_page(
    status: StatusCode,
    framing: Framing,
    heading: &str,
    paragraphs: Vec<String>,
    code: Option<String>,
) -> Response {
    let body = render(
        "message.html",
        &MessagePage {
            stylesheet: STYLESHEET,
            accent: None,
            accent_ink: None,
            heading,
            paragraphs,
            code,
            link: None,
        },
    );
    html(status, body, framing)
}

async fn stylesheet() -> Response {
    asset(
        include_str!("../../templates/style.css"),
        "text/css; charset=utf-8",
        "public, max-age=300",
    )
}

/// A file compiled into the binary, served with its type, a cache policy and `nosniff`.
pub(crate) fn asset(
    body: &'static str,
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The page for a store failure (the detail goes to the log).
fn storage_error(e: para_store::StoreError) -> Response {
    tracing::error!(error = %e, "storage error");
    message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        Framing::Anywhere,
        "Something went wrong",
        vec!["The server could not read or write its database. Try again in a moment.".into()],
        None,
    )
}

// ---------------------------------------------------------------- small helpers

pub(crate) use crate::web::cookie;

/// Whether cookies must be `Secure` (the server is reached over HTTPS).
pub(crate) fn secure_cookies(state: &AppState) -> bool {
    state.config.public_url.starts_with("https://")
}

pub(crate) use crate::web::segment;

/// A form body: the fields in the order the browser sent them.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of a field.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated field, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// A field's value unless it is missing or only whitespace.
    fn text(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }
}

/// A date for people: `2026-05-01 14:03 UTC`, from Unix milliseconds.
pub(crate) fn date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}

/// A colour safe to put in a style attribute (`#rgb`, `#rrggbb`, `#rrggbbaa`), or the default.
pub(crate) fn safe_color(color: Option<&str>) -> String {
    match color.map(str::trim) {
        Some(c)
            if c.starts_with('#')
                && matches!(c.len(), 4 | 7 | 9)
                && c[1..].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            c.to_string()
        }
        _ => DEFAULT_ACCENT.to_string(),
    }
}

/// The colour text drawn on `color` should have: white on dark colours, near-black on light.
pub(crate) fn ink_on(color: &str) -> &'static str {
    let hex = color.trim_start_matches('#');
    let channel = |i: usize| -> f64 {
        let text = if hex.len() == 3 { hex[i..=i].repeat(2) } else { hex[i * 2..i * 2 + 2].into() };
        let c = f64::from(u8::from_str_radix(&text, 16).unwrap_or(0)) / 255.0;
        if c <= 0.039_28 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    let luminance = 0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2);
    if luminance > 0.42 { "#111827" } else { "#ffffff" }
}

/// The accent colour of an integration: the catalog's, or the custom integration's own.
pub(crate) fn accent_of(integration: &Integration) -> String {
    match integration.kind {
        IntegrationKind::Catalog => {
            safe_color(para_catalog::lookup(&integration.key).map(|c| c.accent_color.as_str()))
        }
        IntegrationKind::Custom => {
            safe_color(integration.config.custom.as_ref().and_then(|c| c.accent_color.as_deref()))
        }
    }
}

/// The integration's icon as a `data:` URL (an `<img>` never runs what an SVG contains).
fn icon_of(integration: &Integration, accent: &str) -> String {
    let svg = match para_catalog::lookup(&integration.key) {
        Some(entry) if integration.kind == IntegrationKind::Catalog => entry.icon_svg(),
        _ => monogram(&integration.name, accent),
    };
    format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg))
}

/// A rounded square in the accent colour with the name's initials.
fn monogram(name: &str, accent: &str) -> String {
    let glyph: String = name
        .split(|c: char| !c.is_alphanumeric())
        .filter_map(|w| w.chars().next())
        .take(2)
        .collect::<String>()
        .to_uppercase();
    let glyph = if glyph.is_empty() { "?".to_string() } else { glyph };
    let escape = |t: &str| t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 48 48\">\
<rect width=\"48\" height=\"48\" rx=\"11\" fill=\"{accent}\"/>\
<text x=\"24\" y=\"24\" dy=\"0.35em\" text-anchor=\"middle\" font-family=\"system-ui,sans-serif\" \
font-weight=\"700\" font-size=\"20\" fill=\"{ink}\">{glyph}</text></svg>",
        ink = ink_on(accent),
        glyph = escape(&glyph),
    )
}

/// Markdown to HTML that is safe to show: rendered with pulldown-cmark, then cleaned by
/// ammonia (no script, event handlers, `javascript:` URLs, styles or frames survive; links
/// open in a new tab without a referrer).
pub(crate) fn markdown(text: &str) -> String {
    use pulldown_cmark::{Options, Parser, html::push_html};
    static CLEANER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    let mut rendered = String::new();
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    push_html(&mut rendered, Parser::new_ext(text, options));
    let cleaner = CLEANER.get_or_init(|| {
        let mut builder = ammonia::Builder::default();
        builder
            .link_rel(Some("noopener noreferrer nofollow"))
            .set_tag_attribute_value("a", "target", "_blank");
        builder
    });
    cleaner.clean(&rendered).to_string()
}

// ---------------------------------------------------------------- who is asking

/// A portal user: verified from the `para_token` cookie (or, on arrival, `?token=`).
pub(crate) struct PortalUser {
    pub user_id: String,
    token: String,
}

impl PortalUser {
    /// The CSRF token of this user's session (keyed with their token, see [`crate::web`]).
    fn csrf(&self) -> String {
        crate::web::csrf_token(&self.token, CSRF_PURPOSE)
    }

    /// Checks a submitted form's CSRF field (in constant time).
    fn check_csrf(&self, form: &Form) -> bool {
        crate::web::csrf_valid(&self.token, CSRF_PURPOSE, form.get(CSRF_FIELD))
    }
}

/// What the portal's CSRF tokens are for (a dashboard token does not pass here).
const CSRF_PURPOSE: &str = "para-portal-csrf:v1";

/// The portal's base path for the project: `/projects/{project}/portal`.
fn portal_path(project: &str) -> String {
    format!("/projects/{}/portal", segment(project))
}

/// The `{project}` of `/projects/{project}/portal…`, decoded.
fn project_of(path: &str) -> String {
    let raw = path.split('/').nth(2).unwrap_or_default();
    para_connect::send::percent_decode(raw).unwrap_or_else(|| raw.to_string())
}

/// The 401 page: what is missing and how to get a token.
fn denied(state: &AppState, reason: &str, clear_cookie: bool) -> Response {
    let portal = format!("{}{}", state.config.public_url, portal_path(&state.project_id));
    let mut response = message_page(
        StatusCode::UNAUTHORIZED,
        Framing::Anywhere,
        "Sign-in needed",
        vec![
            reason.to_string(),
            "The Connect Portal opens with a user token: the same signed token your app passes \
             to paragon.authenticate(). Your app signs one per user with the project's private \
             key; for development, make one with:"
                .into(),
        ],
        Some(format!("para token --user <user-id>\n# then open\n{portal}?token=<the token>")),
    );
    if clear_cookie {
        // Same attributes as when it was set: a partitioned cookie is only replaced by one.
        let cookie = token_cookie(state, "", 0);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The `Set-Cookie` value keeping the token for the portal's pages until it expires (`exp`,
/// Unix seconds; 0 deletes the cookie). Over HTTPS the cookie is `SameSite=None; Secure;
/// Partitioned` so the portal keeps working inside the company's app (a cross-site frame);
/// over plain HTTP (development) it is `SameSite=Lax`.
fn token_cookie(state: &AppState, token: &str, exp: u64) -> String {
    let max_age = if exp == 0 { 0 } else { exp.saturating_sub(para_auth::tokens::now()).max(1) };
    let site =
        if secure_cookies(state) { "SameSite=None; Secure; Partitioned" } else { "SameSite=Lax" };
    format!(
        "{TOKEN_COOKIE}={token}; Path={}; Max-Age={max_age}; HttpOnly; {site}",
        portal_path(&state.project_id)
    )
}

impl FromRequestParts<Arc<AppState>> for PortalUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        let project = project_of(parts.uri.path());
        if project != state.project_id {
            return Err(denied(
                state,
                &format!(
                    "This link is for project “{project}”, but this server serves project “{}”.",
                    state.project_id
                ),
                false,
            ));
        }
        // Arrival with ?token=: keep it in a cookie and send the browser to the same page
        // without it.
        let query: Vec<(String, String)> = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        if parts.method == Method::GET
            && let Some((_, token)) = query.iter().find(|(k, _)| k == "token")
        {
            let claims = state.verifier.verify(token).map_err(|e| {
                denied(state, &format!("The token in the link was refused: {e}."), false)
            })?;
            let rest: Vec<&(String, String)> = query.iter().filter(|(k, _)| k != "token").collect();
            let mut location = parts.uri.path().to_string();
            if !rest.is_empty() {
                let mut serializer = form_urlencoded::Serializer::new(String::new());
                for (k, v) in rest {
                    serializer.append_pair(k, v);
                }
                location.push('?');
                location.push_str(&serializer.finish());
            }
            // A link must not silently sign out whoever is signed in here and sign in someone
            // else (login CSRF: the victim would then connect accounts for the link's user).
            // Another user's session is only replaced once its holder confirms, with a form
            // only that session can submit.
            if let Some(current) = cookie(&parts.headers, TOKEN_COOKIE).filter(|t| !t.is_empty())
                && let Ok(signed_in) = state.verifier.verify(&current)
                && signed_in.user_id != claims.user_id
            {
                let user = PortalUser { user_id: signed_in.user_id, token: current };
                return Err(switch_page(state, &user, &claims.user_id, token.trim(), &location));
            }
            state
                .store
                .touch_signed_user(&state.project_id, &claims.user_id, claims.meta.as_ref())
                .await
                .map_err(storage_error)?;
            return Err(see_other(&location, &[token_cookie(state, token.trim(), claims.exp)]));
        }
        let Some(token) = cookie(&parts.headers, TOKEN_COOKIE).filter(|t| !t.is_empty()) else {
            return Err(denied(state, "You are not signed in to the Connect Portal.", false));
        };
        let claims = state
            .verifier
            .verify(&token)
            .map_err(|e| denied(state, &format!("Your sign-in is no longer valid: {e}."), true))?;
        state
            .store
            .touch_signed_user(&state.project_id, &claims.user_id, claims.meta.as_ref())
            .await
            .map_err(storage_error)?;
        Ok(PortalUser { user_id: claims.user_id, token })
    }
}

#[derive(Serialize)]
struct SwitchPage<'a> {
    stylesheet: &'static str,
    accent: Option<&'a str>,
    accent_ink: Option<&'a str>,
    current: &'a str,
    next: &'a str,
    action: String,
    csrf: String,
    token: &'a str,
    to: &'a str,
}

/// Asks `user` (signed in here) whether to switch to `next`, the user of the link's `token`.
fn switch_page(state: &AppState, user: &PortalUser, next: &str, token: &str, to: &str) -> Response {
    let page = SwitchPage {
        stylesheet: STYLESHEET,
        accent: None,
        accent_ink: None,
        current: &user.user_id,
        next,
        action: format!("{}/_switch", portal_path(&state.project_id)),
        csrf: user.csrf(),
        token,
        to,
    };
    html(StatusCode::OK, render("portal_switch.html", &page), Framing::Anywhere)
}

/// `POST /portal/_switch`: the signed-in user confirmed switching to the user of `token`. The
/// form carries the current session's CSRF token, which another site cannot know, so a link
/// alone never switches anyone.
async fn switch_user(
    State(state): State<Arc<AppState>>,
    user: PortalUser,
    body: Bytes,
) -> Response {
    let Some(form) = checked_form(&user, &body) else {
        return csrf_refused();
    };
    let token = form.get("token").unwrap_or_default().trim();
    let claims = match state.verifier.verify(token) {
        Ok(claims) => claims,
        Err(e) => {
            return denied(&state, &format!("The token in the link was refused: {e}."), false);
        }
    };
    if let Err(e) = state
        .store
        .touch_signed_user(&state.project_id, &claims.user_id, claims.meta.as_ref())
        .await
    {
        return storage_error(e);
    }
    // Back to the page the link named, which must be one of this portal's.
    let base = portal_path(&state.project_id);
    let to = form.get("to").unwrap_or_default();
    let to = if (to == base
        || to.starts_with(&format!("{base}/"))
        || to.starts_with(&format!("{base}?")))
        && !to.contains("//")
        && !to.contains('\\')
    {
        to.to_string()
    } else {
        base
    };
    see_other(&to, &[token_cookie(&state, token, claims.exp)])
}

/// Parses a POST body; `None` unless its CSRF field is this session's.
fn checked_form(user: &PortalUser, body: &[u8]) -> Option<Form> {
    let form = Form::parse(body);
    user.check_csrf(&form).then_some(form)
}

/// The 403 page for a form without the right CSRF token.
fn csrf_refused() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        Framing::Anywhere,
        "This form could not be accepted",
        vec![
            "It was sent without this page's security token, or from another site. \
             Reload the page and try again."
                .into(),
        ],
        None,
    )
}

// ---------------------------------------------------------------- the integration list

#[derive(Serialize)]
struct ListPage {
    stylesheet: &'static str,
    accent: Option<String>,
    accent_ink: Option<String>,
    project_name: String,
    user_id: String,
    integrations: Vec<ListItem>,
}

#[derive(Serialize)]
struct ListItem {
    key: String,
    name: String,
    description: Option<String>,
    icon: String,
    accent: String,
    href: String,
    status: Option<CredentialStatus>,
    status_label: Option<String>,
}

/// A person's word for a credential status.
pub(crate) fn status_label(status: CredentialStatus) -> &'static str {
    match status {
        CredentialStatus::Valid => "Connected",
        CredentialStatus::Invalid => "Needs attention",
        CredentialStatus::Pending => "Pending",
    }
}

/// The integrations users are offered, by display name.
fn offered(build: &para_build::Build) -> Vec<&Integration> {
    let mut list: Vec<&Integration> =
        build.integrations.values().filter(|i| i.config.active).collect();
    list.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.key.cmp(&b.key)));
    list
}

async fn list(
    State(state): State<Arc<AppState>>,
    Path(_project): Path<String>,
    user: PortalUser,
) -> Response {
    let build = state.build();
    let credentials = match state.store.credentials(&state.project_id, &user.user_id, None).await {
        Ok(c) => c,
        Err(e) => return storage_error(e),
    };
    let base = portal_path(&state.project_id);
    let integrations = offered(&build)
        .into_iter()
        .map(|i| {
            let accent = accent_of(i);
            let credential = credentials.iter().find(|c| c.integration == i.key);
            ListItem {
                key: i.key.clone(),
                name: i.name.clone(),
                description: i.config.description.clone(),
                icon: icon_of(i, &accent),
                accent,
                href: format!("{base}/{}", segment(&i.key)),
                status: credential.map(|c| c.status),
                status_label: credential.map(|c| status_label(c.status).to_string()),
            }
        })
        .collect();
    let page = ListPage {
        stylesheet: STYLESHEET,
        accent: None,
        accent_ink: None,
        project_name: build.project.project_name.clone().unwrap_or_else(|| "Paragraph".into()),
        user_id: user.user_id.clone(),
        integrations,
    };
    html(StatusCode::OK, render("portal_list.html", &page), Framing::Anywhere)
}

// ---------------------------------------------------------------- one integration

/// One form control, as `fields.html` draws it.
#[derive(Serialize, Default)]
struct FieldView {
    /// The form field name (`in.<input id>`, `cf.<key>`).
    name: String,
    html_id: String,
    title: String,
    /// `text`, `number`, `password`, `boolean`, `select` or `mapping`.
    kind: &'static str,
    required: bool,
    value: String,
    checked: bool,
    placeholder: String,
    hint: Option<String>,
    error: Option<String>,
    /// A password is stored (never shown).
    saved: bool,
    options: Vec<OptionView>,
    mapping: Option<MappingView>,
}

#[derive(Serialize)]
struct OptionView {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Serialize)]
struct MappingView {
    record_types: Vec<String>,
    record_type: String,
    rows: Vec<MappingRow>,
}

#[derive(Serialize)]
struct MappingRow {
    key: String,
    label: String,
    value: String,
    /// A declared field: its key is not editable.
    fixed: bool,
}

#[derive(Serialize)]
struct Banner {
    kind: &'static str,
    text: String,
}

#[derive(Serialize)]
struct IntegrationView {
    key: String,
    name: String,
    description: Option<String>,
    overview_html: Option<String>,
    icon: String,
    watermark: bool,
}

#[derive(Serialize)]
struct ConnectionView {
    /// The credential's id, which the account's Disconnect form sends.
    id: String,
    status: CredentialStatus,
    status_label: &'static str,
    status_reason: Option<String>,
    account: Option<String>,
    since: String,
}

#[derive(Serialize)]
struct ConnectView {
    explain: String,
    fields: Vec<FieldView>,
    error: Option<String>,
    /// The form comes back with what was typed (a refusal): keep it open.
    again: bool,
}

#[derive(Serialize)]
struct SettingsView {
    fields: Vec<FieldView>,
}

#[derive(Serialize)]
struct WorkflowView {
    id: String,
    name: String,
    description: Option<String>,
    enabled: bool,
    anchor: String,
    action: String,
    fields: Vec<FieldView>,
    has_error: bool,
}

#[derive(Serialize)]
struct Actions {
    connect: String,
    disconnect: String,
    settings: String,
}

#[derive(Serialize)]
struct IntegrationPage {
    stylesheet: &'static str,
    accent: String,
    accent_ink: &'static str,
    list_href: String,
    user_id: String,
    csrf: String,
    integration: IntegrationView,
    banners: Vec<Banner>,
    /// Every account of the user for the integration, newest first (the page's `connection` is
    /// the first).
    accounts: Vec<ConnectionView>,
    connect: ConnectView,
    settings: SettingsView,
    workflows: Vec<WorkflowView>,
    actions: Actions,
}

/// Values as a form submitted them, and what is wrong with them.
#[derive(Default)]
struct Typed {
    values: Map<String, Value>,
    errors: Vec<FieldError>,
}

/// A workflow form as submitted.
struct WorkflowRedo {
    id: String,
    enabled: bool,
    typed: Typed,
}

/// The connect form as submitted, and why connecting failed.
#[derive(Default)]
struct ConnectRedo {
    typed: Typed,
    message: Option<String>,
}

/// What a failed POST puts back on the page: the values as typed and what is wrong.
#[derive(Default)]
struct Redo {
    settings: Option<Typed>,
    workflow: Option<WorkflowRedo>,
    connect: Option<ConnectRedo>,
    banners: Vec<Banner>,
}

#[derive(Deserialize, Default)]
struct PageQuery {
    connected: Option<String>,
    error: Option<String>,
    saved: Option<String>,
    disconnected: Option<String>,
}

/// A text from the query string, made safe to show: at most 300 characters.
fn shown(text: &str) -> String {
    let mut t: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        t.push('…');
    }
    t
}

async fn page(
    State(state): State<Arc<AppState>>,
    Path((_project, key)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
    user: PortalUser,
) -> Response {
    let build = state.build();
    let Some(integration) = find(&build, &key) else { return no_such_integration(&key) };
    let mut redo = Redo::default();
    if let Some(error) = query.error.as_deref().filter(|e| !e.is_empty()) {
        redo.banners.push(Banner {
            kind: "error",
            text: format!("{} could not be connected: {}", integration.name, shown(error)),
        });
    }
    if query.connected.is_some() {
        redo.banners
            .push(Banner { kind: "ok", text: format!("{} is connected.", integration.name) });
    }
    if query.disconnected.is_some() {
        redo.banners
            .push(Banner { kind: "ok", text: format!("{} is disconnected.", integration.name) });
    }
    match query.saved.as_deref() {
        Some("settings") => {
            redo.banners.push(Banner { kind: "ok", text: "Settings saved.".into() })
        }
        Some(_) => redo.banners.push(Banner { kind: "ok", text: "Workflow saved.".into() }),
        None => {}
    }
    respond_page(&state, &user, integration, redo, StatusCode::OK).await
}

fn find<'b>(build: &'b para_build::Build, key: &str) -> Option<&'b Integration> {
    build.integrations.get(key).filter(|i| i.config.active)
}

fn no_such_integration(key: &str) -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        Framing::Anywhere,
        "No such integration",
        vec![format!("This project offers no integration “{}”.", shown(key))],
        None,
    )
}

/// The address of an integration's page, under the portal.
fn page_path(state: &AppState, key: &str) -> String {
    format!("{}/{}", portal_path(&state.project_id), segment(key))
}

/// Renders the integration page, with whatever a failed POST hands back.
async fn respond_page(
    state: &AppState,
    user: &PortalUser,
    integration: &Integration,
    redo: Redo,
    status: StatusCode,
) -> Response {
    match page_view(state, user, integration, redo).await {
        Ok(view) => html(status, render("portal_integration.html", &view), Framing::Anywhere),
        Err(e) => storage_error(e),
    }
}

async fn page_view(
    state: &AppState,
    user: &PortalUser,
    integration: &Integration,
    mut redo: Redo,
) -> Result<IntegrationPage, para_store::StoreError> {
    let credentials =
        state.store.credentials(&state.project_id, &user.user_id, Some(&integration.key)).await?;
    let stored = state.store.settings(&state.project_id, &user.user_id).await?;
    let stored_values = |workflow_id: &str| -> Option<&para_store::Settings> {
        para_store::Settings::find(
            &stored,
            &integration.key,
            &SettingsKey::Integration,
            workflow_id,
        )
    };
    let accent = accent_of(integration);
    let base = page_path(state, &integration.key);
    let catalog = para_catalog::lookup(&integration.key)
        .filter(|_| integration.kind == IntegrationKind::Catalog);
    let accounts: Vec<ConnectionView> = credentials
        .iter()
        .map(|c| ConnectionView {
            id: c.id.clone(),
            status: c.status,
            status_label: status_label(c.status),
            status_reason: c.status_reason.clone(),
            account: c.provider_id.clone().or_else(|| {
                ["email", "name", "login"].iter().find_map(|k| {
                    c.provider_data.get(k).and_then(Value::as_str).map(str::to_string)
                })
            }),
            since: date(c.created_at),
        })
        .collect();

    // Choices of integration-specific setting types, listed with the user's credential.
    let connected = credentials.iter().any(|c| c.status == CredentialStatus::Valid);
    let choices = options::all_choices(state, &user.user_id, integration, connected).await;

    // Integration-level settings.
    let shared = stored_values("");
    let (settings_values, settings_errors, fresh) = match redo.settings.take() {
        Some(typed) => (typed.values, typed.errors, false),
        None => (object(shared.map(|s| &s.values)), Vec::new(), shared.is_none()),
    };
    let stored_shared = object(shared.map(|s| &s.values));
    let settings_fields = integration
        .inputs
        .iter()
        .enumerate()
        .map(|(n, input)| {
            field_view(
                input,
                &format!("s{n}"),
                &settings_values,
                &stored_shared,
                fresh,
                &settings_errors,
                catalog,
                &choices,
            )
        })
        .collect();

    // Workflows the user may use (definePermissions over their metadata), in display order.
    let meta = user_meta(state, &user.user_id).await?;
    let mut workflows: Vec<&para_build::Workflow> = integration
        .workflows
        .values()
        .filter(|w| !w.hidden && api::permitted_for(w, &user.user_id, &meta))
        .collect();
    workflows.sort_by(|a, b| a.order.cmp(&b.order).then(a.name.cmp(&b.name)));
    let workflow_views = workflows
        .iter()
        .enumerate()
        .map(|(w, workflow)| {
            let row = stored_values(&workflow.id);
            let stored_wf = object(row.map(|s| &s.values));
            let redone = redo.workflow.as_ref().filter(|r| r.id == workflow.id);
            let (enabled, values, errors, fresh) = match redone {
                Some(r) => (r.enabled, r.typed.values.clone(), r.typed.errors.clone(), false),
                None => (
                    !accounts.is_empty()
                        && row.and_then(|s| s.enabled).unwrap_or(workflow.default_enabled),
                    stored_wf.clone(),
                    Vec::new(),
                    row.is_none(),
                ),
            };
            WorkflowView {
                id: workflow.id.clone(),
                name: workflow.name.clone(),
                description: workflow.description.clone(),
                enabled,
                anchor: format!("workflow-{w}"),
                action: format!("{base}/workflows/{}", segment(&workflow.id)),
                fields: workflow
                    .inputs
                    .iter()
                    .enumerate()
                    .map(|(n, input)| {
                        field_view(
                            input,
                            &format!("w{w}-{n}"),
                            &values,
                            &stored_wf,
                            fresh,
                            &errors,
                            catalog,
                            &choices,
                        )
                    })
                    .collect(),
                has_error: !errors.is_empty(),
            }
        })
        .collect();

    // Connecting.
    let (kind, connect_fields) = connect_fields(state, integration);
    let again = redo.connect.is_some();
    let ConnectRedo {
        typed: Typed { values: typed, errors: connect_errors },
        message: connect_error,
    } = redo.connect.take().unwrap_or_default();
    let connect = ConnectView {
        explain: match kind {
            ConnectKind::OAuth => format!(
                "You will sign in to {} and allow access; then you come back here.",
                integration.name
            ),
            ConnectKind::ApiKey => {
                format!("Paste the API key of your {} account.", integration.name)
            }
            ConnectKind::Basic | ConnectKind::Password => {
                format!("Enter the credentials of your {} account.", integration.name)
            }
            ConnectKind::ClientCredentials => {
                format!("Enter the client id and secret of your {} app.", integration.name)
            }
        },
        fields: connect_fields
            .iter()
            .enumerate()
            .map(|(n, f)| connect_field_view(f, n, &typed, &connect_errors))
            .collect(),
        error: connect_error,
        again,
    };

    Ok(IntegrationPage {
        stylesheet: STYLESHEET,
        accent_ink: ink_on(&accent),
        accent: accent.clone(),
        list_href: portal_path(&state.project_id),
        user_id: user.user_id.clone(),
        csrf: user.csrf(),
        integration: IntegrationView {
            key: integration.key.clone(),
            name: integration.name.clone(),
            description: integration.config.description.clone(),
            overview_html: integration
                .config
                .overview
                .as_deref()
                .filter(|o| !o.trim().is_empty())
                .map(markdown),
            icon: icon_of(integration, &accent),
            watermark: integration.config.show_watermark,
        },
        banners: redo.banners,
        accounts,
        connect,
        settings: SettingsView { fields: settings_fields },
        workflows: workflow_views,
        actions: Actions {
            connect: format!("{base}/connect"),
            disconnect: format!("{base}/disconnect"),
            settings: format!("{base}/settings"),
        },
    })
}

/// A stored settings value as an object (anything else counts as empty).
fn object(value: Option<&Value>) -> Map<String, Value> {
    value.and_then(Value::as_object).cloned().unwrap_or_default()
}

/// How a value reads in a text box.
fn as_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The form control for one User Setting. `values` are what to show (stored or as typed);
/// `stored` tells whether a password is saved; with `fresh` (nothing saved yet for this
/// scope) the input's default value is shown.
#[allow(clippy::too_many_arguments)]
fn field_view(
    input: &Input,
    html_id: &str,
    values: &Map<String, Value>,
    stored: &Map<String, Value>,
    fresh: bool,
    errors: &[FieldError],
    catalog: Option<&para_catalog::Integration>,
    choices: &options::Choices,
) -> FieldView {
    let value = values.get(&input.id).or(if fresh { input.default_value.as_ref() } else { None });
    let catalog_type =
        catalog.and_then(|c| c.input_types.iter().find(|t| t.name == input.input_type));
    let hint = match (input.tooltip.as_deref(), catalog_type) {
        (Some(tip), _) => Some(tip.to_string()),
        (None, Some(t)) => Some(format!("{}: {}", t.label, t.description)),
        (None, None) => None,
    };
    let mut view = FieldView {
        name: format!("in.{}", input.id),
        html_id: format!("f-{html_id}"),
        title: if input.title.trim().is_empty() { input.key.clone() } else { input.title.clone() },
        kind: "text",
        required: input.required,
        placeholder: input.placeholder.clone().unwrap_or_default(),
        hint,
        error: errors.iter().find(|e| e.input_id == input.id).map(|e| e.message.clone()),
        ..FieldView::default()
    };
    match input.input_type.as_str() {
        "number" => {
            view.kind = "number";
            view.value = as_text(value);
        }
        "boolean" => {
            view.kind = "boolean";
            view.checked = value == Some(&Value::Bool(true));
        }
        "password" => {
            view.kind = "password";
            view.saved = !settings::is_blank(stored.get(&input.id));
        }
        "custom_dropdown" => {
            view.kind = "select";
            let current = as_text(value);
            view.options = settings::dropdown_options(input)
                .into_iter()
                .map(|(label, v)| {
                    let v = as_text(Some(&v));
                    OptionView { selected: !current.is_empty() && v == current, value: v, label }
                })
                .collect();
        }
        "field_mapping" => {
            view.kind = "mapping";
            let map = object(value);
            let declared = settings::mapped_fields(input);
            let mut rows: Vec<MappingRow> = declared
                .iter()
                .map(|(label, key)| MappingRow {
                    key: key.clone(),
                    label: label.clone(),
                    value: as_text(map.get(key)),
                    fixed: true,
                })
                .collect();
            for (key, v) in &map {
                if key != "record_type" && !declared.iter().any(|(_, k)| k == key) {
                    rows.push(MappingRow {
                        key: key.clone(),
                        label: key.clone(),
                        value: as_text(Some(v)),
                        fixed: false,
                    });
                }
            }
            let dynamic = declared.is_empty()
                || input.options.get("useDynamicMapper").and_then(Value::as_bool) == Some(true);
            if dynamic {
                for _ in 0..2 {
                    rows.push(MappingRow {
                        key: String::new(),
                        label: String::new(),
                        value: String::new(),
                        fixed: false,
                    });
                }
            }
            view.mapping = Some(MappingView {
                record_types: catalog.map(|c| c.record_types.clone()).unwrap_or_default(),
                record_type: as_text(map.get("record_type")),
                rows,
            });
        }
        other => {
            view.value = as_text(value);
            match choices.get(other) {
                Some(Ok(Some(list))) => {
                    view.kind = "select";
                    let current = view.value.clone();
                    view.options = list
                        .iter()
                        .map(|(label, v)| OptionView {
                            selected: !current.is_empty() && *v == current,
                            value: v.clone(),
                            label: label.clone(),
                        })
                        .collect();
                    // A stored value the provider no longer lists stays choosable.
                    if !current.is_empty() && !list.iter().any(|(_, v)| *v == current) {
                        view.options.insert(
                            0,
                            OptionView { value: current.clone(), label: current, selected: true },
                        );
                    }
                }
                Some(Err(why)) => {
                    let note =
                        format!("The list of choices could not be loaded ({why}); type the value.");
                    view.hint = Some(match view.hint.take() {
                        Some(h) => format!("{h} {note}"),
                        None => note,
                    });
                }
                _ => {}
            }
        }
    }
    view
}

/// The user's metadata as the company's app last set it.
/// The metadata the user's workflow permissions read ([`api::permission_meta`]).
async fn user_meta(state: &AppState, user_id: &str) -> Result<Value, para_store::StoreError> {
    Ok(match state.store.user(&state.project_id, user_id).await? {
        Some(u) => api::permission_meta(state, &u.meta, &u.signed_meta).clone(),
        None => Value::Object(Map::new()),
    })
}

/// The form control of a value asked before connecting. Secrets are never shown back.
fn connect_field_view(
    field: &ConnectField,
    n: usize,
    typed: &Map<String, Value>,
    errors: &[FieldError],
) -> FieldView {
    FieldView {
        name: format!("cf.{}", field.key),
        html_id: format!("f-c{n}"),
        title: field.label.clone(),
        kind: if field.secret { "password" } else { "text" },
        required: field.required,
        value: if field.secret { String::new() } else { as_text(typed.get(&field.key)) },
        placeholder: field.placeholder.clone().unwrap_or_default(),
        hint: field.help.clone(),
        error: errors.iter().find(|e| e.input_id == field.key).map(|e| e.message.clone()),
        ..FieldView::default()
    }
}

/// How the integration connects and what it asks first (`connect::connect_info`, which knows
/// every custom integration and every catalog one; anything else is shown as OAuth, asking
/// nothing).
fn connect_fields(state: &AppState, integration: &Integration) -> (ConnectKind, Vec<ConnectField>) {
    connect::connect_info(state, &integration.key)
        .map_or((ConnectKind::OAuth, Vec::new()), |info| (info.kind, info.fields))
}

/// Reads the submitted values of `inputs` (`in.<id>` fields) over the stored ones: keys the
/// form does not own are kept, an emptied field is removed, an empty password keeps the
/// saved one. Numbers and dropdown choices become the JSON values they stand for; text that
/// is not one stays text, for [`settings::validate`] to report.
fn read_inputs(inputs: &[Input], form: &Form, stored: &Map<String, Value>) -> Map<String, Value> {
    let mut values = stored.clone();
    for input in inputs {
        let name = format!("in.{}", input.id);
        let value = match input.input_type.as_str() {
            "boolean" => Some(Value::Bool(form.get(&name).is_some())),
            "password" => match form.get(&name).filter(|v| !v.is_empty()) {
                Some(typed) => Some(Value::String(typed.to_string())),
                None => stored.get(&input.id).filter(|v| !settings::is_blank(Some(v))).cloned(),
            },
            "number" => form.text(&name).map(|t| number_value(t.trim())),
            "custom_dropdown" => form.text(&name).map(|t| {
                settings::dropdown_options(input)
                    .into_iter()
                    .map(|(_, v)| v)
                    .find(|v| as_text(Some(v)) == t)
                    .unwrap_or_else(|| Value::String(t.to_string()))
            }),
            "field_mapping" => {
                let mut map = Map::new();
                if let Some(record_type) = form.text(&format!("{name}.record_type")) {
                    map.insert("record_type".into(), Value::String(record_type.trim().into()));
                }
                let keys = form.all(&format!("{name}.key"));
                let targets = form.all(&format!("{name}.value"));
                for (key, target) in keys.iter().zip(targets.iter()) {
                    let (key, target) = (key.trim(), target.trim());
                    if !key.is_empty() && !target.is_empty() {
                        map.insert(key.to_string(), Value::String(target.to_string()));
                    }
                }
                (!map.is_empty()).then_some(Value::Object(map))
            }
            _ => form.text(&name).map(|t| Value::String(t.to_string())),
        };
        match value {
            Some(v) => values.insert(input.id.clone(), v),
            None => values.remove(&input.id),
        };
    }
    values
}

/// `"25"` → 25, `"2.5"` → 2.5; anything else stays the text it is.
fn number_value(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        return Value::from(n);
    }
    match settings::as_number(&Value::String(text.to_string()))
        .and_then(serde_json::Number::from_f64)
    {
        Some(n) => Value::Number(n),
        None => Value::String(text.to_string()),
    }
}

/// Connected means: the user holds a credential for the integration (valid or not).
async fn is_connected(
    state: &AppState,
    user: &PortalUser,
    key: &str,
) -> Result<bool, para_store::StoreError> {
    Ok(!state.store.credentials(&state.project_id, &user.user_id, Some(key)).await?.is_empty())
}

fn not_connected(integration: &Integration) -> Redo {
    Redo {
        banners: vec![Banner {
            kind: "error",
            text: format!(
                "Connect {} first: its settings are kept with the connection.",
                integration.name
            ),
        }],
        ..Redo::default()
    }
}

async fn save_settings(
    State(state): State<Arc<AppState>>,
    Path((_project, key)): Path<(String, String)>,
    user: PortalUser,
    body: Bytes,
) -> Response {
    let Some(form) = checked_form(&user, &body) else { return csrf_refused() };
    let build = state.build();
    let Some(integration) = find(&build, &key) else { return no_such_integration(&key) };
    match is_connected(&state, &user, &integration.key).await {
        Ok(true) => {}
        Ok(false) => {
            return respond_page(
                &state,
                &user,
                integration,
                not_connected(integration),
                StatusCode::CONFLICT,
            )
            .await;
        }
        Err(e) => return storage_error(e),
    }
    let stored = match state.store.settings(&state.project_id, &user.user_id).await {
        Ok(rows) => object(
            para_store::Settings::find(&rows, &integration.key, &SettingsKey::Integration, "")
                .map(|s| &s.values),
        ),
        Err(e) => return storage_error(e),
    };
    let values = read_inputs(&integration.inputs, &form, &stored);
    let errors = settings::validate(&integration.inputs, &values);
    if !errors.is_empty() {
        let redo = Redo {
            banners: vec![Banner { kind: "error", text: fix_message(errors.len()) }],
            settings: Some(Typed { values, errors }),
            ..Redo::default()
        };
        return respond_page(&state, &user, integration, redo, StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    }
    let saved = crate::passwords::put_settings(
        &state,
        integration_level(&state, &user.user_id, &integration.key, ""),
        None,
        Some(&Value::Object(values)),
    )
    .await;
    match saved {
        Ok(()) => see_other(
            &format!("{}?saved=settings#settings", page_path(&state, &integration.key)),
            &[],
        ),
        Err(e) => storage_error(e),
    }
}

fn fix_message(count: usize) -> String {
    if count == 1 {
        "Nothing was saved: one value needs fixing.".into()
    } else {
        format!("Nothing was saved: {count} values need fixing.")
    }
}

async fn save_workflow(
    State(state): State<Arc<AppState>>,
    Path((_project, key, workflow_id)): Path<(String, String, String)>,
    user: PortalUser,
    body: Bytes,
) -> Response {
    let Some(form) = checked_form(&user, &body) else { return csrf_refused() };
    let build = state.build();
    let Some(integration) = find(&build, &key) else { return no_such_integration(&key) };
    let meta = match user_meta(&state, &user.user_id).await {
        Ok(meta) => meta,
        Err(e) => return storage_error(e),
    };
    let offered =
        |w: &&para_build::Workflow| !w.hidden && api::permitted_for(w, &user.user_id, &meta);
    let Some(workflow) = integration.workflows.get(&workflow_id).filter(offered) else {
        return message_page(
            StatusCode::NOT_FOUND,
            Framing::Anywhere,
            "No such workflow",
            vec![format!("{} has no workflow “{}”.", integration.name, shown(&workflow_id))],
            None,
        );
    };
    match is_connected(&state, &user, &integration.key).await {
        Ok(true) => {}
        Ok(false) => {
            return respond_page(
                &state,
                &user,
                integration,
                not_connected(integration),
                StatusCode::CONFLICT,
            )
            .await;
        }
        Err(e) => return storage_error(e),
    }
    let enabled = form.get("enabled").is_some();
    let anchor = {
        let mut list: Vec<&para_build::Workflow> =
            integration.workflows.values().filter(offered).collect();
        list.sort_by(|a, b| a.order.cmp(&b.order).then(a.name.cmp(&b.name)));
        list.iter().position(|w| w.id == workflow.id).unwrap_or(0)
    };
    let values = if enabled {
        let stored = match state.store.settings(&state.project_id, &user.user_id).await {
            Ok(rows) => object(
                para_store::Settings::find(
                    &rows,
                    &integration.key,
                    &SettingsKey::Integration,
                    &workflow.id,
                )
                .map(|s| &s.values),
            ),
            Err(e) => return storage_error(e),
        };
        let values = read_inputs(&workflow.inputs, &form, &stored);
        let errors = settings::validate(&workflow.inputs, &values);
        if !errors.is_empty() {
            let redo = Redo {
                banners: vec![Banner {
                    kind: "error",
                    text: format!(
                        "{} was not turned on: {}",
                        workflow.name,
                        fix_message(errors.len()).to_lowercase()
                    ),
                }],
                workflow: Some(WorkflowRedo {
                    id: workflow.id.clone(),
                    enabled,
                    typed: Typed { values, errors },
                }),
                ..Redo::default()
            };
            return respond_page(
                &state,
                &user,
                integration,
                redo,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Some(Value::Object(values))
    } else {
        // Turning a workflow off never fails on its settings; they stay as they were.
        None
    };
    let saved = crate::passwords::put_settings(
        &state,
        integration_level(&state, &user.user_id, &integration.key, &workflow.id),
        Some(enabled),
        values.as_ref(),
    )
    .await;
    match saved {
        Ok(()) => see_other(
            &format!("{}?saved=workflow#workflow-{anchor}", page_path(&state, &integration.key)),
            &[],
        ),
        Err(e) => storage_error(e),
    }
}

async fn connect_account(
    State(state): State<Arc<AppState>>,
    Path((_project, key)): Path<(String, String)>,
    user: PortalUser,
    body: Bytes,
) -> Response {
    let Some(form) = checked_form(&user, &body) else { return csrf_refused() };
    let build = state.build();
    let Some(integration) = find(&build, &key) else { return no_such_integration(&key) };
    let (kind, fields) = connect_fields(&state, integration);
    let mut values = Map::new();
    let mut errors = Vec::new();
    for field in &fields {
        match form.text(&format!("cf.{}", field.key)) {
            Some(v) => {
                let v = if field.secret { v.to_string() } else { v.trim().to_string() };
                values.insert(field.key.clone(), Value::String(v));
            }
            None if field.required => errors.push(FieldError {
                input_id: field.key.clone(),
                message: format!("{} is required: enter a value.", field.label),
            }),
            None => {}
        }
    }
    if !errors.is_empty() {
        let redo = Redo {
            connect: Some(ConnectRedo { typed: Typed { values, errors }, message: None }),
            ..Redo::default()
        };
        return respond_page(&state, &user, integration, redo, StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    }
    let page = page_path(&state, &integration.key);
    let outcome = if kind == ConnectKind::OAuth {
        let options = BeginOAuth {
            values: values.clone(),
            return_to: Some(format!("{}{page}", state.config.public_url)),
            ..BeginOAuth::default()
        };
        // The callback accepts only the browser that started the flow: bind this one.
        match crate::web::bind_browser(&state, &user.user_id).await {
            Ok(binding) => connect::begin_oauth(&state, &user.user_id, &integration.key, options)
                .await
                .map(|url| see_other(&url, &[binding]))
                .map_err(crate::ApiError::from),
            Err(e) => Err(e),
        }
    } else {
        connect::create_credential(&state, &user.user_id, &integration.key, values.clone())
            .await
            .map(|credential| {
                let mut serializer = form_urlencoded::Serializer::new(String::new());
                serializer.append_pair("connected", &credential.id);
                see_other(&format!("{page}?{}", serializer.finish()), &[])
            })
            .map_err(crate::ApiError::from)
    };
    match outcome {
        Ok(response) => response,
        Err(e) => {
            let status = if e.status.is_client_error() || e.status.is_server_error() {
                e.status
            } else {
                StatusCode::BAD_GATEWAY
            };
            let redo = Redo {
                connect: Some(ConnectRedo {
                    typed: Typed { values, errors: Vec::new() },
                    message: Some(format!(
                        "{} could not be connected: {}",
                        integration.name, e.message
                    )),
                }),
                ..Redo::default()
            };
            respond_page(&state, &user, integration, redo, status).await
        }
    }
}

async fn disconnect(
    State(state): State<Arc<AppState>>,
    Path((_project, key)): Path<(String, String)>,
    user: PortalUser,
    body: Bytes,
) -> Response {
    let Some(form) = checked_form(&user, &body) else { return csrf_refused() };
    let build = state.build();
    let Some(integration) = find(&build, &key) else { return no_such_integration(&key) };
    // An account's own form names its credential: only that account goes (the settings with
    // the last one). Without it, every account and setting of the integration goes.
    let credential = form.text("credential");
    match connect::disconnect(&state, &user.user_id, &integration.key, credential).await {
        Ok(Some(_)) => {
            see_other(&format!("{}?disconnected=1", page_path(&state, &integration.key)), &[])
        }
        Ok(None) => message_page(
            StatusCode::NOT_FOUND,
            Framing::Anywhere,
            "No such account",
            vec![format!(
                "You have no {} account with this id any more. Reload the page to see your accounts.",
                integration.name
            )],
            None,
        ),
        Err(e) => storage_error(e),
    }
}

/// Where the portal saves: the integration-level settings (the ones every account's default
/// configuration shows; configurations made with `createConfiguration` are the SDK's).
fn integration_level<'a>(
    state: &'a AppState,
    user_id: &'a str,
    integration: &'a str,
    workflow_id: &'a str,
) -> para_store::SettingsScope<'a> {
    para_store::SettingsScope {
        project_id: &state.project_id,
        user_id,
        integration,
        configuration: &SettingsKey::Integration,
        workflow_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            templates().get_template(name).unwrap();
        }
    }

    #[test]
    fn markdown_is_rendered_and_sanitised() {
        let out = markdown(
            "Hello **world** [docs](https://example.com) [bad](javascript:alert(1))\n\n\
             <script>alert(1)</script><img src=x onerror=\"alert(2)\"><a href=\"javascript:alert(3)\">x</a>\
             <iframe src=\"https://evil.example\"></iframe><p style=\"position:fixed\">styled</p>",
        );
        assert!(out.contains("<strong>world</strong>"), "{out}");
        assert!(out.contains("href=\"https://example.com\""), "{out}");
        assert!(out.contains("rel=\"noopener noreferrer nofollow\""), "{out}");
        for bad in ["<script", "onerror", "javascript:", "<iframe", "style="] {
            assert!(!out.to_lowercase().contains(bad), "{bad} survived: {out}");
        }
    }

    #[test]
    fn colours_are_checked_and_inked() {
        assert_eq!(safe_color(Some("#0F62FE")), "#0F62FE");
        assert_eq!(safe_color(Some("red; background: url(x)")), DEFAULT_ACCENT);
        assert_eq!(safe_color(Some("#12345")), DEFAULT_ACCENT);
        assert_eq!(safe_color(None), DEFAULT_ACCENT);
        assert_eq!(ink_on("#0F62FE"), "#ffffff");
        assert_eq!(ink_on("#FFD700"), "#111827");
        assert_eq!(ink_on("#fff"), "#111827");
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(date(1_709_251_200_000), "2024-03-01 00:00 UTC");
        assert_eq!(date(951_782_400_000 + 3_661_000), "2000-02-29 01:01 UTC");
    }

    #[test]
    fn paths_are_read() {
        assert_eq!(segment("custom.acmecrm"), "custom.acmecrm");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(project_of("/projects/p%201/portal/x"), "p 1");
        assert_eq!(project_of("/projects/%é1/portal"), "%é1", "no panic on odd escapes");
        assert_eq!(project_of("/projects/ab%2"), "ab%2");
    }

    #[test]
    fn csrf_tokens_belong_to_one_token() {
        let a = PortalUser { user_id: "u".into(), token: "token-a".into() };
        let b = PortalUser { user_id: "u".into(), token: "token-b".into() };
        let form = |value: &str| Form(vec![(CSRF_FIELD.into(), value.into())]);
        assert!(a.check_csrf(&form(&a.csrf())));
        assert!(!a.check_csrf(&form(&b.csrf())));
        assert!(!a.check_csrf(&form("")));
        assert!(!a.check_csrf(&Form(vec![])));
    }

    #[test]
    fn numbers_from_forms() {
        assert_eq!(number_value("25"), Value::from(25));
        assert_eq!(number_value("2.5"), serde_json::json!(2.5));
        assert_eq!(number_value("lots"), Value::from("lots"));
    }
}
