//! Requests through the HTTP router in process (`oneshot`, no socket), answered as a client
//! reads them: the status, `x-amzn-ErrorType`, and the JSON body.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

/// Sends `request` through `app`: the status, the `x-amzn-ErrorType` header, and the body as
/// JSON (as a JSON string when it is not JSON, so that a plain-text answer shows in a failure).
pub async fn answer(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, Option<String>, Value) {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let kind = response
        .headers()
        .get("x-amzn-ErrorType")
        .map(|v| v.to_str().expect("an ASCII error type").to_string());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("the body arrives")
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, kind, body)
}

/// `POST /v1/<operation>` with a JSON body, as the AWS SDKs send it.
pub fn post(operation: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(format!("/v1/{operation}"))
        .header("content-type", "application/json")
        .body(body.into())
        .expect("a well-formed request")
}
