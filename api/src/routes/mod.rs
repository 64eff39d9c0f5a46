//! The operations, as the AWS model routes them (`POST /v1/<operation>`, JSON in and out), one
//! file per resource.

mod compute_environments;
mod events;
mod job_definitions;
mod job_queues;
mod jobs;
mod log_search;
mod logs;
pub(crate) use logs::operation as logs_operation;
mod members;
mod modules;
mod scheduling_policies;
mod tags;

use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::routing::{get, post, put};
use bytes::BytesMut;
use futures_util::StreamExt;
use wasmbatch_runtime::{Batch, ResourceKind};

use crate::access::Caller;
use crate::error::ApiError;

/// The caller of an operation, as `access::authenticate` verified it.
pub(crate) type Who = axum::Extension<std::sync::Arc<Caller>>;

/// The canonical ARN of what `reference` names, the one spelling a policy is asked about:
/// resolved first, then authorized, whatever spelling the caller used. A look-alike ARN
/// (another partition, region or account) is refused before any policy is asked.
pub(crate) fn resource_arn(
    batch: &Batch,
    kind: ResourceKind,
    field: &str,
    reference: &str,
) -> Result<String, ApiError> {
    Ok(batch.resource_arn(kind, field, reference)?)
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
        None => vec![batch.config().arn(ResourceKind::Job, id)],
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
/// them (SubmitJob 30 KiB, RegisterJobDefinition 24 KiB), checked where they apply. The
/// operations that take JSON read their body as a [`Payload`], which applies it itself; the
/// layer limits GetLogEvents.
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
        .route("/v1/getjobqueuesnapshot", post(job_queues::snapshot))
        .route(
            "/v1/createschedulingpolicy",
            post(scheduling_policies::create),
        )
        .route(
            "/v1/describeschedulingpolicies",
            post(scheduling_policies::describe),
        )
        .route(
            "/v1/listschedulingpolicies",
            post(scheduling_policies::list),
        )
        .route(
            "/v1/updateschedulingpolicy",
            post(scheduling_policies::update),
        )
        .route(
            "/v1/deleteschedulingpolicy",
            post(scheduling_policies::delete),
        )
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
        .route("/v1/canceljobs", post(jobs::cancel_many))
        .route("/v1/terminatejobs", post(jobs::terminate_many))
        .route("/", post(logs::dispatch))
        .route("/v1/jobs/{job_id}/logs", get(logs::job_log))
        .route("/v1/workers", get(compute_environments::workers))
        .route("/v1/jobcounts", get(job_queues::counts))
        .route("/v1/events", get(events::stream))
        .route(
            "/v1/tags/{arn}",
            post(tags::tag).delete(tags::untag).get(tags::list),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .merge(
            Router::new()
                .route("/v1/modules", get(modules::list))
                .route(
                    // A pulled module's name has slashes (`host/repository`).
                    "/v1/modules/{*name}",
                    put(modules::push)
                        .get(modules::describe)
                        .delete(modules::delete),
                )
                // The upload is read as a stream, limited by the service's own setting.
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .fallback(unknown_route)
        .method_not_allowed_fallback(unknown_route)
        .layer(axum::Extension(events::EventStreams::default()))
}

/// What is not an operation of ours answers in the AWS error envelope, not with a bare 404 a
/// client cannot parse. The path is the caller's: it is quoted back, shortened, not logged.
async fn unknown_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    ApiError::UnknownOperation(format!(
        "{method} {path:?} is not an operation of this server (AWS Batch's are POST /v1/<operation>, \
         CloudWatch Logs' POST / with X-Amz-Target)"
    ))
}

/// `GET /health`: 200 `{"status":"ok"}` while the service takes changes, 503
/// `{"status":"unavailable","reason":…}` once storage has failed (reads are still served).
pub(crate) fn health(batch: Batch) -> Router {
    Router::new()
        .route("/health", get(health_status))
        .with_state(batch)
}

async fn health_status(
    axum::extract::State(batch): axum::extract::State<Batch>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match batch.health() {
        // The store's reason is redb's IO error (`No space left on device`), which the operator
        // needs and which names no file.
        wasmbatch_runtime::Health::StorageUnavailable { reason } => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "unavailable",
                "reason": format!("storage unavailable: {reason}; the service takes no changes until it is restarted"),
            })),
        )
            .into_response(),
        _ => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
    }
}

/// A request body as the operations take it: whole, or, past [`MAX_BODY`], only that it was too
/// large, so that `decode` refuses it with the operation's own limit as a ClientException (axum's
/// own limit answers a plain-text 413 the AWS clients cannot read).
pub(crate) struct Payload(Option<Bytes>);

impl<S: Send + Sync> FromRequest<S> for Payload {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, _: &S) -> Result<Self, ApiError> {
        let mut pieces = request.into_body().into_data_stream();
        let mut body = BytesMut::new();
        while let Some(piece) = pieces.next().await {
            let piece = piece.map_err(|e| {
                ApiError::Client(format!("the request body could not be read: {e}"))
            })?;
            if body.len() + piece.len() > MAX_BODY {
                // Read to its end, so that the client, still sending, sees the refusal.
                crate::access::drain(axum::body::Body::from_stream(pieces)).await;
                return Ok(Payload(None));
            }
            body.extend_from_slice(&piece);
        }
        Ok(Payload(Some(body.freeze())))
    }
}

/// Decodes a request body, refusing one over `limit` bytes, with messages that say what was
/// wrong and where: malformed JSON, a member the AWS model does not define for `operation`
/// (a misspelling would otherwise be ignored, and its intent lost), a value of a type the model
/// does not give that member (checked here for every member, as some are only stored and
/// echoed, and an AWS client could not read them back), a value the request type refuses.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    body: &Payload,
    limit: usize,
    operation: &str,
) -> Result<T, ApiError> {
    let body = match &body.0 {
        Some(body) if body.len() <= limit => body,
        Some(body) => {
            return Err(ApiError::Client(format!(
                "{operation} request body is {} bytes; the limit is {limit}",
                body.len()
            )));
        }
        None => {
            return Err(ApiError::Client(format!(
                "{operation} request body is over {MAX_BODY} bytes; the limit is {limit}"
            )));
        }
    };
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::Client(format!("{operation}: the body is not valid JSON: {e}")))?;
    let mut path = String::new();
    match request_shape(operation).map_or(Ok(()), |shape| check(&shape, &value, &mut path)) {
        Ok(()) => {}
        Err(Mismatch::Unknown) => {
            return Err(ApiError::Client(format!(
                "{operation}: unknown member {path:?}; see the AWS Batch API reference for {operation}"
            )));
        }
        Err(Mismatch::Type(problem)) => {
            let at = if path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            };
            return Err(ApiError::Client(format!("{operation}: {at}{problem}")));
        }
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

/// What a member holds in the AWS model (`members.rs` lists them, generated from it).
#[derive(Debug)]
pub(crate) enum Kind {
    /// A JSON string.
    String,
    /// A whole number of 32 bits (the model's `integer`).
    Integer,
    /// A whole number of 64 bits (`long`).
    Long,
    /// `true` or `false`.
    Boolean,
    /// Any number (the model's `float` and `double`).
    Float,
    /// An object with the members of this shape.
    Structure(&'static str),
    /// A list of these.
    List(&'static Kind),
    /// An object whose keys are strings and whose values are these.
    Map(&'static Kind),
}

/// Why a body does not fit the model, at the path `check` leaves.
enum Mismatch {
    /// A member the shape does not define.
    Unknown,
    /// A value of the wrong type, with what was expected.
    Type(String),
}

/// The request shape of `operation`, if the table has it.
fn request_shape(operation: &str) -> Option<Kind> {
    let shape = format!("{operation}Request");
    let i = members::SHAPES
        .binary_search_by(|(name, _)| name.cmp(&shape.as_str()))
        .ok()?;
    Some(Kind::Structure(members::SHAPES[i].0))
}

/// Whether `value` is a `kind`, walking into structures, lists and maps; on a mismatch, `path`
/// is where it is. A member given as `null` is left to the request type, which reads it as
/// absent or refuses it; inside a list or a map, `null` is a wrong type.
fn check(kind: &Kind, value: &serde_json::Value, path: &mut String) -> Result<(), Mismatch> {
    use serde_json::Value;
    let expected = match (kind, value) {
        (Kind::String, Value::String(_)) | (Kind::Boolean, Value::Bool(_)) => return Ok(()),
        (Kind::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => {
            return match n.as_i64().map(i32::try_from) {
                Some(Ok(_)) => Ok(()),
                _ => Err(Mismatch::Type(format!(
                    "invalid value: {n} is out of range, expected a whole number from {} to {}",
                    i32::MIN,
                    i32::MAX
                ))),
            };
        }
        (Kind::Long, Value::Number(n)) if n.is_i64() => return Ok(()),
        (Kind::Float, Value::Number(_)) => return Ok(()),
        (Kind::Structure(shape), Value::Object(object)) => {
            let Ok(i) = members::SHAPES.binary_search_by(|(name, _)| name.cmp(shape)) else {
                return Ok(()); // a shape the table does not describe: left to the request type
            };
            let members = members::SHAPES[i].1;
            for (key, inner) in object {
                let before = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                let (_, held) = members
                    .iter()
                    .find(|(member, _)| member == key)
                    .ok_or(Mismatch::Unknown)?;
                if !inner.is_null() {
                    check(held, inner, path)?;
                }
                path.truncate(before);
            }
            return Ok(());
        }
        (Kind::List(item), Value::Array(items)) => {
            for (i, inner) in items.iter().enumerate() {
                let before = path.len();
                path.push_str(&format!("[{i}]"));
                check(item, inner, path)?;
                path.truncate(before);
            }
            return Ok(());
        }
        (Kind::Map(held), Value::Object(entries)) => {
            for (key, inner) in entries {
                let before = path.len();
                path.push('.');
                path.push_str(key);
                check(held, inner, path)?;
                path.truncate(before);
            }
            return Ok(());
        }
        (Kind::String, _) => "a string",
        (Kind::Integer, _) => "a whole number",
        (Kind::Long, _) => "a whole number",
        (Kind::Boolean, _) => "true or false",
        (Kind::Float, _) => "a number",
        (Kind::Structure(_), _) => "an object",
        (Kind::List(_), _) => "a list",
        (Kind::Map(_), _) => "an object of names and values",
    };
    let got = match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => "a string".to_string(),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "an object".to_string(),
    };
    Err(Mismatch::Type(format!(
        "invalid type: {got}, expected {expected}"
    )))
}

/// A JSON response.
pub(crate) type Reply = Result<axum::Json<serde_json::Value>, ApiError>;
