//! Who is calling: the user of a verified token, within the served project.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderName;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;
pub use crate::users::SdkUser;

/// The `{projectId}` of `/projects/{projectId}/…` or `/v2/projects/{projectId}/…`.
fn path_project(path: &str) -> Option<&str> {
    // The usual form, read without splitting the whole path.
    if let Some(rest) = path.strip_prefix("/projects/") {
        let project = &rest[..memchr::memchr(b'/', rest.as_bytes()).unwrap_or(rest.len())];
        if !project.is_empty() {
            return Some(project);
        }
    }
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    while let Some(segment) = segments.next() {
        if segment == "projects" {
            return segments.next();
        }
    }
    None
}

/// The credential a request selects with `X-Paragon-Credential` (the SDK's
/// `selectedCredentialId`; for uninstall, the active credential when none is selected). Only
/// ever looked up among the authenticated user's own credentials.
pub fn selected_credential(headers: &axum::http::HeaderMap) -> Option<&str> {
    const NAME: HeaderName = HeaderName::from_static("x-paragon-credential");
    headers.get(NAME).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The token from `Authorization: Bearer …`, as sent: it is looked up among the tokens seen
/// recently as bytes, and read as text only when it has to be verified.
fn bearer(parts: &Parts) -> Option<&[u8]> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.as_bytes().trim_ascii();
    let token = value.strip_prefix(b"Bearer ").or_else(|| value.strip_prefix(b"bearer "))?;
    Some(token.trim_ascii())
}

/// The user of the request's token: from [`SeenUsers`] when it was verified recently.
pub(crate) async fn authenticate(
    parts: &Parts,
    state: &Arc<AppState>,
) -> Result<Arc<SdkUser>, ApiError> {
    if let Some(project) = path_project(parts.uri.path())
        && project != state.project_id
    {
        return Err(ApiError::unauthorized(format!(
            "this server serves project {}, not {project}",
            state.project_id
        )));
    }
    let token = bearer(parts).ok_or_else(|| {
        ApiError::unauthorized(
            "no user token: send `Authorization: Bearer <token>` (paragon.authenticate)",
        )
    })?;
    if let Some(user) = state.seen_users.recent(token) {
        return Ok(user);
    }
    let token = std::str::from_utf8(token)
        .map_err(|_| ApiError::unauthorized("the user token is not text: send a JWT"))?;
    let claims = state.verifier.verify(token).map_err(|e| ApiError::unauthorized(e.to_string()))?;
    // Boxed: this first sight of a token is rare, and its database future would otherwise
    // make every request's future (moved into a box per request) larger.
    let user = Box::pin(state.store.touch_signed_user(
        &state.project_id,
        &claims.user_id,
        claims.meta.as_ref(),
    ))
    .await?;
    let user =
        Arc::new(SdkUser { user_id: user.user_id, meta: user.meta, signed_meta: user.signed_meta });
    state.seen_users.remember(token.as_bytes(), claims.exp, &user);
    Ok(user)
}

impl FromRequestParts<Arc<AppState>> for SdkUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        authenticate(parts, state).await.map(Arc::unwrap_or_clone)
    }
}

/// The same as [`SdkUser`], shared rather than copied out of the cache (request triggers).
pub struct AuthUser(pub Arc<SdkUser>);

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        authenticate(parts, state).await.map(AuthUser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_are_read_from_both_path_forms() {
        assert_eq!(path_project("/projects/p1/sdk/me"), Some("p1"));
        assert_eq!(path_project("/v2/projects/p2/sdk/events/trigger"), Some("p2"));
        assert_eq!(path_project("/healthz"), None);
        // What the quick read of the usual form gives is what reading segments gives.
        for path in ["/projects/p1", "/projects/p1/", "/projects//p3/sdk/me", "/projects/"] {
            let segments = path.split('/').filter(|s| !s.is_empty()).nth(1);
            assert_eq!(path_project(path), segments, "{path}");
        }
    }
}
