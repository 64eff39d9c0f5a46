//! CloudWatch Logs' listing and search operations for the one log group jobs write to:
//! DescribeLogGroups, DescribeLogStreams (prefix, order by name or last event, paging) and
//! FilterLogEvents (named streams or a prefix, a time range, CloudWatch's simple filter
//! patterns, paging). Streams are listed and searched as the caller may read them: one the
//! caller's policy does not allow (`logs:DescribeLogStreams` / `logs:FilterLogEvents` on the
//! stream's ARN, its job's or its queue's) is left out of a listing, and naming one is refused.
//! A search does a bounded amount of work per call ([`SCAN_EVENTS`], [`SCAN_STREAMS`]) and
//! then answers what it found with a token to go on, as CloudWatch does: a page may be short,
//! even empty, and still have a next.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use wasmbatch_runtime::{Batch, LOG_GROUP, LogStreamInfo, StreamOrder, StreamQuery};

use super::logs::logs_error;
use crate::access::Caller;
use crate::error::ApiError;

/// Most events one FilterLogEvents call reads before it answers.
const SCAN_EVENTS: usize = 100_000;
/// Most streams one FilterLogEvents call looks into before it answers.
const SCAN_STREAMS: usize = 200;
/// Events read from the store at once while searching.
const READ_BATCH: usize = 1_000;

fn group_arn(batch: &Batch) -> String {
    let config = batch.config();
    format!(
        "arn:aws:logs:{}:{}:log-group:{LOG_GROUP}",
        config.region, config.account_id
    )
}

fn stream_arn(batch: &Batch, stream: &str) -> String {
    format!("{}:log-stream:{stream}", group_arn(batch))
}

fn invalid(message: impl Into<String>) -> Response {
    logs_error("InvalidParameterException", message.into())
}

/// The group a request names, by `logGroupName` or `logGroupIdentifier` (its name or ARN):
/// exactly one of them, and it must be ours.
fn check_group(
    batch: &Batch,
    name: Option<&str>,
    identifier: Option<&str>,
) -> Result<(), Box<Response>> {
    let named = match (name, identifier) {
        (Some(_), Some(_)) => {
            return Err(Box::new(invalid(
                "logGroupName and logGroupIdentifier: give one of them, not both",
            )));
        }
        (None, None) => {
            return Err(Box::new(invalid(
                "logGroupName: give the log group's name (or its ARN as logGroupIdentifier)",
            )));
        }
        (Some(name), None) => name == LOG_GROUP,
        (None, Some(id)) => {
            let arn = group_arn(batch);
            id == LOG_GROUP || id == arn || id.strip_suffix(":*") == Some(arn.as_str())
        }
    };
    if named {
        Ok(())
    } else {
        Err(Box::new(logs_error(
            "ResourceNotFoundException",
            format!("The specified log group does not exist: jobs log to {LOG_GROUP}"),
        )))
    }
}

/// A `limit` between 1 and `max`, `max` when not given; else CloudWatch's message.
fn limit(value: Option<i64>, max: i64) -> Result<usize, Box<Response>> {
    match value.unwrap_or(max) {
        limit @ 1.. if limit <= max => Ok(limit as usize),
        limit => Err(Box::new(invalid(format!(
            "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy \
             constraint: Member must have value between 1 and {max}"
        )))),
    }
}

/// What a stream operation's request has in common: its group, which must be ours, and a
/// `limit` of at most `max`.
trait StreamRequest: serde::de::DeserializeOwned {
    fn group(&self) -> (Option<&str>, Option<&str>);
    fn limit(&self) -> Option<i64>;
}

/// The request in `body`, checked for its group, with its limit; else the answer to give.
fn opened<R: StreamRequest>(
    batch: &Batch,
    body: &[u8],
    max: i64,
) -> Result<(R, usize), Box<Response>> {
    let request: R = serde_json::from_slice(body)
        .map_err(|e| Box::new(invalid(format!("invalid request: {e}"))))?;
    let (name, identifier) = request.group();
    check_group(batch, name, identifier)?;
    let limit = limit(request.limit(), max)?;
    Ok((request, limit))
}

/// Whether the caller may take `action` on a stream (named by its ARN, its job's or its
/// queue's).
fn may_read(caller: &Caller, batch: &Batch, action: &str, stream: &LogStreamInfo) -> bool {
    let arn = stream_arn(batch, &stream.name);
    caller.allows(action, &[&arn, &stream.job_arn, &stream.job_queue])
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeLogGroups {
    log_group_name_prefix: Option<String>,
    log_group_name_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

pub(crate) async fn describe_log_groups(
    batch: &Batch,
    caller: &Caller,
    body: &[u8],
) -> Result<Response, ApiError> {
    let request: DescribeLogGroups = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => return Ok(invalid(format!("invalid request: {e}"))),
    };
    if let Err(refused) = limit(request.limit, 50) {
        return Ok(*refused);
    }
    if request.log_group_name_prefix.is_some() && request.log_group_name_pattern.is_some() {
        return Ok(invalid(
            "logGroupNamePrefix and logGroupNamePattern: give one of them, not both",
        ));
    }
    // One group, so one page: a token was never issued.
    if let Some(token) = &request.next_token {
        return Ok(invalid(format!(
            "The specified nextToken is invalid: {token:?}"
        )));
    }
    let arn = group_arn(batch);
    caller.authorize("logs:DescribeLogGroups", &[&arn, &format!("{arn}:*")])?;
    let listed = match (
        &request.log_group_name_prefix,
        &request.log_group_name_pattern,
    ) {
        (Some(prefix), _) => LOG_GROUP.starts_with(prefix.as_str()),
        // CloudWatch's pattern is a case-insensitive substring of the name.
        (_, Some(pattern)) => LOG_GROUP
            .to_ascii_lowercase()
            .contains(&pattern.to_ascii_lowercase()),
        (None, None) => true,
    };
    let mut groups = Vec::new();
    if listed {
        let config = batch.config();
        let kept = config
            .log_retention
            .map_or(config.job_retention, |logs| logs.min(config.job_retention));
        let mut group = json!({
            "logGroupName": LOG_GROUP,
            "arn": format!("{arn}:*"),
            "logGroupArn": arn,
            "metricFilterCount": 0,
            "storedBytes": 0,
            "logGroupClass": "STANDARD",
        });
        // CloudWatch reports retention in whole days; a retention of hours is left out
        // rather than rounded into a promise the server does not keep.
        let day = 24 * 3600;
        if kept.as_secs().is_multiple_of(day) {
            group["retentionInDays"] = json!(kept.as_secs() / day);
        }
        groups.push(group);
    }
    Ok(Json(json!({ "logGroups": groups })).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeLogStreams {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name_prefix: Option<String>,
    order_by: Option<String>,
    descending: Option<bool>,
    next_token: Option<String>,
    limit: Option<i64>,
}

impl StreamRequest for DescribeLogStreams {
    fn group(&self) -> (Option<&str>, Option<&str>) {
        (
            self.log_group_name.as_deref(),
            self.log_group_identifier.as_deref(),
        )
    }

    fn limit(&self) -> Option<i64> {
        self.limit
    }
}

pub(crate) async fn describe_log_streams(
    batch: &Batch,
    caller: &Caller,
    body: &[u8],
) -> Result<Response, ApiError> {
    let (request, limit) = match opened::<DescribeLogStreams>(batch, body, 50) {
        Ok(opened) => opened,
        Err(refused) => return Ok(*refused),
    };
    let order = match request.order_by.as_deref() {
        None | Some("LogStreamName") => StreamOrder::Name,
        Some("LastEventTime") => StreamOrder::LastEventTime,
        Some(other) => {
            return Ok(invalid(format!(
                "1 validation error detected: Value '{other}' at 'orderBy' failed to satisfy \
                 constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]"
            )));
        }
    };
    let prefix = request
        .log_stream_name_prefix
        .as_deref()
        .unwrap_or_default();
    if order == StreamOrder::LastEventTime && !prefix.is_empty() {
        return Ok(invalid(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    caller.authorize_listing(
        "logs:DescribeLogStreams",
        &format!("{}:*", group_arn(batch)),
    )?;
    let page = match batch
        .log_streams(StreamQuery {
            prefix,
            order,
            descending: request.descending.unwrap_or(false),
            token: request.next_token.as_deref(),
            limit,
        })
        .await
    {
        Ok(page) => page,
        Err(e) if e.is_client_error() => return Ok(invalid(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let streams: Vec<Value> = page
        .streams
        .iter()
        .filter(|s| may_read(caller, batch, "logs:DescribeLogStreams", s))
        .map(|s| {
            let mut stream = json!({
                "logStreamName": s.name,
                "creationTime": s.creation_time,
                "arn": stream_arn(batch, &s.name),
                "storedBytes": 0,
            });
            if let Some(first) = s.first_event {
                stream["firstEventTimestamp"] = json!(first);
            }
            if let Some(last) = s.last_event {
                stream["lastEventTimestamp"] = json!(last);
            }
            if let Some(ingested) = s.last_ingestion {
                stream["lastIngestionTime"] = json!(ingested);
            }
            stream
        })
        .collect();
    let mut answer = json!({ "logStreams": streams });
    if let Some(next) = page.next_token {
        answer["nextToken"] = json!(next);
    }
    Ok(Json(answer).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterLogEvents {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_names: Option<Vec<String>>,
    log_stream_name_prefix: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

/// Where a search goes on: event `index` of stream `stream` (`<index>/<stream>`).
struct SearchToken {
    index: usize,
    stream: String,
}

impl SearchToken {
    fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("The specified nextToken is invalid: {text:?}");
        let (index, stream) = text.split_once('/').ok_or_else(invalid)?;
        let canonical = !index.is_empty()
            && index.bytes().all(|b| b.is_ascii_digit())
            && (index == "0" || !index.starts_with('0'));
        if !canonical || stream.is_empty() {
            return Err(invalid());
        }
        Ok(SearchToken {
            index: index.parse().map_err(|_| invalid())?,
            stream: stream.to_string(),
        })
    }
}

impl StreamRequest for FilterLogEvents {
    fn group(&self) -> (Option<&str>, Option<&str>) {
        (
            self.log_group_name.as_deref(),
            self.log_group_identifier.as_deref(),
        )
    }

    fn limit(&self) -> Option<i64> {
        self.limit
    }
}

pub(crate) async fn filter_log_events(
    batch: &Batch,
    caller: &Caller,
    body: &[u8],
) -> Result<Response, ApiError> {
    let (request, limit) = match opened::<FilterLogEvents>(batch, body, 10_000) {
        Ok(opened) => opened,
        Err(refused) => return Ok(*refused),
    };
    let pattern = match FilterPattern::parse(request.filter_pattern.as_deref().unwrap_or("")) {
        Ok(pattern) => pattern,
        Err(problem) => return Ok(invalid(format!("filterPattern: {problem}"))),
    };
    let resume = match request.next_token.as_deref().map(SearchToken::parse) {
        Some(Ok(token)) => Some(token),
        Some(Err(problem)) => return Ok(invalid(problem)),
        None => None,
    };
    let named = match (&request.log_stream_names, &request.log_stream_name_prefix) {
        (Some(_), Some(_)) => {
            return Ok(invalid(
                "logStreamNames and logStreamNamePrefix: give one of them, not both",
            ));
        }
        (Some(names), None) if names.is_empty() || names.len() > 100 => {
            return Ok(invalid(format!(
                "logStreamNames: give between 1 and 100 names, not {}",
                names.len()
            )));
        }
        (Some(names), None) => {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            Some(names)
        }
        (None, _) => None,
    };
    caller.authorize_listing("logs:FilterLogEvents", &format!("{}:*", group_arn(batch)))?;
    let prefix = request
        .log_stream_name_prefix
        .as_deref()
        .unwrap_or_default();
    let mut events: Vec<Value> = Vec::new();
    let (mut scanned, mut streams_seen) = (0usize, 0usize);
    // The streams to search, a page at a time, from where the token left off.
    let mut listing_token: Option<String> = None;
    let mut named_at = 0;
    loop {
        let candidates: Vec<LogStreamInfo> = if let Some(names) = &named {
            // Named streams, in name order, from the token's on.
            let from = resume.as_ref().map_or("", |t| t.stream.as_str());
            let mut found = Vec::new();
            while named_at < names.len() && found.len() < 50 {
                let name = &names[named_at];
                named_at += 1;
                if name.as_str() < from {
                    continue;
                }
                match stream_info(batch, name).await? {
                    Some(info) => found.push(info),
                    None => {
                        return Ok(logs_error(
                            "ResourceNotFoundException",
                            format!("The specified log stream does not exist: {name}"),
                        ));
                    }
                }
            }
            found
        } else {
            let mut found = Vec::new();
            // The token's own stream first (if it is still there); the listing goes on
            // after it.
            if let Some(resumed) = resume.as_ref().filter(|_| listing_token.is_none()) {
                found.extend(stream_info(batch, &resumed.stream).await?);
                listing_token = Some(format!("n/{}", resumed.stream));
            }
            let page = batch
                .log_streams(StreamQuery {
                    prefix,
                    order: StreamOrder::Name,
                    descending: false,
                    token: listing_token.as_deref(),
                    limit: 50,
                })
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) if e.is_client_error() => return Ok(invalid(e.to_string())),
                Err(e) => return Err(e.into()),
            };
            found.extend(page.streams);
            listing_token = page.next_token.or_else(|| Some("end".into()));
            found
        };
        if candidates.is_empty() {
            break;
        }
        for stream in candidates {
            let allowed = may_read(caller, batch, "logs:FilterLogEvents", &stream);
            if !allowed {
                if named.is_some() {
                    caller
                        .authorize("logs:FilterLogEvents", &[&stream_arn(batch, &stream.name)])?;
                }
                continue;
            }
            if streams_seen >= SCAN_STREAMS || scanned >= SCAN_EVENTS {
                return Ok(answer(events, Some(format!("0/{}", stream.name))));
            }
            streams_seen += 1;
            let bounds = batch
                .log_bounds(&stream.name, request.start_time, request.end_time)
                .await?;
            let mut at = bounds.window.start;
            if let Some(resumed) = resume.as_ref().filter(|t| t.stream == stream.name) {
                at = at.max(resumed.index);
            }
            while at < bounds.window.end {
                if scanned >= SCAN_EVENTS {
                    return Ok(answer(events, Some(format!("{at}/{}", stream.name))));
                }
                let to = bounds.window.end.min(at + READ_BATCH);
                let read = batch.log_range(&stream.name, at..to).await?;
                if read.is_empty() {
                    break;
                }
                for (index, event) in (at..).zip(read.iter()) {
                    scanned += 1;
                    if !pattern.matches(&event.message) {
                        continue;
                    }
                    if events.len() == limit {
                        return Ok(answer(events, Some(format!("{index}/{}", stream.name))));
                    }
                    events.push(json!({
                        "logStreamName": stream.name,
                        "timestamp": event.timestamp,
                        "message": event.message,
                        "ingestionTime": event.ingestion_time,
                        "eventId": format!("{}/{index}", stream.name),
                    }));
                }
                at += read.len();
            }
        }
        if named.is_none() && listing_token.as_deref() == Some("end") {
            break;
        }
    }
    Ok(answer(events, None))
}

fn answer(events: Vec<Value>, next: Option<String>) -> Response {
    let mut answer = json!({ "events": events, "searchedLogStreams": [] });
    if let Some(next) = next {
        answer["nextToken"] = json!(next);
    }
    Json(answer).into_response()
}

/// The stream named `name`, if an attempt wrote it.
async fn stream_info(batch: &Batch, name: &str) -> Result<Option<LogStreamInfo>, ApiError> {
    let page = batch
        .log_streams(StreamQuery {
            prefix: name,
            order: StreamOrder::Name,
            descending: false,
            token: None,
            limit: 1,
        })
        .await?;
    Ok(page.streams.into_iter().find(|s| s.name == name))
}

/// CloudWatch's filter pattern for unstructured events: terms an event must contain (all
/// of them), `?term`s of which it must contain one, `-term`s it must not; a term is a word
/// or a `"quoted phrase"`, matched case-sensitively as a substring. An empty pattern
/// matches every event. JSON (`{ $.x = … }`) and space-delimited (`[a, b]`) patterns are
/// refused, not guessed at.
#[derive(Debug, Default, PartialEq, Eq)]
struct FilterPattern {
    all: Vec<String>,
    any: Vec<String>,
    none: Vec<String>,
}

impl FilterPattern {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('{') || text.starts_with('[') {
            return Err(format!(
                "filterPattern {text}: JSON and space-delimited patterns are not supported; use terms, \
                 \"quoted phrases\", ?either and -not"
            ));
        }
        let mut pattern = FilterPattern::default();
        let mut rest = text;
        loop {
            rest = rest.trim_start();
            let Some(first) = rest.chars().next() else {
                break;
            };
            let (kind, after) = match first {
                '?' => (1, &rest[1..]),
                '-' => (2, &rest[1..]),
                _ => (0, rest),
            };
            let (term, left) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"').ok_or_else(|| {
                    format!("filterPattern {text}: a quoted phrase is not closed")
                })?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if term.is_empty() {
                return Err(format!(
                    "filterPattern {text}: {first:?} must be followed by a term"
                ));
            }
            let list = match kind {
                0 => &mut pattern.all,
                1 => &mut pattern.any,
                _ => &mut pattern.none,
            };
            list.push(term.to_string());
            rest = left;
        }
        Ok(pattern)
    }

    fn matches(&self, message: &str) -> bool {
        self.all.iter().all(|t| message.contains(t.as_str()))
            && (self.any.is_empty() || self.any.iter().any(|t| message.contains(t.as_str())))
            && !self.none.iter().any(|t| message.contains(t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_patterns_match_as_cloudwatch_documents_them() {
        let matches =
            |pattern: &str, message: &str| FilterPattern::parse(pattern).unwrap().matches(message);
        assert!(matches("", "anything"));
        assert!(matches("ERROR", "an ERROR here"));
        assert!(!matches("ERROR", "an error here"), "case-sensitive");
        assert!(matches("ERROR disk", "ERROR: disk full"));
        assert!(!matches("ERROR disk", "ERROR: memory"));
        assert!(matches("?ERROR ?WARN", "WARN: low"));
        assert!(!matches("?ERROR ?WARN", "INFO: fine"));
        assert!(matches("ERROR -retrying", "ERROR: gave up"));
        assert!(!matches("ERROR -retrying", "ERROR: retrying"));
        assert!(matches("\"disk full\"", "ERROR: disk full"));
        assert!(!matches("\"disk full\"", "full disk"));
    }

    #[test]
    fn patterns_we_do_not_read_are_refused_with_what_to_use() {
        for pattern in [
            "{ $.level = \"error\" }",
            "[ip, user]",
            "\"open",
            "ERROR ?",
            "-",
        ] {
            let error = FilterPattern::parse(pattern).unwrap_err();
            assert!(error.contains(pattern.trim()), "{pattern:?}: {error}");
        }
    }

    #[test]
    fn search_tokens_are_an_index_and_a_stream() {
        let token = SearchToken::parse("12/hello/default/abc-1").unwrap();
        assert_eq!(
            (token.index, token.stream.as_str()),
            (12, "hello/default/abc-1")
        );
        for bad in ["", "12", "x/a", "012/a", "-1/a", "1/"] {
            assert!(SearchToken::parse(bad).is_err(), "{bad:?}");
        }
    }
}
