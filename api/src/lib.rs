//! wasmbatch's HTTP face: AWS Batch's REST-JSON protocol over a [`Batch`], so the AWS CLI,
//! boto3 and aws-sdk-rust work against it with `--endpoint-url`.
//!
//! # Layout
//! - [`app`] builds the router (tests drive it with `oneshot`, no socket); [`serve`] runs it on a
//!   listener until a shutdown future resolves.
//! - [`access`]: who is calling (SigV4 against the credentials file's keys) and what their
//!   policy lets them do; or local-development mode, where everything is allowed.
//! - `error`: the one error type of this layer and its AWS envelope (`x-amzn-ErrorType`,
//!   `{"message": …}`, `x-amzn-RequestId`).
//! - `routes`: one file per resource (`compute_environments`, `job_queues`, `job_definitions`,
//!   `jobs`), each mapping `POST /v1/<operation>` to the `Batch` call.
//! - `shapes`: response shapes that are not the model's own (JobDetail, JobSummary).

pub mod access;
mod error;
mod routes;
mod shapes;

use std::future::Future;

use axum::Router;
use wasmbatch_runtime::Batch;

pub use access::Access;
pub use error::ApiError;

/// The router of every operation, over `batch`, admitting the callers `access` admits.
pub fn app(batch: Batch, access: Access) -> Router {
    let gate = access::Gate {
        access,
        region: batch.config().region.clone(),
    };
    routes::router()
        .with_state(batch)
        .layer(axum::middleware::from_fn_with_state(
            gate,
            access::authenticate,
        ))
        .layer(axum::middleware::from_fn(identify))
}

/// Gives every response a request id and logs who called what (the access key id as the
/// `Authorization` header names it; whether it was verified is `access`'s part).
async fn identify(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let caller = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(access_key_id)
        .unwrap_or("anonymous")
        .to_string();
    let operation = format!("{} {}", request.method(), request.uri().path());
    let mut response = next.run(request).await;
    let id = match response.headers().get("x-amzn-RequestId") {
        Some(id) => id.to_str().unwrap_or_default().to_string(),
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
                response.headers_mut().insert("x-amzn-RequestId", value);
            }
            id
        }
    };
    tracing::debug!(request_id = %id, %caller, %operation, status = response.status().as_u16(), "request");
    response
}

/// The access key id of a SigV4 `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, …`).
fn access_key_id(authorization: &str) -> Option<&str> {
    let credential = authorization.split("Credential=").nth(1)?;
    credential.split('/').next().filter(|k| !k.is_empty())
}

/// Serves [`app`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    batch: Batch,
    access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(batch, access))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_access_key_id_is_read_from_a_sigv4_header() {
        let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/us-east-1/batch/aws4_request, \
                      SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(super::access_key_id(header), Some("AKIDEXAMPLE"));
        assert_eq!(super::access_key_id("Bearer xyz"), None);
    }
}
