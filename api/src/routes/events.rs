//! `GET /v1/events`: job state change events as Server-Sent Events, each shaped like
//! EventBridge's "Batch Job State Change" with `detail` the job as DescribeJobs shows it, and
//! the event's sequence as its SSE `id`, so a client that reconnects with `Last-Event-ID` goes
//! on where it stopped (within the events' retention), across restarts of the server too.
//!
//! A stream reads committed events from the store (`Batch::job_events`), so it sends nothing
//! a crash could take back, in sequence order, which is each job's order. It reads at most once
//! per [`COALESCE`] while events keep coming, whatever the rate of commits, and a slow client
//! holds back only its own stream: nothing is buffered for it beyond one read. Each event is
//! sent only to a caller whose policy allows `batch:DescribeJobs` on the job or its queue,
//! as DescribeJobs decides; a caller allowed it on nothing is refused.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use wasmbatch_runtime::model::JobStatus;
use wasmbatch_runtime::model::arn::ResourceKind;
use wasmbatch_runtime::{Batch, JobEvent};

use super::Who;
use crate::access::Caller;
use crate::error::ApiError;

/// The least time between two reads of one stream while events keep coming.
const COALESCE: Duration = Duration::from_millis(10);
/// How often an idle stream looks whether the server is stopping.
const STOP_CHECK: Duration = Duration::from_millis(250);
/// Events read at once.
const READ: usize = 256;
/// Most event streams open at once on one server; each wakes at every commit.
pub(crate) const MAX_STREAMS: usize = 64;

/// The places of the open event streams (see [`MAX_STREAMS`]).
#[derive(Clone)]
pub(crate) struct EventStreams(pub(crate) Arc<Semaphore>);

impl Default for EventStreams {
    fn default() -> Self {
        EventStreams(Arc::new(Semaphore::new(MAX_STREAMS)))
    }
}

/// What a stream sends: the queue and statuses asked for, from which event on.
struct Filter {
    queue: Option<String>,
    statuses: Vec<JobStatus>,
    after: Option<u64>,
}

fn parse_query(batch: &Batch, query: Option<&str>) -> Result<Filter, ApiError> {
    let mut filter = Filter {
        queue: None,
        statuses: Vec::new(),
        after: None,
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "queue" => {
                let name = batch
                    .config()
                    .resource_name(ResourceKind::JobQueue, "queue", &value)?;
                if batch.describe_job_queues(&[name.to_string()]).is_empty() {
                    return Err(ApiError::Client(format!(
                        "queue: job queue {name} does not exist"
                    )));
                }
                filter.queue = Some(name.to_string());
            }
            "status" => {
                for status in value.split(',') {
                    filter.statuses.push(
                        serde_json::from_value(Value::String(status.to_string())).map_err(
                            |_| {
                                ApiError::Client(format!(
                                    "status: {status:?} is not a job status; use SUBMITTED, \
                                     PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED or FAILED"
                                ))
                            },
                        )?,
                    );
                }
            }
            "after" => filter.after = Some(sequence("after", &value)?),
            other => {
                return Err(ApiError::Client(format!(
                    "unknown query parameter {other:?}; expected queue, status or after"
                )));
            }
        }
    }
    Ok(filter)
}

/// An event's id as a client gives it back.
fn sequence(field: &str, value: &str) -> Result<u64, ApiError> {
    let canonical = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    canonical
        .then(|| value.parse().ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::Client(format!(
                "{field}: expected an event id (the sequence number of an event), got {:?}",
                value.chars().take(40).collect::<String>()
            ))
        })
}

/// `GET /v1/events?queue=Q&status=S[,S…]&after=N`; `Last-Event-ID`, when sent (a reconnect),
/// wins over `after`. Without either the stream starts with the next event.
pub(crate) async fn stream(
    State(batch): State<Batch>,
    axum::Extension(caller): Who,
    axum::Extension(streams): axum::Extension<EventStreams>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.authorize_listing("batch:DescribeJobs", "*")?;
    let mut filter = parse_query(&batch, query.as_deref())?;
    if let Some(last) = headers.get("last-event-id") {
        let last = last
            .to_str()
            .map_err(|_| ApiError::Client("Last-Event-ID: not text".into()))?;
        filter.after = Some(sequence("Last-Event-ID", last.trim())?);
    }
    let Ok(place) = streams.0.clone().try_acquire_owned() else {
        return Err(ApiError::TooManyRequests(format!(
            "{MAX_STREAMS} event streams are open on this server; close one or retry later"
        )));
    };
    let after = filter.after.unwrap_or_else(|| batch.last_event_sequence());
    // Bounded: the reader waits for the client once a read's worth is queued.
    let (send, receive) = tokio::sync::mpsc::channel::<Event>(READ);
    tokio::spawn(async move {
        let _place = place;
        if let Err(e) = pump(&batch, &caller, &filter, after, &send).await {
            tracing::warn!("an event stream ended: {e}");
        }
    });
    let events = futures_util::stream::unfold(receive, |mut receive| async move {
        receive
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receive))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Reads committed events after `after` and sends those `caller` may see and `filter` asks
/// for, until the client goes or the store closes.
async fn pump(
    batch: &Batch,
    caller: &Caller,
    filter: &Filter,
    mut after: u64,
    send: &tokio::sync::mpsc::Sender<Event>,
) -> Result<(), wasmbatch_runtime::BatchError> {
    loop {
        let point = batch.commit_point();
        let events = batch.job_events(after, READ).await?;
        let full = events.len() == READ;
        for event in events {
            after = event.sequence;
            if filter.queue.as_ref().is_some_and(|q| *q != event.job_queue)
                || (!filter.statuses.is_empty() && !filter.statuses.contains(&event.status))
                || !may_see(batch, caller, &event)
            {
                continue;
            }
            let data = envelope(batch, &event).to_string();
            let sse = Event::default()
                .id(event.sequence.to_string())
                .event("Batch Job State Change")
                .data(data);
            if send.send(sse).await.is_err() {
                return Ok(());
            }
        }
        if full {
            continue;
        }
        // A server that is stopping waits for its open requests: a stream ends once it has
        // sent what was committed, and the client resumes from its last id after the restart.
        if batch.is_stopping() {
            return Ok(());
        }
        loop {
            tokio::select! {
                point = batch.committed_past(point) => match point {
                    Some(_) => break,
                    None => return Ok(()),
                },
                () = send.closed() => return Ok(()),
                () = tokio::time::sleep(STOP_CHECK) => if batch.is_stopping() { break },
            }
        }
        tokio::time::sleep(COALESCE).await;
    }
}

fn may_see(batch: &Batch, caller: &Caller, event: &JobEvent) -> bool {
    let config = batch.config();
    let job = config.arn(ResourceKind::Job, &event.job_id);
    let queue = config.arn(ResourceKind::JobQueue, &event.job_queue);
    caller.allows("batch:DescribeJobs", &[&job, &queue])
}

/// The event as EventBridge delivers AWS Batch's: `detail` is the job as DescribeJobs shows
/// it when the event is sent, with the event's status and reason; a job retention has removed
/// since is shown by what the event recorded.
pub(crate) fn envelope(batch: &Batch, event: &JobEvent) -> Value {
    let config = batch.config();
    let job_arn = config.arn(ResourceKind::Job, &event.job_id);
    let job = batch
        .describe_jobs(std::slice::from_ref(&event.job_id))
        .ok()
        .and_then(|mut jobs| jobs.pop());
    let mut detail = match job {
        Some(job) => crate::shapes::job_detail(
            &job,
            batch.job_container(&job),
            batch.array_summary(&job.job_id),
        ),
        None => json!({
            "jobArn": job_arn,
            "jobName": event.job_name,
            "jobId": event.job_id,
            "jobQueue": config.arn(ResourceKind::JobQueue, &event.job_queue),
        }),
    };
    detail["status"] = json!(event.status);
    match &event.status_reason {
        Some(reason) => detail["statusReason"] = json!(reason),
        None => {
            if let Some(members) = detail.as_object_mut() {
                members.remove("statusReason");
            }
        }
    }
    let amz = crate::access::sigv4::format_amz_date(
        std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(event.time).unwrap_or(0)),
    );
    let time = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &amz[0..4],
        &amz[4..6],
        &amz[6..8],
        &amz[9..11],
        &amz[11..13],
        &amz[13..15]
    );
    json!({
        "version": "0",
        // Stable across replays, so a consumer can drop one it already has.
        "id": uuid::Uuid::from_u64_pair(0x7761_736d_6261_7463, event.sequence).to_string(),
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": config.account_id,
        "time": time,
        "region": config.region,
        "resources": [job_arn],
        "detail": detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_canonical_sequence_numbers() {
        assert_eq!(sequence("after", "0").unwrap(), 0);
        assert_eq!(sequence("after", "42").unwrap(), 42);
        for bad in ["", "-1", "042", "1e3", "18446744073709551616", " 1"] {
            let error = sequence("Last-Event-ID", bad).unwrap_err().to_string();
            assert!(error.starts_with("Last-Event-ID: "), "{bad:?}: {error}");
        }
    }
}
