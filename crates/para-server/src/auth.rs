//! Who is calling: the user of a verified token, within the served project.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// A connected user, authenticated by an RS256 token signed by the company (`sub` = user id).
#[derive(Debug, Clone)]
pub struct SdkUser {
    pub user_id: String,
    pub meta: serde_json::Value,
}

/// The `{projectId}` of `/projects/{projectId}/…` or `/v2/projects/{projectId}/…`.
fn path_project(path: &str) -> Option<&str> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    while let Some(segment) = segments.next() {
        if segment == "projects" {
            return segments.next();
        }
    }
    None
}

/// The token from `Authorization: Bearer …`, else (for the portal's pages) `?token=` or the
/// `para_token` cookie.
pub fn token_of(parts: &Parts) -> Option<String> {
    if let Some(value) =
        parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        return value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(|t| t.trim().to_string());
    }
    None
}

impl FromRequestParts<Arc<AppState>> for SdkUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if let Some(project) = path_project(parts.uri.path())
            && project != state.project_id
        {
            return Err(ApiError::unauthorized(format!(
                "this server serves project {}, not {project}",
                state.project_id
            )));
        }
        let token = token_of(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "no user token: send `Authorization: Bearer <token>` (paragon.authenticate)",
            )
        })?;
        if let Some(user) = state.seen_users.recent(&token) {
            return Ok(user);
        }
        let claims =
            state.verifier.verify(&token).map_err(|e| ApiError::unauthorized(e.to_string()))?;
        let user = state
            .store
            .touch_user(&state.project_id, &claims.user_id, claims.meta.as_ref())
            .await?;
        let user = SdkUser { user_id: user.user_id, meta: user.meta };
        state.seen_users.remember(&token, claims.exp, &user);
        Ok(user)
    }
}

/// Tokens verified in the last seconds, so a burst of requests (the proxy) neither re-checks
/// the RSA signature nor writes "user seen" each time. An entry never outlives its token's
/// `exp` nor [`SeenUsers::TTL_MS`]; metadata changed through `PATCH /sdk/me` is visible
/// after at most that long to requests authenticated from the cache.
#[derive(Default)]
pub struct SeenUsers(std::sync::Mutex<std::collections::HashMap<String, (i64, SdkUser)>>);

impl SeenUsers {
    const TTL_MS: i64 = 30_000;
    const MAX: usize = 50_000;

    fn recent(&self, token: &str) -> Option<SdkUser> {
        let map = self.0.lock().expect("seen users");
        let (until, user) = map.get(token)?;
        (*until > para_store::now_ms()).then(|| user.clone())
    }

    fn remember(&self, token: &str, exp_secs: u64, user: &SdkUser) {
        let now = para_store::now_ms();
        let until = (now + Self::TTL_MS).min(exp_secs as i64 * 1000);
        let mut map = self.0.lock().expect("seen users");
        if map.len() >= Self::MAX {
            map.retain(|_, (t, _)| *t > now);
            if map.len() >= Self::MAX {
                map.clear();
            }
        }
        map.insert(token.to_string(), (until, user.clone()));
    }

    /// Forgets a user's cached tokens (their metadata changed).
    pub fn forget(&self, user_id: &str) {
        self.0.lock().expect("seen users").retain(|_, (_, u)| u.user_id != user_id);
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
    }
}
