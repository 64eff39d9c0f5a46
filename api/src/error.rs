//! The HTTP layer's errors, answered as AWS Batch does: 400 with `x-amzn-ErrorType:
//! ClientException` for what the caller got wrong, 500 with `ServerException` for our faults
//! (logged; the caller sees no internals), a JSON body `{"message": …}`, and an
//! `x-amzn-RequestId` header.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use wasmbatch_runtime::BatchError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The caller's mistake: bad JSON, a bad field, something that does not exist.
    #[error("{0}")]
    Client(String),
    /// Ours. The message is logged, not returned.
    #[error("{0}")]
    Server(String),
}

impl From<BatchError> for ApiError {
    fn from(error: BatchError) -> Self {
        if error.is_client_error() {
            ApiError::Client(error.to_string())
        } else {
            ApiError::Server(error.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (status, kind, message) = match self {
            ApiError::Client(message) => (StatusCode::BAD_REQUEST, "ClientException", message),
            ApiError::Server(message) => {
                tracing::error!(%request_id, "request failed: {message}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServerException",
                    format!("internal error; request id {request_id}"),
                )
            }
        };
        let body = serde_json::json!({ "message": message });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(kind));
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            headers.insert("x-amzn-RequestId", id);
        }
        response
    }
}
