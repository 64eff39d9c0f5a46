//! The log streams there are, for CloudWatch Logs' DescribeLogStreams and FilterLogEvents: an
//! index of every job that has started an attempt, by the stem its streams' names share
//! (`<definition>/default/<jobId>`, the attempt's `-N` after it) and by when it last changed,
//! kept by the state as jobs move ([`State::index_streams`]). A job is one entry however many
//! attempts it ran, so the index grows with jobs that ran, not with the lines they wrote, and a
//! queued job costs it nothing. A page is read from it under the state's lock, at most
//! [`SCAN`] entries of it, and the streams' first and last events are then read from the store
//! off the lock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::job_slot::JobSlot;
use super::state::State;
use super::{Batch, BatchError};
use crate::model::arn::{ResourceKind, stored_name};
use crate::model::{EpochMillis, JobStatus};
use crate::store::StoreError;

/// Most index entries one page looks at: a prefix that matches few of many streams answers a
/// short page (and a token to go on) rather than walking the whole index under the lock.
const SCAN: usize = 10_000;

/// Every job with a started attempt, by stem and by (last change, stem).
#[derive(Default)]
pub(crate) struct StreamIndex {
    by_name: BTreeMap<Arc<str>, EpochMillis>,
    by_time: BTreeSet<(EpochMillis, Arc<str>)>,
}

impl StreamIndex {
    fn note(&mut self, stem: &str, time: EpochMillis) {
        match self.by_name.get_mut(stem) {
            Some(at) if *at == time => {}
            Some(at) => {
                let stem = self
                    .by_time
                    .take(&(*at, Arc::from(stem)))
                    .map_or_else(|| Arc::from(stem), |(_, stem)| stem);
                *at = time;
                self.by_time.insert((time, stem));
            }
            None => {
                let stem: Arc<str> = Arc::from(stem);
                self.by_name.insert(stem.clone(), time);
                self.by_time.insert((time, stem));
            }
        }
    }

    fn remove(&mut self, stem: &str) {
        if let Some(at) = self.by_name.remove(stem) {
            self.by_time.remove(&(at, Arc::from(stem)));
        }
    }
}

/// The stem of a job's streams, if it has any (an array's parent runs nothing itself).
fn stem(job: &JobSlot) -> Option<String> {
    if job.is_array_parent() || started_attempts(job) == 0 {
        return None;
    }
    let definition = stored_name(ResourceKind::JobDefinition, &job.submission.job_definition)
        .rsplit_once(':')?
        .0;
    Some(format!("{definition}/default/{}", job.job_id))
}

fn started_attempts(job: &JobSlot) -> usize {
    let running = matches!(job.status, JobStatus::Starting | JobStatus::Running);
    job.attempts.len() + usize::from(running)
}

/// When a job's streams last changed, as far as the state knows without reading them: its
/// latest attempt's end, or its start.
fn last_change(job: &JobSlot) -> EpochMillis {
    job.stopped_at
        .or(job.attempts.last().and_then(|a| a.stopped_at))
        .max(job.started_at)
        .unwrap_or(job.submission.created_at)
}

impl State {
    /// Keeps job `id`'s entry in the stream index true after it moved from `was`. Called with
    /// every status change; a start that goes on to RUNNING changes nothing the index holds,
    /// so the common path builds no name.
    pub(crate) fn index_streams(&mut self, id: &str, was: Option<JobStatus>) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        if was == Some(JobStatus::Starting) && job.status == JobStatus::Running {
            return;
        }
        if let Some(stem) = stem(job) {
            let time = last_change(job);
            self.streams.note(&stem, time);
        }
    }

    /// Takes job `job`'s streams out of the index (it, or its logs, are being removed).
    pub(crate) fn unindex_streams(streams: &mut StreamIndex, job: &JobSlot) {
        if let Some(stem) = stem(job) {
            streams.remove(&stem);
        }
    }

    /// Takes the streams of job `id` and, for an array's parent, its children out of the
    /// index: their logs are being removed.
    pub(crate) fn forget_streams(&mut self, id: &str) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        Self::unindex_streams(&mut self.streams, job);
        for index in 0..job.array_properties.and_then(|a| a.size).unwrap_or(0) {
            if let Some(child) = self.jobs.get(format!("{id}:{index}").as_str()) {
                Self::unindex_streams(&mut self.streams, child);
            }
        }
    }
}

/// The order DescribeLogStreams lists streams in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOrder {
    /// By name (CloudWatch's `LogStreamName`, the default).
    Name,
    /// By when the attempt last changed (its end, or its start while it runs): CloudWatch's
    /// `LastEventTime`, which CloudWatch too updates only eventually.
    LastEventTime,
}

/// What DescribeLogStreams (or FilterLogEvents, which walks the same streams) asks for.
#[derive(Debug, Clone)]
pub struct StreamQuery<'a> {
    /// Only streams whose name starts with this (empty: all).
    pub prefix: &'a str,
    /// The order of the streams.
    pub order: StreamOrder,
    /// Last first.
    pub descending: bool,
    /// A token a previous page returned, to go on after it.
    pub token: Option<&'a str>,
    /// Most streams on the page.
    pub limit: usize,
}

/// A log stream, as DescribeLogStreams reports it, with what a policy may name it by.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStreamInfo {
    /// `<definition>/default/<jobId>-<attempt>`.
    pub name: String,
    /// The job whose attempt wrote it.
    pub job_id: String,
    /// From 1.
    pub attempt: usize,
    /// The job's ARN.
    pub job_arn: String,
    /// Its queue's ARN.
    pub job_queue: String,
    /// When the attempt started (epoch ms), or the job was created if it has not yet.
    pub creation_time: EpochMillis,
    /// When its first event was written (epoch ms); `None` for a stream with no events, as
    /// are the two after it.
    pub first_event: Option<EpochMillis>,
    /// When its last event was written.
    pub last_event: Option<EpochMillis>,
    /// When its last event was stored.
    pub last_ingestion: Option<EpochMillis>,
}

/// One page of streams, and the token of the next if there may be more.
#[derive(Debug, Clone)]
pub struct StreamPage {
    /// The streams, in the order asked.
    pub streams: Vec<LogStreamInfo>,
    /// Where the next page starts; `None` when this was the last.
    pub next_token: Option<String>,
}

/// Where a page starts: after the stream a previous page ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// `n/<name>`.
    Name(String),
    /// `t/<last change>/<attempt>/<stem>`.
    Time(EpochMillis, usize, String),
}

impl Position {
    fn token(&self) -> String {
        match self {
            Position::Name(name) => format!("n/{name}"),
            Position::Time(at, attempt, stem) => format!("t/{at}/{attempt}/{stem}"),
        }
    }

    /// A token as [`Position::token`] writes them, for the order asked (a token is the
    /// caller's input: anything else is refused). Any name is a place to go on from, so
    /// the name in one needs no check beyond its shape.
    fn parse(text: &str, order: StreamOrder) -> Result<Self, String> {
        let invalid = || format!("The specified nextToken is invalid: {text:?}");
        match (text.split_once('/').ok_or_else(invalid)?, order) {
            (("n", name), StreamOrder::Name) => Ok(Position::Name(name.to_string())),
            (("t", rest), StreamOrder::LastEventTime) => {
                let (at, rest) = rest.split_once('/').ok_or_else(invalid)?;
                let (attempt, stem) = rest.split_once('/').ok_or_else(invalid)?;
                let at = at.parse().map_err(|_| invalid())?;
                let attempt = attempt.parse().map_err(|_| invalid())?;
                Ok(Position::Time(at, attempt, stem.to_string()))
            }
            _ => Err(invalid()),
        }
    }
}

/// A stream chosen for a page, before its events are looked at.
struct Chosen {
    info: LogStreamInfo,
    log_key: String,
}

fn chosen(state: &State, stem: &str, attempt: usize) -> Option<Chosen> {
    let job_id = stem.rsplit_once('/')?.1;
    let job = state.jobs.get(job_id)?;
    let creation_time = job
        .attempts
        .get(attempt - 1)
        .and_then(|a| a.started_at)
        .or(job.started_at)
        .unwrap_or(job.submission.created_at);
    Some(Chosen {
        info: LogStreamInfo {
            name: format!("{stem}-{attempt}"),
            job_id: job_id.to_string(),
            attempt,
            job_arn: job.to_job_arn(),
            job_queue: job.submission.job_queue.to_string(),
            creation_time,
            first_event: None,
            last_event: None,
            last_ingestion: None,
        },
        log_key: crate::logs::log_key(job.sequence, attempt),
    })
}

/// How many streams the job a stem names has.
fn stream_count(state: &State, stem: &str) -> usize {
    stem.rsplit_once('/')
        .and_then(|(_, id)| state.jobs.get(id))
        .map_or(0, |job| started_attempts(job))
}

/// The attempts of the job a stem names whose streams exist, in name order (`-1`, `-10`,
/// `-2`, … as CloudWatch sorts names).
fn attempts_by_name(state: &State, stem: &str) -> Vec<(String, usize)> {
    let count = stream_count(state, stem);
    let mut names: Vec<(String, usize)> = (1..=count).map(|a| (format!("{stem}-{a}"), a)).collect();
    names.sort();
    names
}

/// The streams of a page, in order, and where the next page starts.
fn choose(
    state: &State,
    query: &StreamQuery<'_>,
) -> Result<(Vec<Chosen>, Option<Position>), String> {
    let after = query
        .token
        .map(|t| Position::parse(t, query.order))
        .transpose()?;
    match (query.order, after) {
        (StreamOrder::Name, Some(Position::Name(after))) => Ok(by_name(state, query, Some(&after))),
        (StreamOrder::Name, _) => Ok(by_name(state, query, None)),
        (StreamOrder::LastEventTime, Some(Position::Time(at, attempt, stem))) => Ok(by_time(
            state,
            query,
            Some((at, Arc::from(stem.as_str()), attempt)),
        )),
        (StreamOrder::LastEventTime, _) => Ok(by_time(state, query, None)),
    }
}

/// A page in name order, after (or, descending, before) the stream named `after`.
fn by_name(
    state: &State,
    query: &StreamQuery<'_>,
    after: Option<&str>,
) -> (Vec<Chosen>, Option<Position>) {
    let limit = query.limit.max(1);
    let mut page: Vec<Chosen> = Vec::new();
    // A stream's name is its stem and `-<attempt>`, so the stems whose streams may match are
    // those that start with the prefix and those the prefix runs past: the prefix cut at a
    // `-` of its last segment (job ids hold `-` too). Every one of them sorts at or after the
    // prefix cut at the first such `-`, and at or before the prefix followed by the largest
    // character.
    let segment = query.prefix.rfind('/').map_or(0, |at| at + 1);
    let floor = match query.prefix[segment..].find('-') {
        Some(at) => &query.prefix[..segment + at],
        None => query.prefix,
    };
    // The attempt's number is the last `-` and what follows.
    let after_stem = after.map(|n| n.rsplit_once('-').map_or(n, |(stem, _)| stem));
    let end = format!("{}\u{10ffff}", query.prefix);
    let (low, high) = match (after_stem, query.descending) {
        (Some(stem), false) => (stem.max(floor), end.as_str()),
        (Some(stem), true) => (floor, stem.min(end.as_str())),
        (None, _) => (floor, end.as_str()),
    };
    if low > high {
        return (page, None);
    }
    let range = state.streams.by_name.range::<str, _>((
        std::ops::Bound::Included(low),
        std::ops::Bound::Included(high),
    ));
    let stems: Box<dyn Iterator<Item = &Arc<str>>> = if query.descending {
        Box::new(range.rev().map(|(stem, _)| stem))
    } else {
        Box::new(range.map(|(stem, _)| stem))
    };
    for (scanned, stem) in stems.enumerate() {
        if **stem > *query.prefix && !stem.starts_with(query.prefix) {
            // Past every stem that starts with the prefix (ascending; descending starts below
            // them).
            if query.descending {
                continue;
            }
            break;
        }
        let mut names = attempts_by_name(state, stem);
        if query.descending {
            names.reverse();
        }
        for (name, attempt) in names {
            let beyond = after.is_none_or(|after| {
                if query.descending {
                    name.as_str() < after
                } else {
                    name.as_str() > after
                }
            });
            if !beyond || !name.starts_with(query.prefix) {
                continue;
            }
            if let Some(last) = page.last().filter(|_| page.len() == limit) {
                let position = Position::Name(last.info.name.clone());
                return (page, Some(position));
            }
            page.extend(chosen(state, stem, attempt));
        }
        if scanned + 1 >= SCAN {
            // Past every stream of this stem, whichever way the pages go.
            let past = if query.descending { "" } else { "\u{10ffff}" };
            return (page, Some(Position::Name(format!("{stem}-{past}"))));
        }
    }
    (page, None)
}

/// A page in last-change order, after (or, descending, before) attempt `.2` of the job whose
/// entry is `.0, .1`.
fn by_time(
    state: &State,
    query: &StreamQuery<'_>,
    after: Option<(EpochMillis, Arc<str>, usize)>,
) -> (Vec<Chosen>, Option<Position>) {
    let limit = query.limit.max(1);
    let mut page: Vec<Chosen> = Vec::new();
    let key = after.as_ref().map(|(at, stem, _)| (*at, stem.clone()));
    let index = &state.streams.by_time;
    let entries: Box<dyn Iterator<Item = &(EpochMillis, Arc<str>)>> = match (&key, query.descending)
    {
        (None, false) => Box::new(index.iter()),
        (None, true) => Box::new(index.iter().rev()),
        (Some(key), false) => Box::new(index.range(key..)),
        (Some(key), true) => Box::new(index.range(..=key).rev()),
    };
    let mut last: Option<Position> = None;
    for (scanned, (time, stem)) in entries.enumerate() {
        let count = stream_count(state, stem);
        let mut attempts: Vec<usize> = (1..=count).collect();
        if query.descending {
            attempts.reverse();
        }
        let seen = match &after {
            Some((at, s, attempt)) if at == time && s == stem => Some(*attempt),
            _ => None,
        };
        for attempt in attempts {
            let passed = seen.is_some_and(|seen| {
                if query.descending {
                    attempt >= seen
                } else {
                    attempt <= seen
                }
            });
            if passed {
                continue;
            }
            if page.len() == limit {
                return (page, last);
            }
            if let Some(stream) = chosen(state, stem, attempt) {
                page.push(stream);
                last = Some(Position::Time(*time, attempt, stem.to_string()));
            }
        }
        if scanned + 1 >= SCAN {
            let past = if query.descending { 0 } else { usize::MAX };
            return (page, Some(Position::Time(*time, past, stem.to_string())));
        }
    }
    (page, None)
}

impl Batch {
    /// A page of the log streams of `/aws/batch/job` (DescribeLogStreams), or a message for
    /// an InvalidParameterException if the token is not one this returned. Streams are chosen
    /// under the state's lock; their first and last events are read on the blocking pool.
    pub async fn log_streams(&self, query: StreamQuery<'_>) -> Result<StreamPage, BatchError> {
        let (chosen, next) = {
            let state = self.shared.lock();
            choose(&state, &query).map_err(|problem| crate::model::validate::ValidationError {
                field: "nextToken".into(),
                problem,
            })?
        };
        let shared = self.shared.clone();
        let streams = tokio::task::spawn_blocking(move || {
            chosen
                .into_iter()
                .map(|Chosen { mut info, log_key }| {
                    if let Some(span) = shared.logs.span(&log_key)? {
                        info.first_event = Some(span.first_event);
                        info.last_event = Some(span.last_event);
                        info.last_ingestion = Some(span.last_ingestion);
                    }
                    Ok(info)
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await
        .map_err(|e| StoreError::Read(e.to_string()))??;
        Ok(StreamPage {
            streams,
            next_token: next.map(|p| p.token()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_back_as_written_and_nothing_else_is() {
        for position in [
            Position::Name("hello/default/abc-1".into()),
            Position::Time(1_700_000_000_000, 3, "hello/default/abc:4".into()),
        ] {
            let order = match position {
                Position::Name(_) => StreamOrder::Name,
                Position::Time(..) => StreamOrder::LastEventTime,
            };
            assert_eq!(Position::parse(&position.token(), order), Ok(position));
        }
        for (token, order) in [
            ("", StreamOrder::Name),
            ("x/y", StreamOrder::Name),
            ("t/1/1/a", StreamOrder::Name),
            ("n/a", StreamOrder::LastEventTime),
            ("t/x/1/a", StreamOrder::LastEventTime),
            ("t/1/-1/a", StreamOrder::LastEventTime),
            ("t/1", StreamOrder::LastEventTime),
        ] {
            let error = Position::parse(token, order).unwrap_err();
            assert!(error.contains("nextToken is invalid"), "{token:?}: {error}");
        }
    }

    #[test]
    fn an_entry_moves_in_time_order_and_is_removed_from_both() {
        let mut index = StreamIndex::default();
        index.note("d/default/a", 5);
        index.note("d/default/b", 3);
        index.note("d/default/a", 9);
        let by_time: Vec<_> = index.by_time.iter().map(|(t, s)| (*t, &**s)).collect();
        assert_eq!(by_time, [(3, "d/default/b"), (9, "d/default/a")]);
        index.remove("d/default/a");
        assert_eq!(index.by_name.len(), 1);
        assert_eq!(index.by_time.len(), 1);
    }
}
