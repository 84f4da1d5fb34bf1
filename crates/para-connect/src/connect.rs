//! Connecting accounts: the functions both the Connect API (`api.rs`, `oauth.rs`) and the
//! Connect Portal (`portal.rs`) use to start an OAuth flow or store a non-OAuth credential.

use std::sync::Arc;
use std::time::Duration;

use para_store::CredentialStatus;
use serde_json::{Map, Value};

use crate::Connect;
use crate::Error;
pub use crate::connector::{ConnectField, ConnectKind};
use crate::connector::{Connector, Material, Template, render};
use crate::send::{self, Destination, Outgoing, Prepared};
use crate::{oauth, refresh};

/// How an integration of the served build is connected.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectInfo {
    pub kind: ConnectKind,
    pub fields: Vec<ConnectField>,
    /// Values asked after the OAuth sign-in (`installFlow.setPostOptions`, stored by
    /// `complete-setup`). Only OAuth integrations have them: the others ask every value first.
    pub post_fields: Vec<ConnectField>,
}

/// Options of an OAuth start.
#[derive(Debug, Clone, Default)]
pub struct BeginOAuth {
    /// Values of [`ConnectInfo::fields`] the user typed (shop domain, region…).
    pub values: Map<String, Value>,
    /// The company page's origin: the callback page posts its result there (SDK popup flow).
    pub origin_for_post_message: Option<String>,
    /// Where the callback redirects when done (portal flow): `?connected=<credential id>` or
    /// `?error=<message>` is appended.
    pub return_to: Option<String>,
    /// The SDK's `oauthMetaKeyId`: the session it polls.
    pub session_id: Option<String>,
}

pub fn connect_info(state: &Connect, integration_key: &str) -> Option<ConnectInfo> {
    let c = state.connector(integration_key)?;
    Some(ConnectInfo {
        kind: c.kind.clone(),
        fields: c.fields.clone(),
        post_fields: c.post_fields.clone(),
    })
}

/// The values typed for `fields` keyed by each field's key: a custom integration's config
/// input may also be sent under its id (the SDK's `IntegrationConnectInput.id` in Paragon's
/// projects); other keys are kept as they are.
pub fn by_field_key(fields: &[ConnectField], values: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut by_id = Vec::new();
    for (name, value) in values {
        match fields.iter().find(|f| f.declared.as_ref().is_some_and(|d| d.id == name)) {
            Some(f) if f.key != name => by_id.push((f.key.clone(), value)),
            _ => {
                out.insert(name, value);
            }
        }
    }
    // A value sent under the key itself wins over one sent under the id.
    for (key, value) in by_id {
        out.entry(key).or_insert(value);
    }
    out
}

/// Checks the values typed for `fields`: required ones present, each of its field's type
/// (text at most [`crate::settings::MAX_TEXT_CHARS`] characters, a number, a switch, one of a
/// dropdown's choices).
pub fn check_fields(
    name: &str,
    fields: &[ConnectField],
    values: &Map<String, Value>,
) -> Result<(), Error> {
    for f in fields {
        if f.required && crate::settings::is_blank(values.get(&f.key)) {
            return Err(Error::bad_request(format!(
                "{name}: `{}` ({}) is required to connect",
                f.key, f.label
            )));
        }
    }
    let inputs: Vec<para_build::Input> = fields.iter().map(ConnectField::as_input).collect();
    let problems = crate::settings::validate(&inputs, values);
    if !problems.is_empty() {
        let lines: Vec<String> =
            problems.iter().map(|p| format!("`{}`: {}", p.input_id, p.message)).collect();
        return Err(Error::bad_request(format!("{name}: {}", lines.join(" "))));
    }
    Ok(())
}

/// Starts an authorization-code flow: stores a single-use `state` (and PKCE verifier) for the
/// user and returns the provider's authorize URL. The browser sent there must also get the
/// cookie of [`crate::oauth::bind_browser`].
pub async fn begin_oauth(
    state: &Connect,
    user_id: &str,
    integration_key: &str,
    options: BeginOAuth,
) -> Result<String, Error> {
    let connector = state.connector(integration_key).ok_or_else(|| {
        Error::not_found(format!("no integration `{integration_key}` in this project"))
    })?;
    let oauth = match (&connector.kind, &connector.oauth) {
        (ConnectKind::OAuth, Some(oauth)) => oauth,
        _ => {
            return Err(Error::bad_request(format!(
                "{} is not connected through an OAuth redirect; send its values to POST /sdk/credentials",
                connector.name
            )));
        }
    };
    let Some(client_id) = connector.client_id.clone() else {
        return Err(Error::new(
            crate::Kind::Unavailable,
            "oauth_client_missing",
            format!(
                "no OAuth client is configured for {}: set PARA_OAUTH_{}_CLIENT_ID and _CLIENT_SECRET or add it to .para/oauth-clients.json",
                connector.name,
                crate::env_key(integration_key)
            ),
        ));
    };
    // Pre-OAuth values may be missing when the SDK's installIntegration starts the flow.
    let values: Map<String, Value> = by_field_key(&connector.fields, options.values)
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .collect();
    let material = Material { values: values.clone(), ..Material::default() };
    let authorize = oauth
        .authorize_url
        .as_ref()
        .ok_or_else(|| Error::bad_request(format!("{} has no authorization URL", connector.name)))
        .and_then(|t| render(t, &material).map_err(|e| Error::bad_request(e.0)))?;
    let mut url = url::Url::parse(&authorize).map_err(|e| {
        Error::bad_request(format!(
            "{}'s authorization URL `{authorize}` is not a URL: {e}",
            connector.name
        ))
    })?;
    let state_token = para_auth::random_token(32);
    let verifier = oauth.pkce.then(|| para_auth::random_token(48));
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code");
        q.append_pair("client_id", &client_id);
        q.append_pair("redirect_uri", &oauth::redirect_uri(state));
        if !oauth.scopes.is_empty() {
            q.append_pair("scope", &oauth.scopes.join(&oauth.scope_separator));
        }
        q.append_pair("state", &state_token);
        if let Some(v) = &verifier {
            q.append_pair("code_challenge", &oauth::pkce_challenge(v));
            q.append_pair("code_challenge_method", "S256");
        }
        for (name, template) in &oauth.authorize_params {
            if let Ok(value) = render(template, &material) {
                q.append_pair(name, &value);
            }
        }
    }
    let pending = oauth::Pending {
        verifier,
        session_id: options.session_id.clone(),
        origin: options.origin_for_post_message,
        return_to: options.return_to,
        values,
        values_form: false,
    };
    oauth::put_pending(state, user_id, integration_key, state_token, &pending).await?;
    if let Some(session) = &options.session_id {
        state.store.start_oauth_session(&state.project_id, user_id, session).await?;
    }
    Ok(url.to_string())
}

/// Stores a credential that needs no redirect (API key, basic, client credentials, password):
/// checks it against the test endpoint; an unusable credential is stored INVALID with the reason.
pub async fn create_credential(
    state: &Connect,
    user_id: &str,
    integration_key: &str,
    values: Map<String, Value>,
) -> Result<para_store::Credential, Error> {
    let connector = state.connector(integration_key).ok_or_else(|| {
        Error::not_found(format!("no integration `{integration_key}` in this project"))
    })?;
    let values = by_field_key(&connector.fields, values);
    check_fields(&connector.name, &connector.fields, &values)?;
    let material = Material { values, ..Material::default() };
    let token = match connector.kind {
        ConnectKind::OAuth => {
            return Err(Error::bad_request(format!(
                "{} connects through OAuth: start it with installIntegration (build-oauth) or the portal",
                connector.name
            )));
        }
        ConnectKind::ApiKey | ConnectKind::Basic => Map::new(),
        ConnectKind::ClientCredentials | ConnectKind::Password => {
            let mut form = Vec::new();
            if connector.kind == ConnectKind::ClientCredentials {
                form.push(("grant_type".to_string(), "client_credentials".to_string()));
            } else {
                form.push(("grant_type".to_string(), "password".to_string()));
                for key in ["username", "password"] {
                    let v = material.values.get(key).and_then(Value::as_str).unwrap_or_default();
                    form.push((key.to_string(), v.to_string()));
                }
            }
            if let Some(oauth) = &connector.oauth
                && !oauth.scopes.is_empty()
            {
                form.push(("scope".to_string(), oauth.scopes.join(&oauth.scope_separator)));
            }
            oauth::token_request(state, &connector, &material, form).await.map_err(|e| {
                Error::new(
                    crate::Kind::Unprocessable,
                    "token_request",
                    format!("{}: getting a token failed: {e}", connector.name),
                )
            })?
        }
    };
    store_connection(state, user_id, &connector, material, token).await
}

/// `installFlow.setPostOptions` (`POST /sdk/credentials/{id}/complete-setup`): stores the
/// values asked after the sign-in ([`ConnectInfo::post_fields`]) on the user's credential `c`
/// — in its sealed material, where templates and workflows read them like values typed
/// before connecting, and the non-secret ones also in `providerData` — checks the connection
/// again with them (VALID/INVALID with the reason) and returns the updated credential.
///
/// Values are keyed by field key (a config input's id is accepted too); a key that is not a
/// post-sign-in field is refused. With `skip` (the SDK's `skipPostOAuthInputs`) required
/// values may be left out.
pub async fn complete_setup(
    state: &Connect,
    user_id: &str,
    c: &para_store::Credential,
    values: Map<String, Value>,
    skip: bool,
) -> Result<para_store::Credential, Error> {
    let connector = state.connector(&c.integration).ok_or_else(|| {
        Error::not_found(format!("{} is no longer part of this project", c.integration))
    })?;
    let fields = &connector.post_fields;
    let values = by_field_key(fields, values);
    let asked = || {
        if fields.is_empty() {
            format!("{} asks nothing after connecting", connector.name)
        } else {
            let keys: Vec<String> = fields.iter().map(|f| format!("`{}`", f.key)).collect();
            format!("{} asks {} after connecting", connector.name, keys.join(", "))
        }
    };
    if let Some(unknown) = values.keys().find(|k| fields.iter().all(|f| &f.key != *k)) {
        return Err(Error::bad_request(format!(
            "`{unknown}` is not a value asked after connecting: {}",
            asked()
        )));
    }
    if skip {
        let optional: Vec<ConnectField> =
            fields.iter().map(|f| ConnectField { required: false, ..f.clone() }).collect();
        check_fields(&connector.name, &optional, &values)?;
    } else {
        check_fields(&connector.name, fields, &values)?;
    }
    let _held = refresh::hold(state, &c.id).await?;
    let done = store_setup(state, user_id, &connector, &c.id, values).await;
    refresh::release(state, &c.id).await?;
    state.credential_cache.forget(user_id, &c.integration);
    done
}

/// [`complete_setup`]'s write, under the credential's refresh hold.
async fn store_setup(
    state: &Connect,
    user_id: &str,
    connector: &Connector,
    id: &str,
    values: Map<String, Value>,
) -> Result<para_store::Credential, Error> {
    let (p, store) = (&state.project_id, &state.store);
    let fresh = store
        .credential(p, user_id, id)
        .await?
        .ok_or_else(|| Error::not_found("no such credential for this user"))?;
    let mut material = refresh::open(state, &fresh)?;
    let mut provider_data = match &fresh.provider_data {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for f in &connector.post_fields {
        let Some(value) = values.get(&f.key).filter(|v| !v.is_null()) else { continue };
        material.values.insert(f.key.clone(), value.clone());
        if !f.secret && f.key != "account" {
            provider_data.insert(f.key.clone(), value.clone());
        }
    }
    let problem = check_connection(state, connector, &mut material).await;
    let sealed = refresh::seal(state, user_id, &connector.key, &material);
    let status =
        if problem.is_some() { CredentialStatus::Invalid } else { CredentialStatus::Valid };
    provider_data.insert("account".into(), Value::Object(material.account.clone()));
    let gone = || Error::not_found("no such credential for this user");
    let alert = state.invalid_alert(
        user_id,
        &connector.key,
        id,
        "test_failed",
        problem.as_deref().unwrap_or_default(),
    );
    let reason = problem.as_deref();
    store
        .update_credential_alerting(
            p,
            user_id,
            id,
            status,
            reason,
            &sealed,
            fresh.expires_at,
            &alert,
        )
        .await?
        .ok_or_else(gone)?;
    let updated = store
        .set_provider_data(p, user_id, id, &Value::Object(provider_data))
        .await?
        .ok_or_else(gone)?;
    if updated.status == CredentialStatus::Valid && fresh.status != CredentialStatus::Valid {
        state.connected(user_id, &connector.key, id).await;
    }
    Ok(updated)
}

/// What a disconnection removed: credentials, and how many of the integration's remain.
pub struct Disconnected {
    pub removed: u64,
    pub remaining: i64,
}

/// Disconnects the user's account `credential` of the integration (the user's settings of it go
/// with the last account), or with `None` every account and setting of the integration, and
/// forgets the credentials prepared for the proxy. `None` when `credential` is not one of the
/// user's accounts of the integration (nothing is removed).
pub async fn disconnect(
    state: &Connect,
    user_id: &str,
    integration_key: &str,
    credential: Option<&str>,
) -> Result<Option<Disconnected>, para_store::StoreError> {
    let (project, store) = (&state.project_id, &state.store);
    // Before the credential goes: what was registered at the provider with it is removed.
    state.disconnecting(user_id, integration_key, credential).await;
    // The accounts a disconnection of every account removes, to announce each.
    let every = match credential {
        Some(_) => Vec::new(),
        None => store.credentials(project, user_id, Some(integration_key)).await?,
    };
    let done = match credential {
        Some(id) => store
            .uninstall_credential(project, user_id, integration_key, id)
            .await?
            .map(|remaining| Disconnected { removed: 1, remaining }),
        None => {
            let removed = store.uninstall(project, user_id, integration_key).await?;
            Some(Disconnected { removed, remaining: 0 })
        }
    };
    state.credential_cache.forget(user_id, integration_key);
    if done.as_ref().is_some_and(|d| d.removed > 0) {
        match credential {
            Some(id) => state.disconnected(user_id, integration_key, Some(id)).await,
            None => {
                for c in &every {
                    state.disconnected(user_id, integration_key, Some(&c.id)).await;
                }
                if every.is_empty() {
                    state.disconnected(user_id, integration_key, None).await;
                }
            }
        }
    }
    Ok(done)
}

/// The last step of every connection: looks up account facts, calls the test endpoint, and
/// stores the credential (VALID, or INVALID with the reason).
pub async fn store_connection(
    state: &Connect,
    user_id: &str,
    connector: &Connector,
    mut material: Material,
    token: Map<String, Value>,
) -> Result<para_store::Credential, Error> {
    let expires_at = refresh::expiry(&token);
    material.token = token;
    oauth::save_credentials(connector, &mut material);
    // A test that needs values asked after the sign-in waits for them (complete-setup runs it).
    let waiting = connector
        .post_fields
        .iter()
        .any(|f| crate::settings::is_blank(material.values.get(&f.key)))
        && (connector.test_url(&material).is_err() || connector.authorize(&material).is_err());
    let problem =
        if waiting { None } else { check_connection(state, connector, &mut material).await };
    let sealed = refresh::seal(state, user_id, &connector.key, &material);
    let status =
        if problem.is_some() { CredentialStatus::Invalid } else { CredentialStatus::Valid };
    let mut provider_data = serde_json::json!({ "account": material.account });
    // The token response's field that names the account webhooks are routed by
    // (`[webhooks] account.credential = "token.<field>"`): not a secret, kept in the clear.
    let routed_by = para_catalog::lookup(&connector.key)
        .and_then(|c| c.webhooks.as_ref())
        .and_then(|w| w.account.as_ref())
        .and_then(|a| a.credential.strip_prefix("token."));
    if let Some(field) = routed_by
        && let Some(value) = material.token.get(field)
    {
        provider_data["token"] = serde_json::json!({ field: value });
    }
    let id = uuid::Uuid::new_v4().to_string();
    let alert = problem
        .as_deref()
        .map(|p| state.invalid_alert(user_id, &connector.key, &id, "test_failed", p));
    let credential = state
        .store
        .insert_credential(&para_store::NewCredential {
            status_reason: problem.as_deref(),
            provider_data,
            expires_at,
            id: Some(&id),
            invalid_alert: alert.as_ref(),
            ..para_store::NewCredential::new(
                &state.project_id,
                user_id,
                &connector.key,
                status,
                &sealed,
            )
        })
        .await?;
    state.credential_cache.forget(user_id, &connector.key);
    if credential.status == CredentialStatus::Valid {
        state.connected(user_id, &connector.key, &credential.id).await;
    }
    Ok(credential)
}

/// Looks up the account facts (into `material.account`) and calls the test endpoint; why the
/// credential does not work, if it does not.
pub async fn check_connection(
    state: &Connect,
    connector: &Connector,
    material: &mut Material,
) -> Option<String> {
    let mut problem: Option<String> = None;
    if let Some(lookup) = connector.api.account.clone() {
        let url = render(&Template::Text(lookup.url.clone()), material);
        match url.map_err(|e| e.0) {
            Ok(url) => match get_json(state, connector, material, &url).await {
                Ok(answer) => {
                    for (name, path) in &lookup.fields {
                        let mut value = &answer;
                        for segment in path.split('.') {
                            value = match value {
                                Value::Array(items) => segment
                                    .parse::<usize>()
                                    .ok()
                                    .and_then(|i| items.get(i))
                                    .unwrap_or(&Value::Null),
                                Value::Object(map) => map.get(segment).unwrap_or(&Value::Null),
                                _ => &Value::Null,
                            };
                        }
                        material.account.insert(name.clone(), value.clone());
                    }
                }
                Err(e) => problem = Some(e),
            },
            Err(e) => problem = Some(e),
        }
    }
    if problem.is_none() {
        match connector.test_endpoint(material) {
            Ok(Some(url)) => {
                if let Err(e) = get_json(state, connector, material, &url).await {
                    problem = Some(e);
                }
            }
            Ok(None) => {}
            Err(e) => problem = Some(e.0),
        }
    }
    problem
}

/// How long a connection check waits for a provider that answers 429.
const CHECK_WAIT_429: Duration = Duration::from_secs(5);
/// The most of a connection check's answer read.
const CHECK_MAX_READ: usize = 1024 * 1024;

/// `GET` of `target` (a path below the API base, or a URL the integration's settings name)
/// authorised with the material, through [`Connect::send`]; the JSON answer or why it failed.
async fn get_json(
    state: &Connect,
    connector: &Connector,
    m: &Material,
    target: &str,
) -> Result<Value, String> {
    let absolute = target.starts_with("http://") || target.starts_with("https://");
    let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
    let below = format!("/{}", path.trim_start_matches('/'));
    let destination = if absolute {
        let url = url::Url::parse(target).map_err(|e| format!("`{target}` is not a URL: {e}"))?;
        Destination::configured(url)
    } else {
        Destination::below(&below).map_err(|e| e.message())?
    };
    let shown = if absolute {
        target.to_string()
    } else {
        let base = connector.base_url(m).map_err(|e| e.0)?;
        format!("{base}{target}", target = below)
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("application/json"));
    let request = Outgoing {
        method: http::Method::GET,
        destination,
        query: query.filter(|_| !absolute),
        headers,
        body: Default::default(),
        keep: send::is_content_type,
        wait_429: CHECK_WAIT_429,
    };
    // A connection being checked is not stored yet: prepared for this request only.
    let connector = Arc::new(connector.clone());
    let prepared = Arc::new(Prepared::new(state, &connector, None, m.clone()));
    let failed = |why: String| format!("the test request GET {shown} failed: {why}");
    let answer = state.send(prepared, request).await.map_err(|e| failed(e.message()))?;
    let status = answer.status();
    let body = send::read_body(answer.into_body(), CHECK_MAX_READ).await.map_err(failed)?;
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        return Err(format!(
            "the test request GET {shown} answered {}: {}",
            status.as_u16(),
            oauth::snippet(&text)
        ));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Whether a `build-oauth` for an integration connected this way is answered with the values
/// form (typed values: API key, basic, client credentials, password) rather than a redirect.
pub fn values_form_wanted(kind: &ConnectKind) -> bool {
    *kind != ConnectKind::OAuth
}
