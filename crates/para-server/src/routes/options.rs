//! Choices of an integration-specific User Setting type (a Slack channel, a Drive folder): the
//! catalog's `input_types[].options` names a `GET` below the API base whose answer lists them.
//! Fetched with the user's credential, as the proxy would send it. Offered to the
//! server-rendered portal, to `/ui` and to the SDK's `getFieldOptions` ([`field_options`],
//! by page and search).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::SdkUser;
use crate::error::ApiError;
use crate::state::AppState;
pub use para_connect::options::{Choices, all_choices, fetch_listing};

/// Choices per page of `getFieldOptions`.
pub const PAGE_SIZE: usize = 100;
/// The largest `POST /sdk/actions` body read for `getFieldOptions`.
pub const MAX_FIELD_OPTIONS_BODY: usize = 64 * 1024;
/// The longest search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// How long a listing is reused for the next pages and searches of the same user, account
/// and source.
const LISTING_TTL: Duration = Duration::from_secs(30);
/// Listings kept at most (the oldest goes first).
const LISTINGS_KEPT: usize = 256;

type ListingKey = (String, String, String, String);
type Listings = Mutex<HashMap<ListingKey, (Instant, Arc<Vec<(String, String)>>)>>;

/// Recent listings by (project, user, credential, source), so that paging and searching one
/// list asks the provider once and pages stay consistent.
fn listings() -> &'static Listings {
    static LISTINGS: OnceLock<Listings> = OnceLock::new();
    LISTINGS.get_or_init(Listings::default)
}

fn recent_listing(key: &ListingKey) -> Option<Arc<Vec<(String, String)>>> {
    let mut kept = listings().lock().expect("listings");
    kept.retain(|_, (at, _)| at.elapsed() < LISTING_TTL);
    kept.get(key).map(|(_, list)| list.clone())
}

fn keep_listing(key: ListingKey, list: Arc<Vec<(String, String)>>) {
    let mut kept = listings().lock().expect("listings");
    if kept.len() >= LISTINGS_KEPT
        && let Some(oldest) = kept.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone())
    {
        kept.remove(&oldest);
    }
    kept.insert(key, (Instant::now(), list));
}

/// `getFieldOptions`' body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FieldOptionsRequest {
    /// The integration's type name (`slack`, `custom.acmecrm`) or id.
    action: String,
    /// The data source: a `sourceType` of an input, or a source's `cacheKey`.
    source_key: String,
    /// `KeyedSource[]` (`[{key, source: {type: 'VALUE', value}}]`): para's sources depend on
    /// nothing but the account, so they are checked and not used.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    parameters: Option<Value>,
    #[serde(default)]
    pagination_parameters: Option<Pagination>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    /// What the previous page's `nextPageCursor` was; `0` (the SDK's default), `null`,
    /// `false` or absent for the first page.
    #[serde(default)]
    page_cursor: Option<Value>,
    #[serde(default)]
    search: Option<String>,
}

/// Whether a `POST /sdk/actions` body is a `getFieldOptions` request (it names a
/// `sourceKey`); other bodies are ActionKit's.
pub fn is_field_options_request(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get("sourceKey").is_some())
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "a getFieldOptions request (POST /sdk/actions) is at most {MAX_FIELD_OPTIONS_BODY} bytes"
        ),
    )
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    // Not 401/403: the SDK logs the user out on those.
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// The first offset a cursor names.
fn offset_of(cursor: Option<&Value>) -> Result<usize, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "`paginationParameters.pageCursor` must be a `nextPageCursor` of a previous page (or 0 for the first page)",
        )
    };
    match cursor {
        None | Some(Value::Null | Value::Bool(false)) => Ok(0),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(bad),
        Some(Value::String(s)) if s.is_empty() => Ok(0),
        Some(Value::String(s)) => s.parse::<usize>().map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// The credential choices are listed with: the one `X-Paragon-Credential` names (the user's,
/// of this integration), else the user's newest valid one.
async fn choosing_credential(
    state: &AppState,
    user: &SdkUser,
    integration: &para_build::Integration,
    selected: Option<&str>,
) -> Result<Option<para_store::Credential>, ApiError> {
    let (p, u) = (&state.project_id, &user.user_id);
    if let Some(id) = selected {
        let found = state.store.credential(p, u, id).await?;
        let found = found.filter(|c| c.integration == integration.key).ok_or_else(|| {
            ApiError::not_found(format!(
                "you have no {} credential `{id}` (X-Paragon-Credential)",
                integration.name
            ))
        })?;
        if found.status != para_store::CredentialStatus::Valid {
            return Err(unprocessable(
                "credential_invalid",
                format!(
                    "the {} account `{id}` (X-Paragon-Credential) needs reconnecting before its choices can be listed",
                    integration.name
                ),
            ));
        }
        return Ok(Some(found));
    }
    let all = state.store.credentials(p, u, Some(&integration.key)).await?;
    Ok(all.into_iter().find(|c| c.status == para_store::CredentialStatus::Valid))
}

/// `POST /projects/{id}/sdk/actions` with `{action, sourceKey, parameters,
/// paginationParameters: {pageCursor, search}}`, what the SDK's `getFieldOptions` sends: the
/// choices of one of the integration's data sources ([`crate::routes::sdk_inputs::data_sources`]),
/// listed with the user's account (`X-Paragon-Credential`, else their valid one), filtered by
/// `search` (label or value, any case), [`PAGE_SIZE`] at a time. Answers
/// `{"output": {"records": [{label, value}], "nextPageCursor": "100" | null}}`, which the SDK
/// turns into `{data, nestedData, nextPageCursor}`.
pub async fn field_options(
    state: &AppState,
    user: &SdkUser,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<FieldOptions>, ApiError> {
    if body.len() > MAX_FIELD_OPTIONS_BODY {
        return Err(too_large());
    }
    let request: FieldOptionsRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the getFieldOptions body is not `{{action, sourceKey, parameters?, paginationParameters?: {{pageCursor?, search?}}}}`: {e}"
        ))
    })?;
    if !matches!(request.parameters, None | Some(Value::Null | Value::Array(_))) {
        return Err(ApiError::bad_request(
            "`parameters` must be an array of `{key, source}` (the SDK's KeyedSource)",
        ));
    }
    let pagination = request.pagination_parameters.unwrap_or_default();
    let offset = offset_of(pagination.page_cursor.as_ref())?;
    let search = pagination.search.unwrap_or_default();
    if search.chars().count() > MAX_SEARCH_CHARS {
        return Err(ApiError::bad_request(format!(
            "`paginationParameters.search` is at most {MAX_SEARCH_CHARS} characters"
        )));
    }
    let search = search.trim().to_lowercase();

    let build = state.build();
    let integration = crate::views::find_integration(&build, &request.action)
        .filter(|i| i.config.active)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no integration `{}` in this project (`action` is the integration's name)",
                request.action
            ))
        })?;
    let catalog = para_catalog::lookup(&integration.key);
    let key = request.source_key.as_str();
    let Some(source) = crate::routes::sdk_inputs::source(catalog, key) else {
        let mut known: Vec<String> =
            crate::routes::sdk_inputs::data_sources(&integration.key).keys().cloned().collect();
        known.retain(|k| k != crate::routes::sdk_inputs::FIELD_MAPPING);
        let known = if known.is_empty() {
            "it has none".to_string()
        } else {
            format!("its sources are {}", known.join(", "))
        };
        return Err(ApiError::not_found(format!(
            "{} has no data source `{key}` whose choices para lists ({known})",
            integration.name
        )));
    };
    let credential =
        choosing_credential(state, user, integration, crate::auth::selected_credential(headers))
            .await?;
    let listed: Arc<Vec<(String, String)>> = match source {
        crate::routes::sdk_inputs::Source::MappedFields => {
            return Err(unprocessable(
                "fields_not_listed",
                format!(
                    "para does not list the fields of {} records: type the field's name as {} calls it",
                    integration.name, integration.name
                ),
            ));
        }
        crate::routes::sdk_inputs::Source::RecordTypes(types) => {
            Arc::new(types.iter().map(|t| (t.clone(), t.clone())).collect())
        }
        crate::routes::sdk_inputs::Source::Listed(input_type) => {
            let credential = credential.ok_or_else(|| {
                unprocessable(
                    "not_connected",
                    format!(
                        "connect a {} account to list its {}s",
                        integration.name,
                        input_type.label.to_lowercase()
                    ),
                )
            })?;
            let cache_key = (
                state.project_id.clone(),
                user.user_id.clone(),
                credential.id.clone(),
                key.to_string(),
            );
            match recent_listing(&cache_key) {
                Some(list) => list,
                None => {
                    let spec = input_type.options.as_ref().expect("a listed type has options");
                    let list =
                        fetch_listing(state, &user.user_id, &integration.key, spec, &credential.id)
                            .await
                            .map_err(|why| {
                                ApiError::new(StatusCode::BAD_GATEWAY, "listing_failed", why)
                            })?;
                    let list = Arc::new(list);
                    keep_listing(cache_key, list.clone());
                    list
                }
            }
        }
    };
    let matching: Vec<&(String, String)> = listed
        .iter()
        .filter(|(label, value)| {
            search.is_empty()
                || label.to_lowercase().contains(&search)
                || value.to_lowercase().contains(&search)
        })
        .collect();
    let records = matching
        .iter()
        .skip(offset)
        .take(PAGE_SIZE)
        .map(|(label, value)| Record { label: label.clone(), value: value.clone() })
        .collect();
    let next = offset.saturating_add(PAGE_SIZE);
    let next_page_cursor = (next < matching.len()).then(|| next.to_string());
    Ok(Json(FieldOptions { output: Page { records, next_page_cursor } }))
}

/// `getFieldOptions`' answer: one page of a data source's choices.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct FieldOptions {
    pub output: Page,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub records: Vec<Record>,
    /// The cursor of the next page; `null` on the last.
    pub next_page_cursor: Option<String>,
}

/// A choice: what is shown, and what is stored.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Record {
    pub label: String,
    pub value: String,
}
