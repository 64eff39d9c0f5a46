//! The HTTP layer's errors, answered as AWS Batch does: 400 with `x-amzn-ErrorType:
//! ClientException` for what the caller got wrong, 500 with `ServerException` for our faults
//! (logged; the caller sees no internals), 503 `ServerException` while storage has failed (the
//! service takes no changes; a retry elsewhere or later may succeed), a JSON body
//! `{"message": …}`, and an `x-amzn-RequestId` header.

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
    /// Storage has failed, so no change is taken (fail-stop). The reason is logged, not
    /// returned: it may name paths of the host.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Not authenticated, or not allowed: 403 (400 for a malformed signature) with the error
    /// type the AWS SDKs know.
    #[error("{0}")]
    Refused(#[from] crate::access::Refusal),
    /// A request a web page may have made a browser send: 403 (400 for a body's type).
    #[error("{0}")]
    CrossOrigin(#[from] crate::origin::CrossOrigin),
    /// A route this server does not serve: 404 `UnknownOperationException`, in the same
    /// envelope as every other error, so an SDK reports it rather than failing to parse.
    #[error("{0}")]
    UnknownOperation(String),
    /// A bound on what one server holds open was reached: 429 `TooManyRequestsException`,
    /// which the SDKs retry with backoff.
    #[error("{0}")]
    TooManyRequests(String),
}

impl From<wasmbatch_runtime::model::validate::ValidationError> for ApiError {
    fn from(error: wasmbatch_runtime::model::validate::ValidationError) -> Self {
        BatchError::from(error).into()
    }
}

impl From<BatchError> for ApiError {
    fn from(error: BatchError) -> Self {
        if error.is_client_error() {
            ApiError::Client(error.to_string())
        } else if error.is_unavailable() {
            ApiError::Unavailable(error.to_string())
        } else {
            ApiError::Server(error.to_string())
        }
    }
}

impl ApiError {
    /// How a bulk operation (CancelJobs, TerminateJobs) reports this as one job's failure: the
    /// `code` and `message` of its `errors[]` entry. The codes are those AWS lists for
    /// `CancelJobsErrorDetail`, which spells a refused job `AccessDenied`; our faults keep
    /// their details to the log, as a whole-request answer would.
    pub(crate) fn code_and_message(&self) -> (&'static str, String) {
        match self {
            ApiError::Client(message) => ("ClientException", message.clone()),
            ApiError::UnknownOperation(message) => ("UnknownOperationException", message.clone()),
            ApiError::TooManyRequests(message) => ("TooManyRequestsException", message.clone()),
            ApiError::Refused(refusal @ crate::access::Refusal::Denied(_)) => {
                ("AccessDenied", refusal.to_string())
            }
            ApiError::Refused(refusal) => (refusal.kind().1, refusal.to_string()),
            ApiError::CrossOrigin(refusal) => (refusal.kind().1, refusal.to_string()),
            ApiError::Unavailable(message) | ApiError::Server(message) => {
                tracing::error!("one job of a bulk request failed: {message}");
                ("ServerException", "internal error".into())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (status, kind, message) = match self {
            ApiError::Client(message) => (StatusCode::BAD_REQUEST, "ClientException", message),
            ApiError::UnknownOperation(message) => {
                (StatusCode::NOT_FOUND, "UnknownOperationException", message)
            }
            ApiError::TooManyRequests(message) => (
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                message,
            ),
            ApiError::Refused(refusal) => {
                let (status, kind) = refusal.kind();
                (status, kind, refusal.to_string())
            }
            ApiError::CrossOrigin(refusal) => {
                let (status, kind) = refusal.kind();
                (status, kind, refusal.to_string())
            }
            ApiError::Unavailable(message) => {
                tracing::warn!(%request_id, "change refused: {message}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServerException",
                    format!(
                        "storage unavailable: the service takes no changes until it is restarted; request id {request_id}"
                    ),
                )
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn our_faults_answer_500_server_exception_without_their_details() {
        let response = ApiError::Server("redb: cannot write /var/lib/secret/wasmbatch.redb".into())
            .into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()["x-amzn-ErrorType"], "ServerException");
        let id = response.headers()["x-amzn-RequestId"]
            .to_str()
            .unwrap()
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(!message.contains("secret"), "{message}");
        assert!(
            message.contains(&id),
            "the caller can quote the request id: {message}"
        );
    }

    #[tokio::test]
    async fn mistakes_answer_400_client_exception_with_the_message() {
        let response =
            ApiError::Client("priority: must be between 0 and 1000".into()).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["x-amzn-ErrorType"], "ClientException");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(
            &body[..],
            br#"{"message":"priority: must be between 0 and 1000"}"#
        );
    }
}
