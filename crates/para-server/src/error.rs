//! API errors: a status and a JSON body `{ "message": …, "code": … }` the SDK can show.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message, "code": self.code, "status": self.status.as_u16() });
        (self.status, Json(body)).into_response()
    }
}

impl From<para_store::StoreError> for ApiError {
    fn from(e: para_store::StoreError) -> Self {
        // The detail goes to the server log, not to the client.
        eprintln!("para serve: storage error: {e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage",
            "the server could not read or write its database",
        )
    }
}
