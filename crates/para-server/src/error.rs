//! API errors: a status and a JSON body `{ "message": …, "code": … }` the SDK can show.

use axum::Json;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// A failed request's answer: its status, a stable `code` to branch on and a `message` to show.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

/// The body of every error answer of the JSON APIs (the document's `ApiError` schema).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = ApiError)]
pub struct ErrorBody<'a> {
    /// What went wrong and what to do about it, for a person.
    pub message: &'a str,
    /// A stable, machine-readable reason (`unauthorized`, `not_found`, `bad_request`, …).
    pub code: &'a str,
    /// The answer's HTTP status, repeated.
    pub status: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { message: &self.message, code: self.code, status: self.status.as_u16() };
        (self.status, Json(body)).into_response()
    }
}

impl From<para_store::StoreError> for ApiError {
    fn from(e: para_store::StoreError) -> Self {
        // The detail goes to the server log, not to the client.
        tracing::error!(error = %e, "storage error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage",
            "the server could not read or write its database",
        )
    }
}

/// The one place the credentials domain's failures become answers.
impl From<para_connect::Error> for ApiError {
    fn from(e: para_connect::Error) -> Self {
        use para_connect::Kind;
        match e {
            para_connect::Error::Store(e) => e.into(),
            para_connect::Error::Failed { kind, code, message } => {
                let status = match kind {
                    Kind::NotFound => StatusCode::NOT_FOUND,
                    Kind::BadRequest => StatusCode::BAD_REQUEST,
                    Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
                    Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    Kind::Upstream => StatusCode::BAD_GATEWAY,
                    Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                };
                Self::new(status, code, message)
            }
        }
    }
}

/// The one place the engine's failures to start a run become answers.
impl From<para_worker::Error> for ApiError {
    fn from(e: para_worker::Error) -> Self {
        match e {
            para_worker::Error::EngineStopped => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "engine_stopped",
                "the workflow engine is not running in this process",
            ),
            para_worker::Error::NoWorkflow(id) => Self::not_found(format!("no workflow `{id}`")),
            para_worker::Error::NotRecorded => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_recorded",
                "the run could not be recorded; try again",
            ),
            para_worker::Error::Store(e) => e.into(),
        }
    }
}

/// The answer to a path no route serves: JSON, so the SDK shows the reason rather than "Failed
/// to fetch" (CORS headers are added around it like on every Connect API answer).
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route `{method} {}` on this Paragraph server: the Connect API is served under \
         /projects/<project id>/sdk/… (docs/server.md lists every route)",
        uri.path()
    ))
}

/// The answer to a route called with a method it does not serve (axum adds `Allow`).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("`{}` does not answer {method}: see docs/server.md for its methods", uri.path()),
    )
}

/// Turns the plain-text error answers axum's extractors give (a body that is not JSON, a bad
/// query string or path, a body too large) into the API's JSON error shape, keeping their
/// status, text and other headers. Answers that are already JSON, HTML or successful pass
/// untouched; only error answers are ever read here.
pub async fn json_rejections(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !plain {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Rejection texts are a line or two; a longer body is not read, its status's reason is said.
    let text = axum::body::to_bytes(body, 8 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = match text.trim() {
        "" => status.canonical_reason().unwrap_or("the request failed").to_string(),
        t => t.to_string(),
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        _ if status.is_client_error() => "bad_request",
        _ => "server_error",
    };
    let json = ApiError::new(status, code, message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    let (json_parts, body) = json.into_parts();
    for (name, value) in &json_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, body)
}
