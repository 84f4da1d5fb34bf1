//! Who may use a workflow: its `definePermissions()` condition over the user's id and metadata.

use serde_json::Value;

/// The metadata permissions read: the token's signed metadata only when the server is set so
/// (`permissions_from_token_only`), else the stored one.
pub fn permission_meta<'a>(
    from_token_only: bool,
    stored: &'a Value,
    signed: &'a Value,
) -> &'a Value {
    if from_token_only { signed } else { stored }
}

/// Whether the workflow's condition holds for the user (no condition: everyone). A condition
/// that cannot be evaluated denies.
pub fn permitted_for(workflow: &para_build::Workflow, user_id: &str, meta: &Value) -> bool {
    let Some(condition) = &workflow.permissions else { return true };
    let scope = para_engine::Scope {
        user_id: Some(user_id),
        meta: Some(meta),
        ..para_engine::Scope::default()
    };
    para_engine::holds(condition, &scope).unwrap_or(false)
}
