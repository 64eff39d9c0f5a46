//! wasmbatch's HTTP face: AWS Batch's REST-JSON protocol over a [`Batch`], so the AWS CLI,
//! boto3 and aws-sdk-rust work against it with `--endpoint-url`.
//!
//! # Layout
//! - [`app`] builds the router (tests drive it with `oneshot`, no socket); [`serve`] runs it on a
//!   listener until a shutdown future resolves, [`serve_with`] with a [`ServeConfig`].
//! - `server`: the listener's side: TLS ([`Tls`]), the accept loop, the connection limit and
//!   the header timeout; every bound a [`ServeConfig`] field.
//! - [`origin`]: requests a web page could make a browser send (a foreign `Host` or `Origin`,
//!   a body type the SDKs never send) are refused before anything else, in every mode.
//! - [`access`]: who is calling (SigV4 against the credentials file's keys) and what their
//!   policy lets them do; or local-development mode, where everything is allowed.
//! - `error`: the one error type of this layer and its AWS envelope (`x-amzn-ErrorType`,
//!   `{"message": …}`, `x-amzn-RequestId`).
//! - `routes`: one file per resource (`compute_environments`, `job_queues`, `job_definitions`,
//!   `jobs`), each mapping `POST /v1/<operation>` to the `Batch` call.
//! - `shapes`: response shapes that are not the model's own (JobDetail, JobSummary).
//! - `console`: the web console at `/console`, its files compiled in; it calls the API from
//!   the browser, signing in checked mode.
//! - [`metrics`]: requests counted by operation and status, and `GET /metrics` on a listener
//!   of its own.

pub mod access;
mod console;
mod error;
pub mod metrics;
pub mod origin;
mod routes;
mod server;
mod shapes;

use axum::Router;
use wasmbatch_runtime::Batch;

pub use access::Access;
pub use error::ApiError;
pub use origin::SameOrigin;
pub use server::{ServeConfig, ServeError, Tls, serve, serve_with};

/// The router of every operation, over `batch`, admitting the callers `access` admits, with the
/// default [`ServeConfig`] (loopback names only; see [`app_with`]).
pub fn app(batch: Batch, access: Access) -> Router {
    app_with(batch, access, &ServeConfig::default())
}

/// [`app`], answering to the hosts `config.origins` names and reading bodies within its bounds.
pub fn app_with(batch: Batch, access: Access, config: &ServeConfig) -> Router {
    let console = console::router(&batch.config().region);
    let gate = access::Gate {
        access,
        region: batch.config().region.clone(),
        bodies: std::sync::Arc::new(tokio::sync::Semaphore::new(
            config.max_unauthenticated_bodies,
        )),
        body_read_timeout: config.body_read_timeout,
    };
    let origins = config.origins.clone();
    routes::router()
        .with_state(batch.clone())
        .layer(axum::middleware::from_fn_with_state(
            gate,
            access::authenticate,
        ))
        // Unsigned, as load balancers and supervisors ask: it tells only whether changes are
        // taken.
        .merge(routes::health(batch))
        // Its files are the same for everyone; what it shows comes from signed requests.
        .merge(console)
        // Outside the signature check: a foreign page is refused in every mode, before its
        // body is read.
        .layer(axum::middleware::from_fn_with_state(origins, origin::check))
        .layer(axum::middleware::from_fn_with_state(
            config.http_metrics.clone(),
            metrics::record,
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
