//! `installIntegration` in headless mode for integrations connected with typed values (API
//! key, basic, client credentials, password). The SDK always opens its OAuth popup and asks
//! `build-oauth` where to send it; for these integrations `build-oauth` answers this form
//! ([`begin`]), in the popup, which asks the values, stores the credential and marks the SDK's
//! session done, so the SDK's polling picks the credential up as after an OAuth sign-in.
//!
//! The form lives under the OAuth callback's path so the browser sends the nonce cookie the
//! popup's first page set (`web::bind_browser`): a form is shown to, and accepted from, only
//! the browser bound to the user that started it. Each form carries a single-use state (the
//! same table and sealing as OAuth states); every answer that shows the form again issues a
//! new one. The cookie is `SameSite=Lax`, so another site cannot post the form.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::connect::ConnectField;
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::html_escape;
use para_connect::oauth::{self, Pending};

use para_connect::oauth::VALUES_FORM_PATH as FORM_PATH;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(FORM_PATH, get(show).post(submit))
}

/// The form state behind `token`, used up, for the bound browser only.
async fn take(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<(para_store::OAuthState, Pending), Response> {
    let again = "this form expired or was already used: close this window and connect again";
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(message_page(StatusCode::BAD_REQUEST, "Connection failed", again));
    };
    let row = match state.store.take_oauth_state(token).await {
        Ok(Some(row)) if row.project_id == state.project_id => row,
        Ok(_) => return Err(message_page(StatusCode::BAD_REQUEST, "Connection failed", again)),
        Err(e) => {
            let e = ApiError::from(e);
            return Err(message_page(e.status, "Connection failed", &e.message));
        }
    };
    let pending: Option<Pending> = state
        .secrets
        .open(&row.sealed, &oauth::state_aad(&state.project_id))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(pending) = pending.filter(|p| p.values_form) else {
        return Err(message_page(StatusCode::BAD_REQUEST, "Connection failed", again));
    };
    if crate::web::bound_user(state, headers).await.as_deref() != Some(row.user_id.as_str()) {
        return Err(message_page(
            StatusCode::FORBIDDEN,
            "Connection failed",
            "this browser did not start the connection (its sign-in cookie is missing or belongs to another user); close this window and connect again from the app",
        ));
    }
    Ok((row, pending))
}

#[derive(Deserialize)]
struct ShowQuery {
    state: Option<String>,
}

async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ShowQuery>,
) -> Response {
    let (row, pending) = match take(&state, &headers, q.state.as_deref()).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    form(&state, &row, &pending, &pending.values, None).await
}

/// Renders the form with a fresh state (and `error`, if any), keeping the non-secret values.
async fn form(
    state: &AppState,
    row: &para_store::OAuthState,
    pending: &Pending,
    typed: &Map<String, Value>,
    error: Option<&str>,
) -> Response {
    let Some(connector) = state.connector(&row.integration) else {
        let text = format!("{} is no longer part of this project", row.integration);
        return message_page(StatusCode::NOT_FOUND, "Connection failed", &text);
    };
    let token = match oauth::issue_values_form(state, &row.user_id, &row.integration, pending).await
    {
        Ok(token) => token,
        Err(e) => {
            let e = ApiError::from(e);
            return message_page(e.status, "Connection failed", &e.message);
        }
    };
    let mut body = format!("<h1>Connect {name}</h1>", name = html_escape(&connector.name));
    if let Some(error) = error {
        body.push_str(&format!("<p class=\"error\" role=\"alert\">{}</p>", html_escape(error)));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"{}{FORM_PATH}\"><input type=\"hidden\" name=\"state\" value=\"{}\">",
        html_escape(&state.config.public_url),
        html_escape(&token)
    ));
    for (n, field) in connector.fields.iter().enumerate() {
        body.push_str(&field_html(field, n, typed));
    }
    if connector.fields.is_empty() {
        body.push_str("<p>Nothing needs to be entered for this connection.</p>");
    }
    body.push_str(&format!(
        "<button type=\"submit\">Connect {}</button></form>",
        html_escape(&connector.name)
    ));
    html(StatusCode::OK, &format!("Connect {}", connector.name), &body, None)
}

/// One field's control, named `v.<key>`; secrets are never shown back.
fn field_html(field: &ConnectField, n: usize, typed: &Map<String, Value>) -> String {
    let id = format!("f{n}");
    let name = format!("v.{}", field.key);
    let label = if field.label.trim().is_empty() { &field.key } else { &field.label };
    let required = if field.required { " required" } else { "" };
    let shown = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let value = if field.secret { String::new() } else { shown(typed.get(&field.key)) };
    let declared = field.declared.as_ref().map(|d| d.input_type.as_str());
    let control = match declared {
        Some("boolean") => format!(
            "<input type=\"checkbox\" id=\"{id}\" name=\"{name}\" value=\"true\"{}>",
            if typed.get(&field.key) == Some(&Value::Bool(true)) { " checked" } else { "" }
        ),
        Some("custom_dropdown") => {
            let mut options = String::from("<option value=\"\"></option>");
            for (label, choice) in
                field.declared.as_ref().map(crate::settings::dropdown_options).unwrap_or_default()
            {
                let choice = shown(Some(&choice));
                let selected = if choice == value { " selected" } else { "" };
                options.push_str(&format!(
                    "<option value=\"{}\"{selected}>{}</option>",
                    html_escape(&choice),
                    html_escape(&label)
                ));
            }
            format!("<select id=\"{id}\" name=\"{name}\"{required}>{options}</select>")
        }
        _ => format!(
            "<input type=\"{kind}\" id=\"{id}\" name=\"{name}\" value=\"{value}\" placeholder=\"{placeholder}\" autocomplete=\"off\"{required}>",
            kind = if field.secret { "password" } else { "text" },
            value = html_escape(&value),
            placeholder = html_escape(field.placeholder.as_deref().unwrap_or_default()),
        ),
    };
    let help = field
        .help
        .as_deref()
        .map(|h| format!("<small>{}</small>", html_escape(h)))
        .unwrap_or_default();
    format!(
        "<p><label for=\"{id}\">{}{}</label>{control}{help}</p>",
        html_escape(label),
        if field.required { " *" } else { "" }
    )
}

async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form_values): Form<Vec<(String, String)>>,
) -> Response {
    let token = form_values.iter().find(|(k, _)| k == "state").map(|(_, v)| v.as_str());
    let (row, pending) = match take(&state, &headers, token).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let Some(connector) = state.connector(&row.integration) else {
        let text = format!("{} is no longer part of this project", row.integration);
        return message_page(StatusCode::NOT_FOUND, "Connection failed", &text);
    };
    // The values the app passed to build-oauth, then what was typed here.
    let mut values = pending.values.clone();
    for field in &connector.fields {
        let typed = form_values
            .iter()
            .find(|(k, _)| k.strip_prefix("v.") == Some(field.key.as_str()))
            .map(|(_, v)| v.trim().to_string());
        let boolean = field.declared.as_ref().is_some_and(|d| d.input_type == "boolean");
        match typed {
            _ if boolean => {
                values.insert(field.key.clone(), Value::Bool(typed.is_some()));
            }
            Some(v) if !v.is_empty() => {
                values.insert(field.key.clone(), Value::String(v));
            }
            _ => {
                values.remove(&field.key);
            }
        }
    }
    let keep: Map<String, Value> = values
        .iter()
        .filter(|(k, _)| connector.fields.iter().any(|f| &f.key == *k && !f.secret))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let created =
        crate::connect::create_credential(&state, &row.user_id, &row.integration, values).await;
    let credential = match created {
        Ok(c) if c.status == para_store::CredentialStatus::Valid => c,
        Ok(c) => {
            // Not kept: the user corrects the values here and tries again.
            let _ = state.store.delete_credential(&state.project_id, &row.user_id, &c.id).await;
            state.credential_cache.forget(&row.user_id, &row.integration);
            let reason = c.status_reason.unwrap_or_default();
            let text = format!("{} did not accept these values: {reason}", connector.name);
            return form(&state, &row, &pending, &keep, Some(&text)).await;
        }
        Err(e) => return form(&state, &row, &pending, &keep, Some(&e.message())).await,
    };
    oauth::session_connected(&state, &row.user_id, &pending, &credential.id).await;
    // The SDK learns of the credential by polling the session; the window just closes.
    let script = "setTimeout(function(){window.close()},50);";
    let text = format!("Your {} account is connected. You can close this window.", connector.name);
    html(StatusCode::OK, "Connected", &format!("<p>{}</p>", html_escape(&text)), Some(script))
}

fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    html(status, title, &format!("<p>{}</p>", html_escape(text)), None)
}

fn html(status: StatusCode, title: &str, body: &str, script: Option<&str>) -> Response {
    let script = script.map(|s| format!("<script>{s}</script>")).unwrap_or_default();
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <style>body{{font:15px system-ui,sans-serif;margin:2rem;color:#222}}\
         label{{display:block;font-weight:600;margin-bottom:.3rem}}\
         input[type=text],input[type=password],select{{width:100%;padding:.45rem;box-sizing:border-box}}\
         small{{display:block;color:#555;margin-top:.2rem}}.error{{color:#b00020}}\
         button{{padding:.5rem 1rem}}</style></head><body>{body}{script}</body></html>",
        title = html_escape(title),
    );
    let mut res = (status, Html(page)).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use para_connect::oauth::CALLBACK_PATH;

    #[test]
    fn the_form_is_below_the_callback_so_the_nonce_cookie_is_sent() {
        // The cookie's `Path` is the callback's: only paths below it receive it.
        assert!(FORM_PATH.starts_with(&format!("{CALLBACK_PATH}/")));
    }
}
