//! A job's output over HTTP, two ways:
//! - CloudWatch Logs' GetLogEvents on the same port (JSON 1.1: `POST /` with `X-Amz-Target:
//!   Logs_20140328.GetLogEvents`), so `aws logs get-log-events --log-group-name /aws/batch/job
//!   --log-stream-name …` prints a job's output. Tokens are `f/<index>` and `b/<index>`, and
//!   only tokens this handler could have issued for the stream are accepted ([`Page::of`]):
//!   a token or a limit is the caller's input and indexes into the stream. A page reads the
//!   stream's length and then only the events it returns (the runtime keeps them in chunks of
//!   fixed size, so an index names a chunk and an offset in it), never the whole stream.
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
use crate::access::Caller;
use crate::error::ApiError;

/// The CloudWatch Logs operations served on `POST /`, by their `X-Amz-Target` suffix.
pub(crate) const OPERATIONS: &[&str] = &[
    "GetLogEvents",
    "DescribeLogGroups",
    "DescribeLogStreams",
    "FilterLogEvents",
];

/// The operation `target` (`Logs_20140328.<Operation>`) names, if this server serves it.
pub(crate) fn operation(target: &str) -> Option<&'static str> {
    let name = target.strip_prefix("Logs_20140328.")?;
    OPERATIONS.iter().copied().find(|o| *o == name)
}

/// Events per call when the caller does not say: CloudWatch's default, and its largest.
const MAX_LIMIT: i64 = 10_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetLogEvents {
    log_group_name: Option<String>,
    log_stream_name: String,
    #[serde(default)]
    start_from_head: Option<bool>,
    /// Signed, so that a negative limit is refused by our range check, with CloudWatch's
    /// message, rather than by the decoder.
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
    /// Epoch ms: only events at or after it.
    #[serde(default)]
    start_time: Option<i64>,
    /// Epoch ms: only events before it.
    #[serde(default)]
    end_time: Option<i64>,
}

/// An error in the JSON 1.1 protocol's shape: `{"__type": …, "message": …}`.
pub(super) fn logs_error(kind: &str, message: String) -> Response {
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
    let answer = match operation(target) {
        Some("GetLogEvents") => return get_log_events(&batch, &caller, &body).await,
        Some("DescribeLogGroups") => {
            super::log_search::describe_log_groups(&batch, &caller, &body).await
        }
        Some("DescribeLogStreams") => {
            super::log_search::describe_log_streams(&batch, &caller, &body).await
        }
        Some("FilterLogEvents") => {
            super::log_search::filter_log_events(&batch, &caller, &body).await
        }
        _ => {
            return logs_error(
                "UnknownOperationException",
                format!(
                    "operation {target:?} is not supported; this server serves CloudWatch Logs' {}",
                    OPERATIONS.join(", ")
                ),
            );
        }
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// GetLogEvents: a page of one stream's events.
async fn get_log_events(batch: &Batch, caller: &Caller, body: &[u8]) -> Response {
    let request: GetLogEvents = match serde_json::from_slice(body) {
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
        resources.extend(super::job_resources(batch, job_id));
    }
    let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
    if let Err(refused) = caller.authorize("logs:GetLogEvents", &resources) {
        return refused.into_response();
    }
    if !stream_exists(batch, &request.log_stream_name) {
        return logs_error(
            "ResourceNotFoundException",
            "The specified log stream does not exist.".into(),
        );
    }
    let stream = &request.log_stream_name;
    let bounds = match batch
        .log_bounds(stream, request.start_time, request.end_time)
        .await
    {
        Ok(bounds) => bounds,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let Page { from, to } = match Page::of(
        bounds.len,
        bounds.window,
        request.next_token.as_deref(),
        request.limit,
        request.start_from_head.unwrap_or(false),
    ) {
        Ok(page) => page,
        Err(problem) => return logs_error("InvalidParameterException", problem),
    };
    // The stream only grows, so the page found from its length a moment ago is still in it.
    let events = match batch.log_range(stream, from..to).await {
        Ok(events) => events,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let page: Vec<_> = events
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

/// The events of a stream one GetLogEvents call returns: `from..to`, which always lies within
/// the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    from: usize,
    to: usize,
}

impl Page {
    /// The page a call asks for in a stream of `len` events of which `window` lie in the
    /// call's time window, or what is wrong with the call (as the message of an
    /// InvalidParameterException). A forward page starts at its token, a backward page ends at
    /// it, each kept within the window; without a token the first page is the window's head
    /// or, by default as in CloudWatch, its tail. A token at or past the window's end (or
    /// before its start, going back) gives an empty page and comes back unchanged, which is how
    /// callers know they have read everything.
    fn of(
        len: usize,
        window: std::ops::Range<usize>,
        token: Option<&str>,
        limit: Option<i64>,
        start_from_head: bool,
    ) -> Result<Self, String> {
        let limit = match limit.unwrap_or(MAX_LIMIT) {
            limit @ 1..=MAX_LIMIT => limit as usize,
            limit => {
                return Err(format!(
                    "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy \
                     constraint: Member must have value between 1 and {MAX_LIMIT}"
                ));
            }
        };
        let (low, high) = (window.start.min(len), window.end.min(len));
        // Every bound below is at most `len`, so no sum overflows and no slice is out of range.
        Ok(
            match token.map(|token| Token::parse(token, len)).transpose()? {
                Some(Token::Forward(at)) => {
                    let from = at.max(low);
                    Page {
                        from,
                        to: from + limit.min(high.saturating_sub(from)),
                    }
                }
                Some(Token::Backward(at)) => {
                    let to = at.min(high);
                    Page {
                        from: to.saturating_sub(limit).max(low).min(to),
                        to,
                    }
                }
                None if start_from_head => Page {
                    from: low,
                    to: low + limit.min(high - low),
                },
                None => Page {
                    from: high.saturating_sub(limit).max(low),
                    to: high,
                },
            },
        )
    }
}

/// A GetLogEvents token as this handler issues them: `f/<index>` (a forward page starts at the
/// event at that index) or `b/<index>` (a backward page ends before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Forward(usize),
    Backward(usize),
}

impl Token {
    /// Accepts only what [`dispatch`] could have issued for a stream of `len` events (which only
    /// grows): the prefix, then an index in canonical decimal no greater than `len`. A token is
    /// the caller's input, so anything else is refused rather than guessed at.
    fn parse(text: &str, len: usize) -> Result<Self, String> {
        let invalid = || format!("The specified nextToken is invalid: {text:?}");
        let (direction, index) = text.split_once('/').ok_or_else(invalid)?;
        let canonical = !index.is_empty()
            && index.bytes().all(|b| b.is_ascii_digit())
            && (index == "0" || !index.starts_with('0'));
        if !canonical {
            return Err(invalid());
        }
        // Digits that do not fit a usize are past the end of any stream.
        let index = index
            .parse::<usize>()
            .ok()
            .filter(|&i| i <= len)
            .ok_or_else(|| {
                format!(
                    "The specified nextToken is invalid: {text:?} is past the end of the stream"
                )
            })?;
        match direction {
            "f" => Ok(Token::Forward(index)),
            "b" => Ok(Token::Backward(index)),
            _ => Err(invalid()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn page(len: usize, token: Option<&str>, limit: Option<i64>, head: bool) -> (usize, usize) {
        windowed(len, 0..len, token, limit, head)
    }

    fn windowed(
        len: usize,
        window: std::ops::Range<usize>,
        token: Option<&str>,
        limit: Option<i64>,
        head: bool,
    ) -> (usize, usize) {
        let page = Page::of(len, window, token, limit, head).unwrap();
        (page.from, page.to)
    }

    #[test]
    fn pages_keep_within_the_time_window_and_end_with_the_same_token() {
        let window = || 10..20;
        assert_eq!(windowed(25, window(), None, Some(4), true), (10, 14));
        assert_eq!(windowed(25, window(), None, Some(4), false), (16, 20));
        assert_eq!(windowed(25, window(), Some("f/0"), Some(4), true), (10, 14));
        assert_eq!(
            windowed(25, window(), Some("f/18"), Some(4), true),
            (18, 20)
        );
        // At or past the window's end the page is empty where the token points: the same
        // token comes back, and the caller stops.
        assert_eq!(
            windowed(25, window(), Some("f/20"), Some(4), true),
            (20, 20)
        );
        assert_eq!(
            windowed(25, window(), Some("f/23"), Some(4), true),
            (23, 23)
        );
        assert_eq!(
            windowed(25, window(), Some("b/12"), Some(4), false),
            (10, 12)
        );
        assert_eq!(windowed(25, window(), Some("b/5"), Some(4), false), (5, 5));
        assert_eq!(
            windowed(25, window(), Some("b/25"), Some(4), false),
            (16, 20)
        );
        assert_eq!(windowed(25, 25..25, None, None, false), (25, 25));
    }

    #[test]
    fn pages_lie_within_the_stream() {
        assert_eq!(page(25, None, Some(10), true), (0, 10));
        assert_eq!(page(25, None, Some(10), false), (15, 25));
        assert_eq!(page(25, Some("f/20"), Some(10), true), (20, 25));
        assert_eq!(page(25, Some("f/25"), Some(10), true), (25, 25));
        assert_eq!(page(25, Some("b/5"), Some(10), false), (0, 5));
        assert_eq!(page(25, Some("b/25"), None, false), (0, 25));
        assert_eq!(page(0, None, None, false), (0, 0));
        assert_eq!(page(0, Some("f/0"), Some(1), false), (0, 0));
        assert_eq!(page(3, Some("f/1"), Some(MAX_LIMIT), false), (1, 3));
    }

    #[test]
    fn tokens_that_were_never_issued_are_refused() {
        for token in [
            "f/18446744073709551615",
            "f/18446744073709551616",
            "b/18446744073709551615",
            "f/26",
            "b/26",
            "f/",
            "f/-1",
            "f/+1",
            "f/ 1",
            "f/01",
            "f/1.0",
            "x/1",
            "F/1",
            "f1",
            "",
            "f/1/2",
        ] {
            let error = Page::of(25, 0..25, Some(token), Some(1), false).unwrap_err();
            assert!(error.contains("nextToken is invalid"), "{token:?}: {error}");
        }
    }

    #[test]
    fn limits_are_between_1_and_10000() {
        for limit in [0, -1, 10_001, i64::MIN, i64::MAX] {
            let error = Page::of(25, 0..25, None, Some(limit), false).unwrap_err();
            assert!(error.contains(&format!("'{limit}' at 'limit'")), "{error}");
        }
        assert_eq!(page(25, None, Some(1), true), (0, 1));
        assert_eq!(page(25, None, Some(10_000), true), (0, 25));
    }
}
