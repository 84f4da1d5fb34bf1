//! How the server talks to one integration's provider: where its authorize and token endpoints
//! are, which values to ask the user, the API base URL and how requests are authorised. Built
//! from the catalog entry (catalog integrations) or from the custom integration's compiled
//! `config.ts`, then adjusted by the server's per-integration configuration (client id/secret
//! and optional endpoint overrides).
//!
//! Templates are rendered against a [`Material`]: the values the user typed, the token
//! response, and the account facts looked up after connecting.

use para_build::{AuthenticationType, Authorization, Source};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Connect;

/// How a user connects an integration, and what to ask them first.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectKind {
    /// Authorization code: the user is sent to the provider.
    OAuth,
    /// Client credentials: the user (or the company) supplies a client id/secret.
    ClientCredentials,
    /// Resource-owner password (`ropc_app`).
    Password,
    /// Pasted key(s).
    ApiKey,
    /// HTTP Basic.
    Basic,
}

/// A value asked of the user before connecting (a catalog auth field or a custom integration's
/// config input), or after an OAuth sign-in (`ConnectInfo::post_fields` in `connect.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectField {
    /// The key values are submitted and stored under.
    pub key: String,
    pub label: String,
    pub secret: bool,
    pub required: bool,
    pub placeholder: Option<String>,
    pub help: Option<String>,
    /// The custom integration's config input as declared (its id is accepted in place of
    /// `key`; its type and choices say what a value may be). `None`: a text field.
    pub declared: Option<para_build::Input>,
}

impl ConnectField {
    /// The field as a User Setting keyed by [`ConnectField::key`], for
    /// [`crate::settings::validate`].
    pub fn as_input(&self) -> para_build::Input {
        let mut input = self.declared.clone().unwrap_or_else(|| para_build::Input {
            id: String::new(),
            key: self.key.clone(),
            title: self.label.clone(),
            input_type: if self.secret { "password" } else { "text" }.into(),
            required: self.required,
            tooltip: self.help.clone(),
            placeholder: self.placeholder.clone(),
            default_value: None,
            options: Default::default(),
        });
        input.id = self.key.clone();
        input.required = self.required;
        input
    }
}

/// A template: the catalog's `{placeholder}` strings or a compiled [`Source`].
#[derive(Debug, Clone)]
pub enum Template {
    Text(String),
    Source(Source),
}

/// The authorization-code / token facts.
#[derive(Debug, Clone)]
pub struct OAuthSpec {
    pub authorize_url: Option<Template>,
    pub token_url: Template,
    pub scopes: Vec<String>,
    pub scope_separator: String,
    pub pkce: bool,
    /// Client id/secret as HTTP Basic at the token endpoint (else in the form body).
    pub client_auth_basic: bool,
    pub authorize_params: Vec<(String, Template)>,
    /// Whether a refresh token renews expired access tokens.
    pub refreshes: bool,
    /// Extra headers/body/params of the token request (custom `accessTokenOptions`).
    pub token_options: Option<Template>,
    /// Custom `saveCredentialsOptions`: name → template over the token response.
    pub save_credentials: Option<Template>,
}

/// How requests to the API are authorised.
#[derive(Debug, Clone)]
pub struct ApiSpec {
    pub base_url: Option<Template>,
    pub test_endpoint: Option<Template>,
    pub headers: Vec<(String, Template)>,
    pub query: Vec<(String, Template)>,
    pub basic: Option<(Template, Template)>,
    /// Account facts fetched once after connecting (catalog `api.account`).
    pub account: Option<para_catalog::AccountLookup>,
}

/// Everything needed to connect and call one integration.
#[derive(Debug, Clone)]
pub struct Connector {
    pub key: String,
    pub name: String,
    pub kind: ConnectKind,
    /// Values asked of the user before connecting.
    pub fields: Vec<ConnectField>,
    /// Values asked after the OAuth sign-in (OAuth only; see `ConnectInfo::post_fields` in
    /// `connect.rs`).
    pub post_fields: Vec<ConnectField>,
    pub oauth: Option<OAuthSpec>,
    pub api: ApiSpec,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// A server-side override of the API base URL (tests, sandboxes, self-hosted providers).
    pub api_base_override: Option<String>,
}

/// A credential's secret part, sealed at rest as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Material {
    /// What the user typed when connecting (keys of [`Connector::fields`]).
    #[serde(default)]
    pub values: Map<String, Value>,
    /// The token endpoint's latest answer (OAuth kinds).
    #[serde(default)]
    pub token: Map<String, Value>,
    /// Custom `saveCredentialsOptions` values.
    #[serde(default)]
    pub saved: Map<String, Value>,
    /// Facts from the account lookup (catalog `api.account`), also not secret.
    #[serde(default)]
    pub account: Map<String, Value>,
}

impl Material {
    pub fn access_token(&self) -> Option<&str> {
        self.token.get("access_token").and_then(Value::as_str)
    }

    pub fn refresh_token(&self) -> Option<&str> {
        self.token.get("refresh_token").and_then(Value::as_str)
    }
}

/// A template that cannot be filled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

impl Connector {
    /// The connector of an integration of the served build, or `None` when the key is unknown
    /// or the integration's auth facts are missing.
    pub fn of(state: &Connect, key: &str) -> Option<Connector> {
        let build = state.build();
        let integration = build.integrations.get(key)?;
        let mut connector = match &integration.config.custom {
            Some(custom) => custom_connector(key, custom),
            None => catalog_connector(para_catalog::lookup(key)?),
        };
        if let Some(client) = state.oauth_client(key) {
            connector.client_id = Some(client.client_id.clone()).filter(|s| !s.is_empty());
            connector.client_secret = Some(client.client_secret.clone()).filter(|s| !s.is_empty());
            if let Some(oauth) = &mut connector.oauth {
                if let Some(url) = &client.authorize_url {
                    oauth.authorize_url = Some(Template::Text(url.clone()));
                }
                if let Some(url) = &client.token_url {
                    oauth.token_url = Template::Text(url.clone());
                }
            }
            connector.api_base_override = client.api_base_url.clone();
        }
        // Client credentials without a company client: the user supplies theirs.
        if connector.kind == ConnectKind::ClientCredentials && connector.client_id.is_none() {
            for (key, label, secret) in
                [("clientId", "Client ID", false), ("clientSecret", "Client secret", true)]
            {
                if !connector.fields.iter().any(|f| f.key == key) {
                    connector.fields.push(field(key, label, secret, true));
                }
            }
        }
        Some(connector)
    }

    /// The API base URL for a credential, without a trailing `/`.
    pub fn base_url(&self, m: &Material) -> Result<String, RenderError> {
        if let Some(url) = &self.api_base_override {
            return Ok(url.trim_end_matches('/').to_string());
        }
        let template = self.api.base_url.as_ref().ok_or_else(|| {
            RenderError(format!("{} has no API base URL (apiBaseUrl)", self.name))
        })?;
        let url = render_strict(template, m)?;
        let parsed = url::Url::parse(&url).map_err(|e| {
            RenderError(format!("{}'s API base URL `{url}` is not a URL: {e}", self.name))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(RenderError(format!(
                "{}'s API base URL `{url}` is not http(s)",
                self.name
            )));
        }
        Ok(url.trim_end_matches('/').to_string())
    }

    /// Headers and query parameters that authorise a request made with this credential.
    pub fn authorize(&self, m: &Material) -> Result<Authorized, RenderError> {
        let mut out = Authorized::default();
        for (name, template) in &self.api.headers {
            out.headers.push((name.clone(), render(template, m)?));
        }
        for (name, template) in &self.api.query {
            out.query.push((name.clone(), render(template, m)?));
        }
        if let Some((user, password)) = &self.api.basic {
            use base64::Engine as _;
            let pair = format!("{}:{}", render(user, m)?, render(password, m)?);
            out.headers.push((
                "Authorization".into(),
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)),
            ));
        }
        Ok(out)
    }

    /// The test endpoint as its settings render it: a path below the API base, or a URL.
    pub fn test_endpoint(&self, m: &Material) -> Result<Option<String>, RenderError> {
        let Some(template) = &self.api.test_endpoint else { return Ok(None) };
        let path = render(template, m)?;
        Ok(Some(path).filter(|p| !p.is_empty()))
    }

    /// The URL of the test endpoint, if any.
    pub fn test_url(&self, m: &Material) -> Result<Option<String>, RenderError> {
        let Some(template) = &self.api.test_endpoint else { return Ok(None) };
        let path = render(template, m)?;
        if path.is_empty() {
            return Ok(None);
        }
        if path.starts_with("http://") || path.starts_with("https://") {
            return Ok(Some(path));
        }
        let base = self.base_url(m)?;
        Ok(Some(format!("{base}/{}", path.trim_start_matches('/'))))
    }
}

/// Authorisation to add to a request.
#[derive(Debug, Clone, Default)]
pub struct Authorized {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
}

fn field(key: &str, label: &str, secret: bool, required: bool) -> ConnectField {
    ConnectField {
        key: key.into(),
        label: label.into(),
        secret,
        required,
        placeholder: None,
        help: None,
        declared: None,
    }
}

fn catalog_connector(c: &para_catalog::Integration) -> Connector {
    use para_catalog::Auth;
    let fields: Vec<ConnectField> = c
        .auth
        .fields()
        .iter()
        .map(|f| ConnectField {
            key: f.key.clone(),
            label: f.label.clone(),
            secret: f.secret,
            required: true,
            placeholder: f.placeholder.clone(),
            help: f.help.clone(),
            declared: None,
        })
        .collect();
    let text = |s: &str| Template::Text(s.to_string());
    let (kind, oauth) = match &c.auth {
        Auth::Oauth2 {
            authorize_url,
            token_url,
            scopes,
            scope_separator,
            pkce,
            client_auth,
            refresh,
            authorize_params,
            ..
        } => (
            ConnectKind::OAuth,
            Some(OAuthSpec {
                authorize_url: Some(text(authorize_url)),
                token_url: text(token_url),
                scopes: scopes.clone(),
                scope_separator: scope_separator.clone(),
                pkce: *pkce,
                client_auth_basic: *client_auth == para_catalog::ClientAuth::Basic,
                authorize_params: authorize_params
                    .iter()
                    .map(|(k, v)| (k.clone(), text(v)))
                    .collect(),
                refreshes: *refresh == para_catalog::Refresh::RefreshToken,
                token_options: None,
                save_credentials: None,
            }),
        ),
        Auth::Oauth2ClientCredentials {
            token_url, scopes, scope_separator, client_auth, ..
        } => (
            ConnectKind::ClientCredentials,
            Some(OAuthSpec {
                authorize_url: None,
                token_url: text(token_url),
                scopes: scopes.clone(),
                scope_separator: scope_separator.clone(),
                pkce: false,
                client_auth_basic: *client_auth == para_catalog::ClientAuth::Basic,
                authorize_params: Vec::new(),
                refreshes: false,
                token_options: None,
                save_credentials: None,
            }),
        ),
        Auth::ApiKey { .. } => (ConnectKind::ApiKey, None),
        Auth::Basic { .. } => (ConnectKind::Basic, None),
    };
    let mut headers: Vec<(String, Template)> =
        c.api.headers.iter().map(|(k, v)| (k.clone(), text(v))).collect();
    let oauth_like = matches!(kind, ConnectKind::OAuth | ConnectKind::ClientCredentials);
    if oauth_like
        && c.api.basic_auth.is_none()
        && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        headers.push(("Authorization".into(), text("Bearer {accessToken}")));
    }
    let basic = match (&c.api.basic_auth, &kind) {
        (Some(b), _) => Some((text(&b.username), text(&b.password))),
        (None, ConnectKind::Basic) => Some((text("{username}"), text("{password}"))),
        _ => None,
    };
    Connector {
        key: c.key.clone(),
        name: c.name.clone(),
        kind,
        fields,
        post_fields: Vec::new(),
        oauth,
        api: ApiSpec {
            base_url: Some(text(&c.api.base_url)),
            test_endpoint: c.api.test_endpoint.as_deref().map(text),
            headers,
            query: c.api.query.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
            basic,
            account: c.api.account.clone(),
        },
        client_id: None,
        client_secret: None,
        api_base_override: None,
    }
}

/// Whether a config input is asked after the OAuth sign-in: written with `postOAuth: true`.
pub fn is_post_oauth(input: &para_build::Input) -> bool {
    input.options.get("postOAuth") == Some(&Value::Bool(true))
}

/// The `credentials.<name>` fields the integration's templates read (`username`, `password`).
fn credential_fields_used(c: &para_build::CustomIntegrationConfig) -> (bool, bool) {
    let mut sources: Vec<&Source> = Vec::new();
    match &c.authorization {
        Authorization::Bearer { token } => sources.push(token),
        Authorization::Basic { username, password } => sources.extend([username, password]),
        Authorization::AuthHeader { headers: entries }
        | Authorization::QueryParams { params: entries } => {
            sources.extend(entries.iter().map(|e| &e.source));
        }
        Authorization::None => {}
    }
    sources.extend(
        [&c.api_base_url, &c.test_endpoint_path, &c.request_options, &c.access_token_url]
            .into_iter()
            .flatten(),
    );
    let (mut username, mut password) = (false, false);
    for source in sources {
        source.walk(&mut |s| {
            if let Source::Credential { path } = s {
                match path.first().map(String::as_str) {
                    Some("username" | "userName") => username = true,
                    Some("password") => password = true,
                    _ => {}
                }
            }
        });
    }
    (username, password)
}

fn custom_connector(key: &str, c: &para_build::CustomIntegrationConfig) -> Connector {
    let kind = match c.authentication_type {
        AuthenticationType::Oauth => ConnectKind::OAuth,
        AuthenticationType::OauthClientCredential => ConnectKind::ClientCredentials,
        AuthenticationType::RopcApp => ConnectKind::Password,
        AuthenticationType::Basic => ConnectKind::Basic,
    };
    let as_field = |i: &para_build::Input| ConnectField {
        key: i.key.clone(),
        label: i.title.clone(),
        secret: i.input_type == "password",
        required: i.required,
        placeholder: i.placeholder.clone(),
        help: i.tooltip.clone(),
        declared: Some(i.clone()),
    };
    // Values asked after signing in exist only where there is a sign-in; the other kinds ask
    // every value before connecting.
    let (post, before): (Vec<&para_build::Input>, Vec<&para_build::Input>) =
        c.config_inputs.iter().partition(|i| kind == ConnectKind::OAuth && is_post_oauth(i));
    let mut fields: Vec<ConnectField> = before.into_iter().map(as_field).collect();
    let post_fields: Vec<ConnectField> = post.into_iter().map(as_field).collect();
    match kind {
        // The password grant always sends both.
        ConnectKind::Password => {
            fields.push(field("username", "Username", false, true));
            fields.push(field("password", "Password", true, true));
        }
        // Basic asks for what its templates use (an API key in a header may be all there is);
        // with nothing used and nothing else to ask, both.
        ConnectKind::Basic => {
            let (username, password) = credential_fields_used(c);
            let neither = !username && !password && fields.is_empty();
            if username || neither {
                fields.push(field("username", "Username", false, true));
            }
            if password || neither {
                fields.push(field("password", "Password", true, true));
            }
        }
        _ => {}
    }
    let request_options = c.request_options.clone().map(Template::Source);
    let option = |name: &str| -> Option<Template> {
        let Some(Template::Source(Source::Object { entries })) = &request_options else {
            return None;
        };
        entries.iter().find(|e| e.key == name).map(|e| Template::Source(e.source.clone()))
    };
    let oauth = match kind {
        ConnectKind::OAuth | ConnectKind::ClientCredentials | ConnectKind::Password => {
            Some(OAuthSpec {
                authorize_url: c.authorization_url.clone().map(Template::Source),
                token_url: c
                    .access_token_url
                    .clone()
                    .map(Template::Source)
                    .unwrap_or(Template::Text(String::new())),
                scopes: c.scopes.clone(),
                scope_separator: " ".into(),
                pkce: c.use_pkce_in_code_exchange,
                client_auth_basic: !c.include_client_id_and_secrets,
                authorize_params: option("authorizationCodeOptions")
                    .map(|t| object_entries(&t, "params"))
                    .unwrap_or_default(),
                refreshes: true,
                token_options: option("accessTokenOptions"),
                save_credentials: option("saveCredentialsOptions"),
            })
        }
        _ => None,
    };
    let mut headers = Vec::new();
    let mut query = Vec::new();
    let mut basic = None;
    match &c.authorization {
        Authorization::Bearer { token } => headers.push((
            "Authorization".to_string(),
            Template::Source(Source::Tokenized {
                parts: vec![Source::text("Bearer "), token.clone()],
            }),
        )),
        Authorization::Basic { username, password } => {
            basic = Some((Template::Source(username.clone()), Template::Source(password.clone())));
        }
        Authorization::AuthHeader { headers: entries } => {
            headers.extend(
                entries.iter().map(|e| (e.key.clone(), Template::Source(e.source.clone()))),
            );
        }
        Authorization::QueryParams { params } => {
            query
                .extend(params.iter().map(|e| (e.key.clone(), Template::Source(e.source.clone()))));
        }
        Authorization::None => {}
    }
    Connector {
        key: key.to_string(),
        name: c.name.clone(),
        kind,
        fields,
        post_fields,
        oauth,
        api: ApiSpec {
            base_url: c.api_base_url.clone().map(Template::Source),
            test_endpoint: c.test_endpoint_path.clone().map(Template::Source),
            headers,
            query,
            basic,
            account: None,
        },
        client_id: None,
        client_secret: None,
        api_base_override: None,
    }
}

/// The `name` member of an object template, as (key, template) pairs.
fn object_entries(t: &Template, name: &str) -> Vec<(String, Template)> {
    let Template::Source(Source::Object { entries }) = t else { return Vec::new() };
    match entries.iter().find(|e| e.key == name).map(|e| &e.source) {
        Some(Source::Object { entries }) => {
            entries.iter().map(|e| (e.key.clone(), Template::Source(e.source.clone()))).collect()
        }
        Some(Source::Value { value: Value::Object(map) }) => map
            .iter()
            .map(|(k, v)| (k.clone(), Template::Source(Source::Value { value: v.clone() })))
            .collect(),
        _ => Vec::new(),
    }
}

/// Renders a template to text.
pub fn render(template: &Template, m: &Material) -> Result<String, RenderError> {
    match template {
        Template::Text(text) => render_text(text, m, false),
        Template::Source(source) => Ok(as_text(&eval(source, m, false)?)),
    }
}

/// Renders a URL template whose values (typed by users or sent by providers) must not be able
/// to change which host it names: they may not contain `/ ? # @ \`, spaces or `%`.
pub fn render_strict(template: &Template, m: &Material) -> Result<String, RenderError> {
    match template {
        Template::Text(text) => render_text(text, m, true),
        Template::Source(source) => Ok(as_text(&eval(source, m, true)?)),
    }
}

/// An origin (`{token.instance_url}`) may be a whole URL; other values must be plain words.
fn check_url_value(name: &str, value: &str, origin_allowed: bool) -> Result<(), RenderError> {
    if origin_allowed
        && let Ok(u) = url::Url::parse(value)
        && matches!(u.scheme(), "http" | "https")
        && u.path() == "/"
        && u.query().is_none()
        && u.username().is_empty()
        && !value.trim_end_matches('/').ends_with(':')
    {
        return Ok(());
    }
    if value.chars().any(|c| "/?#@\\%".contains(c) || c.is_whitespace() || c.is_control()) {
        return Err(RenderError(format!(
            "the value of `{name}` cannot be used in a URL (it contains `/`, `?`, `#`, `@`, `%`, `\\` or spaces)"
        )));
    }
    Ok(())
}

/// Evaluates a template to JSON (objects stay objects).
pub fn render_value(template: &Template, m: &Material) -> Result<Value, RenderError> {
    match template {
        Template::Text(text) => Ok(Value::String(render_text(text, m, false)?)),
        Template::Source(source) => eval(source, m, false),
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn lookup<'v>(root: &'v Map<String, Value>, path: &[&str]) -> Option<&'v Value> {
    let (first, rest) = path.split_first()?;
    let mut value = root.get(*first)?;
    for segment in rest {
        value = match value {
            Value::Object(map) => map.get(*segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Catalog templates: `{field}`, `{accessToken}`, `{token.x}`, `{account.x}`.
fn render_text(text: &str, m: &Material, strict: bool) -> Result<String, RenderError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        let path: Vec<&str> = name.split('.').collect();
        let value = match path.as_slice() {
            ["accessToken"] => m.token.get("access_token"),
            ["token", rest @ ..] => lookup(&m.token, rest),
            ["account", rest @ ..] => lookup(&m.account, rest),
            _ => lookup(&m.values, &path),
        };
        match value {
            Some(v) if !as_text(v).is_empty() => {
                let text = as_text(v);
                if strict {
                    check_url_value(name, &text, start == 0 && out.is_empty())?;
                }
                out.push_str(&text);
            }
            _ => {
                return Err(RenderError(format!("`{{{name}}}` has no value for this connection")));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn eval(source: &Source, m: &Material, strict: bool) -> Result<Value, RenderError> {
    let value = eval_inner(source, m, strict)?;
    if strict
        && let (Source::Credential { .. } | Source::ConfigInput { .. }, Value::String(text)) =
            (source, &value)
    {
        check_url_value("a connection value", text, false)?;
    }
    Ok(value)
}

fn eval_inner(source: &Source, m: &Material, strict: bool) -> Result<Value, RenderError> {
    Ok(match source {
        Source::Value { value } => value.clone(),
        Source::Tokenized { parts } => {
            let mut s = String::new();
            for part in parts {
                s.push_str(&as_text(&eval(part, m, strict)?));
            }
            Value::String(s)
        }
        Source::Object { entries } => {
            let mut map = Map::new();
            for e in entries {
                map.insert(e.key.clone(), eval(&e.source, m, strict)?);
            }
            Value::Object(map)
        }
        Source::Array { items } => {
            Value::Array(items.iter().map(|i| eval(i, m, strict)).collect::<Result<_, _>>()?)
        }
        Source::Credential { path } => {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let found = match path.as_slice() {
                ["oauthAccessToken" | "accessToken"] => m.token.get("access_token"),
                ["oauthRefreshToken" | "refreshToken"] => m.token.get("refresh_token"),
                ["username" | "userName"] => m.values.get("username"),
                ["password"] => m.values.get("password"),
                ["savedCredentials", rest @ ..] => lookup(&m.saved, rest),
                ["tokenRequest", "response", rest @ ..] => lookup(&m.token, rest),
                ["settings", rest @ ..] => lookup(&m.values, rest),
                other => lookup(&m.values, other),
            };
            found.cloned().ok_or_else(|| {
                RenderError(format!(
                    "`credentials.{}` has no value for this connection",
                    path.join(".")
                ))
            })?
        }
        Source::ConfigInput { input_id, key } => {
            m.values.get(key).or_else(|| m.values.get(input_id)).cloned().ok_or_else(|| {
                RenderError(format!(
                    "the setup value `{key}` was not given when the account was connected"
                ))
            })?
        }
        Source::PageToken {} => Value::Null,
        other => {
            return Err(RenderError(format!(
                "a {} value cannot be used in an integration's connection settings",
                source_kind(other)
            )));
        }
    })
}

fn source_kind(s: &Source) -> &'static str {
    match s {
        Source::Variable { .. } => "step output",
        Source::EnvironmentSecret { .. } => "environment secret",
        Source::UserSetting { .. } => "user setting",
        Source::ConnectUser { .. } | Source::PersonaMetadata { .. } => "connected-user",
        Source::ResourceInput { .. } => "resource input",
        _ => "template",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn material() -> Material {
        Material {
            values: json!({"shop": "acme", "region": "eu"}).as_object().unwrap().clone(),
            token: json!({"access_token": "AT", "instance_url": "https://na1.example.com"})
                .as_object()
                .unwrap()
                .clone(),
            saved: Map::new(),
            account: json!({"cloudId": "c-1", "sites": [{"id": 7}]}).as_object().unwrap().clone(),
        }
    }

    #[test]
    fn catalog_placeholders_are_filled() {
        let m = material();
        let t = |s: &str| render(&Template::Text(s.into()), &m);
        assert_eq!(t("https://{shop}.myshopify.com").unwrap(), "https://acme.myshopify.com");
        assert_eq!(t("Bearer {accessToken}").unwrap(), "Bearer AT");
        assert_eq!(t("{token.instance_url}/x").unwrap(), "https://na1.example.com/x");
        assert_eq!(t("/ex/{account.cloudId}/{account.sites.0.id}").unwrap(), "/ex/c-1/7");
        assert!(t("{missing}").unwrap_err().0.contains("missing"));
    }

    #[test]
    fn url_values_cannot_change_the_host() {
        let mut m = material();
        let t = |s: &str, m: &Material| render_strict(&Template::Text(s.into()), m);
        assert_eq!(t("https://{shop}.myshopify.com", &m).unwrap(), "https://acme.myshopify.com");
        for evil in ["evil.com/", "evil.com?", "evil.com#", "x@evil.com", "a%2fb", "a b"] {
            m.values.insert("shop".into(), Value::String(evil.into()));
            assert!(t("https://{shop}.myshopify.com", &m).is_err(), "{evil}");
        }
        // An origin from the token answer may start a URL, but not carry a path.
        assert_eq!(
            t("{token.instance_url}/services", &m).unwrap(),
            "https://na1.example.com/services"
        );
        m.token.insert("instance_url".into(), Value::String("https://evil.com/x?".into()));
        assert!(t("{token.instance_url}/services", &m).is_err());
    }

    #[test]
    fn compiled_sources_are_evaluated() {
        let m = material();
        let base = Source::Tokenized {
            parts: vec![
                Source::text("https://"),
                Source::ConfigInput { input_id: "id-1".into(), key: "region".into() },
                Source::text(".api.acme.example/v2"),
            ],
        };
        assert_eq!(render(&Template::Source(base), &m).unwrap(), "https://eu.api.acme.example/v2");
        let token = Source::Credential { path: vec!["oauthAccessToken".into()] };
        assert_eq!(render(&Template::Source(token), &m).unwrap(), "AT");
        let secret = Source::EnvironmentSecret { name: "X".into() };
        assert!(render(&Template::Source(secret), &m).is_err());
    }
}
