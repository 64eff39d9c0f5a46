//! The operations, as the AWS model routes them (`POST /v1/<operation>`, JSON in and out), one
//! file per resource.

mod compute_environments;
mod job_definitions;
mod job_queues;
mod jobs;
mod logs;
mod modules;
mod tags;

use axum::Router;
use axum::routing::{get, post, put};
use wasmbatch_runtime::Batch;

use crate::error::ApiError;

/// Largest request body of most operations; AWS's own limits are smaller for the two that have
/// them (SubmitJob 30 KiB, RegisterJobDefinition 24 KiB), checked where they apply.
const MAX_BODY: usize = 64 * 1024;

pub(crate) fn router() -> Router<Batch> {
    Router::new()
        .route(
            "/v1/createcomputeenvironment",
            post(compute_environments::create),
        )
        .route(
            "/v1/describecomputeenvironments",
            post(compute_environments::describe),
        )
        .route(
            "/v1/updatecomputeenvironment",
            post(compute_environments::update),
        )
        .route(
            "/v1/deletecomputeenvironment",
            post(compute_environments::delete),
        )
        .route("/v1/createjobqueue", post(job_queues::create))
        .route("/v1/describejobqueues", post(job_queues::describe))
        .route("/v1/updatejobqueue", post(job_queues::update))
        .route("/v1/deletejobqueue", post(job_queues::delete))
        .route("/v1/registerjobdefinition", post(job_definitions::register))
        .route(
            "/v1/describejobdefinitions",
            post(job_definitions::describe),
        )
        .route(
            "/v1/deregisterjobdefinition",
            post(job_definitions::deregister),
        )
        .route("/v1/submitjob", post(jobs::submit))
        .route("/v1/describejobs", post(jobs::describe))
        .route("/v1/listjobs", post(jobs::list))
        .route("/v1/canceljob", post(jobs::cancel))
        .route("/v1/terminatejob", post(jobs::terminate))
        .route("/", post(logs::dispatch))
        .route("/v1/jobs/{job_id}/logs", get(logs::job_log))
        .route(
            "/v1/tags/{arn}",
            post(tags::tag).delete(tags::untag).get(tags::list),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .merge(
            Router::new()
                .route("/v1/modules", get(modules::list))
                .route(
                    "/v1/modules/{name}",
                    put(modules::push)
                        .get(modules::describe)
                        .delete(modules::delete),
                )
                // The upload is read as a stream, limited by the service's own setting.
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
}

/// Decodes a request body, refusing one over `limit` bytes, with messages that say what was
/// wrong and where.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    body: &[u8],
    limit: usize,
    operation: &str,
) -> Result<T, ApiError> {
    if body.len() > limit {
        return Err(ApiError::Client(format!(
            "{operation} request body is {} bytes; the limit is {limit}",
            body.len()
        )));
    }
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::Client(format!("{operation}: invalid request: {e}")))
}

/// A JSON response.
pub(crate) type Reply = Result<axum::Json<serde_json::Value>, ApiError>;
