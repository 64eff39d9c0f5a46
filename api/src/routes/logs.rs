//! A job's output over HTTP, two ways:
//! - CloudWatch Logs' GetLogEvents on the same port (JSON 1.1: `POST /` with `X-Amz-Target:
//!   Logs_20140328.GetLogEvents`), so `aws logs get-log-events --log-group-name /aws/batch/job
//!   --log-stream-name …` prints a job's output. Tokens are `f/<index>` and `b/<index>`.
//! - For people and our CLI, `GET /v1/jobs/{jobId}/logs?attempt=N&follow=true`: plain text, one
//!   line per event; with `follow`, a chunked response that grows as the guest writes and ends
//!   with the attempt (or, without `attempt`, goes through every attempt from the first and ends
//!   with the job). Without `follow`, the latest attempt's lines so far.

use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::{Batch, LOG_GROUP, LogEvent, LogFollower};

use super::{Who, authorize_job};
use crate::error::ApiError;

/// Events per call when the caller does not say (CloudWatch's default).
const DEFAULT_LIMIT: usize = 10_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetLogEvents {
    log_group_name: Option<String>,
    log_stream_name: String,
    #[serde(default)]
    start_from_head: Option<bool>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    next_token: Option<String>,
}

/// An error in the JSON 1.1 protocol's shape: `{"__type": …, "message": …}`.
fn logs_error(kind: &str, message: String) -> Response {
    let mut response = (
        StatusCode::BAD_REQUEST,
        Json(json!({ "__type": kind, "message": message })),
    )
        .into_response();
    if let Ok(kind) = HeaderValue::from_str(kind) {
        response.headers_mut().insert("x-amzn-ErrorType", kind);
    }
    response
}

pub(crate) async fn dispatch(
    State(batch): State<Batch>,
    axum::Extension(caller): Who,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target != "Logs_20140328.GetLogEvents" {
        return logs_error(
            "UnknownOperationException",
            format!("operation {target:?} is not supported"),
        );
    }
    let request: GetLogEvents = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return logs_error("InvalidParameterException", format!("invalid request: {e}")),
    };
    if request
        .log_group_name
        .as_deref()
        .is_some_and(|g| g != LOG_GROUP)
    {
        return logs_error(
            "ResourceNotFoundException",
            format!("The specified log group does not exist: jobs log to {LOG_GROUP}"),
        );
    }
    // The stream's own ARN, and the job's and its queue's: a queue's owner reads its jobs' logs.
    let config = batch.config();
    let mut resources = vec![format!(
        "arn:aws:logs:{}:{}:log-group:{LOG_GROUP}:log-stream:{}",
        config.region, config.account_id, request.log_stream_name
    )];
    if let Some((job_id, _)) = stream_attempt(&request.log_stream_name) {
        resources.extend(super::job_resources(&batch, job_id));
    }
    let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
    if let Err(refused) = caller.authorize("logs:GetLogEvents", &resources) {
        return refused.into_response();
    }
    if !stream_exists(&batch, &request.log_stream_name) {
        return logs_error(
            "ResourceNotFoundException",
            "The specified log stream does not exist.".into(),
        );
    }
    let events = match batch.log_events(&request.log_stream_name).await {
        Ok(events) => events,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let limit = request
        .limit
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, DEFAULT_LIMIT);
    let position = |token: &str| -> Option<(bool, usize)> {
        let (direction, index) = token.split_once('/')?;
        Some((direction == "f", index.parse().ok()?))
    };
    // A forward page starts at its token, a backward page ends at it; without a token the
    // first page is the head or, by default as in CloudWatch, the tail.
    let (from, to) = match request.next_token.as_deref().map(position) {
        Some(Some((true, i))) => (i.min(events.len()), (i + limit).min(events.len())),
        Some(Some((false, i))) => (
            i.min(events.len()).saturating_sub(limit),
            i.min(events.len()),
        ),
        Some(None) => {
            return logs_error(
                "InvalidParameterException",
                "The specified nextToken is invalid.".into(),
            );
        }
        None if request.start_from_head.unwrap_or(false) => (0, limit.min(events.len())),
        None => (events.len().saturating_sub(limit), events.len()),
    };
    let page: Vec<_> = events[from..to]
        .iter()
        .map(|e| json!({ "timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time }))
        .collect();
    Json(json!({
        "events": page,
        "nextForwardToken": format!("f/{to}"),
        "nextBackwardToken": format!("b/{from}"),
    }))
    .into_response()
}

/// The job id and attempt a stream name (`<definition>/default/<jobId>-<attempt>`) speaks of.
fn stream_attempt(stream: &str) -> Option<(&str, usize)> {
    let (_, last) = stream.rsplit_once('/')?;
    let (job_id, attempt) = last.rsplit_once('-')?;
    Some((job_id, attempt.parse().ok()?))
}

/// Whether a stream name belongs to an attempt that has started.
fn stream_exists(batch: &Batch, stream: &str) -> bool {
    stream_attempt(stream).is_some_and(|(job_id, attempt)| {
        batch.log_stream(job_id, Some(attempt)).as_deref() == Some(stream)
    })
}

/// `GET /v1/jobs/{jobId}/logs?attempt=N&follow=true`.
pub(crate) async fn job_log(
    State(batch): State<Batch>,
    axum::Extension(caller): Who,
    Path(job_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    authorize_job(&caller, &batch, "logs:GetLogEvents", &job_id)?;
    let mut attempt = None;
    let mut follow = false;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "attempt" => {
                attempt = Some(value.parse::<usize>().map_err(|_| {
                    ApiError::Client(format!(
                        "attempt: expected a positive number, got {value:?}"
                    ))
                })?);
            }
            "follow" => {
                follow = match &*value {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::Client(format!(
                            "follow: expected true or false, got {value:?}"
                        )));
                    }
                };
            }
            other => {
                return Err(ApiError::Client(format!(
                    "unknown query parameter {other:?}; expected attempt or follow"
                )));
            }
        }
    }
    let follower = batch.follow_job(&job_id, attempt)?;
    let body = if follow {
        Body::from_stream(futures_util::stream::try_unfold(follower, next_lines))
    } else {
        let events = match batch.log_stream(&job_id, attempt) {
            Some(stream) => batch.log_events(&stream).await?,
            None => Vec::new(),
        };
        Body::from(lines(&events))
    };
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// The next piece of a followed log, as text.
async fn next_lines(
    mut follower: LogFollower,
) -> Result<Option<(Bytes, LogFollower)>, wasmbatch_runtime::BatchError> {
    Ok(follower
        .next()
        .await?
        .map(|events| (Bytes::from(lines(&events)), follower)))
}

fn lines(events: &[LogEvent]) -> String {
    let mut text = String::with_capacity(events.iter().map(|e| e.message.len() + 1).sum());
    for event in events {
        text.push_str(&event.message);
        text.push('\n');
    }
    text
}
