//! wasmbatch's HTTP face: AWS Batch's REST-JSON protocol over a [`Batch`], so the AWS CLI,
//! boto3 and aws-sdk-rust work against it with `--endpoint-url`.
//!
//! # Layout
//! - [`app`] builds the router (tests drive it with `oneshot`, no socket); [`serve`] runs it on a
//!   listener until a shutdown future resolves.
//! - `error`: the one error type of this layer and its AWS envelope (`x-amzn-ErrorType`,
//!   `{"message": …}`, `x-amzn-RequestId`).
//! - `routes`: one file per resource (`compute_environments`, `job_queues`, `job_definitions`,
//!   `jobs`), each mapping `POST /v1/<operation>` to the `Batch` call.
//! - `shapes`: response shapes that are not the model's own (JobDetail, JobSummary).

mod error;
mod routes;
mod shapes;

use std::future::Future;

use axum::Router;
use wasmbatch_runtime::Batch;

pub use error::ApiError;

/// The router of every operation, over `batch`.
pub fn app(batch: Batch) -> Router {
    routes::router().with_state(batch)
}

/// Serves [`app`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    batch: Batch,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(batch))
        .with_graceful_shutdown(shutdown)
        .await
}
