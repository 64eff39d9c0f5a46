//! The operations, as the AWS model routes them (`POST /v1/<operation>`, JSON in and out), one
//! file per resource.

mod compute_environments;
mod job_definitions;
mod job_queues;
mod jobs;
mod logs;
mod members;
mod modules;
mod tags;

use axum::Router;
use axum::routing::{get, post, put};
use wasmbatch_runtime::Batch;

use crate::access::Caller;
use crate::error::ApiError;

/// The caller of an operation, as `access::authenticate` verified it.
pub(crate) type Who = axum::Extension<std::sync::Arc<Caller>>;

/// The ARN `reference` names: itself if it is one, else that of the `kind` named so.
pub(crate) fn arn_of(batch: &Batch, kind: &str, reference: &str) -> String {
    if reference.starts_with("arn:") {
        reference.to_string()
    } else {
        batch.config().arn(kind, reference)
    }
}

/// The queue ARN `queue` resolves to, or the one it would have if it does not exist (the
/// operation then refuses it, once the policy has had its say).
pub(crate) fn queue_arn(batch: &Batch, queue: &str) -> String {
    batch
        .job_queue_arn(queue)
        .unwrap_or_else(|_| arn_of(batch, "job-queue", queue))
}

/// The revision ARN `definition` resolves to, or the ARN it names if it resolves to none.
pub(crate) fn definition_arn(batch: &Batch, definition: &str) -> String {
    batch
        .job_definition_arn(definition)
        .unwrap_or_else(|_| arn_of(batch, "job-definition", definition))
}

/// The ARNs a policy may name job `id` by: its own and its queue's (a queue's owner sees and
/// stops the jobs on it). A job that does not exist is named by the ARN it would have.
pub(crate) fn job_resources(batch: &Batch, id: &str) -> Vec<String> {
    match batch
        .describe_jobs(&[id.to_string()])
        .ok()
        .and_then(|mut j| j.pop())
    {
        Some(job) => vec![job.job_arn, job.job_queue],
        None => vec![batch.config().arn("job", id)],
    }
}

/// Whether the caller may take `action` on the job `id`.
pub(crate) fn authorize_job(
    caller: &Caller,
    batch: &Batch,
    action: &str,
    id: &str,
) -> Result<(), ApiError> {
    let resources = job_resources(batch, id);
    let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
    caller.authorize(action, &resources)
}

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
/// wrong and where: malformed JSON, a member the AWS model does not define for `operation`
/// (a misspelling would otherwise be ignored, and its intent lost), a wrong type.
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
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::Client(format!("{operation}: the body is not valid JSON: {e}")))?;
    let mut path = String::new();
    if let Some(unknown) = unknown_member(&format!("{operation}Request"), &value, &mut path) {
        return Err(ApiError::Client(format!(
            "{operation}: unknown member {unknown:?}; see the AWS Batch API reference for {operation}"
        )));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let problem = e.into_inner();
        ApiError::Client(if field == "." {
            format!("{operation}: {problem}")
        } else {
            format!("{operation}: {field}: {problem}")
        })
    })
}

/// The path of the first member of `value` that shape `shape` does not define, walking into
/// nested structures, lists and maps. `path` is where `value` is.
fn unknown_member(shape: &str, value: &serde_json::Value, path: &mut String) -> Option<String> {
    let members = members::SHAPES
        .binary_search_by(|(name, _)| name.cmp(&shape))
        .map(|i| members::SHAPES[i].1)
        .ok()?;
    match value {
        serde_json::Value::Object(object) => {
            for (key, inner) in object {
                let before = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match members.iter().find(|(member, _)| member == key) {
                    None => return Some(path.clone()),
                    Some((_, Some(holds))) => {
                        if let Some(unknown) = unknown_member(holds, inner, path) {
                            return Some(unknown);
                        }
                    }
                    Some((_, None)) => {}
                }
                path.truncate(before);
            }
            None
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let before = path.len();
                path.push_str(&format!("[{i}]"));
                if let Some(unknown) = unknown_member(shape, item, path) {
                    return Some(unknown);
                }
                path.truncate(before);
            }
            None
        }
        _ => None,
    }
}

/// A JSON response.
pub(crate) type Reply = Result<axum::Json<serde_json::Value>, ApiError>;
