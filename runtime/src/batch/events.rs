//! Job state change events: every move of a job to a new status (AWS Batch's "Batch Job State
//! Change", which is not sent for the submission itself), numbered by a durable sequence that
//! only grows, stored in the same transaction as the change, and read back by sequence.
//!
//! An event is noted where the state counts a job's status ([`State::count_status`]), so no
//! transition can happen and not be noted, and it is written by the records of the change
//! that made it. It is read back from the store only, which holds nothing uncommitted: a
//! reader never sees an event a crash could take back, and since sequences are given in the
//! order of the store's writes, what it sees of them has no gap. A stored event is small (the
//! job's id, name, queue, status and reason, and the time); the job as DescribeJobs shows it is
//! looked up when the event is read. Events are kept for [`BatchConfig::event_retention`].

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::state::State;
use super::{Batch, BatchConfig, BatchError, now};
use crate::model::arn::{ResourceKind, stored_name};
use crate::model::{EpochMillis, JobStatus};
use crate::store::{Record, Table};

/// Most events one [`Batch::job_events`] call returns.
pub const MAX_EVENTS_PER_READ: usize = 1_000;

/// How far apart (ms) the marks retention cuts by are: events are kept up to this much longer
/// than their retention, and the marks of a week of steady work take about a MiB.
const MARK_EVERY: EpochMillis = 10_000;

/// A job's move to a new status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    /// Its place in the service's sequence of events, from 1; never reused.
    pub sequence: u64,
    /// When the job moved (epoch ms).
    pub time: EpochMillis,
    /// The job.
    pub job_id: String,
    /// Its name.
    pub job_name: String,
    /// Its queue's name.
    pub job_queue: String,
    /// The status it moved to.
    pub status: JobStatus,
    /// Why, when the job says.
    pub status_reason: Option<String>,
}

/// An event as stored: short member names, since there are several per job.
#[derive(Serialize, Deserialize)]
struct StoredEvent {
    t: EpochMillis,
    j: String,
    n: String,
    q: String,
    s: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
}

fn event_key(sequence: u64) -> String {
    format!("{sequence:020}")
}

/// The events not yet written, the next sequence, and where old ones may be cut.
pub(crate) struct EventLog {
    /// The sequence the next event gets.
    pub(crate) next: u64,
    /// The first sequence still stored (or about to be).
    first: u64,
    pending: Vec<JobEvent>,
    /// Off while recovery rebuilds the state from the store: loading a job is not a move.
    pub(crate) recording: bool,
    /// (a time, the next sequence then): every event before that sequence happened no later
    /// than that time. One mark per second or so; what retention cuts by.
    marks: VecDeque<(EpochMillis, u64)>,
    /// Sequences whose events are to be deleted (start included, end excluded).
    removed: Option<(u64, u64)>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            next: 1,
            first: 1,
            pending: Vec::new(),
            recording: true,
            marks: VecDeque::new(),
            removed: None,
        }
    }
}

impl EventLog {
    /// Starts numbering after what the store holds (`first` to `next - 1`), as recovery
    /// found it at `now`: those events are cut no sooner than `now` plus the retention.
    pub(crate) fn resume(&mut self, first: u64, next: u64, now: EpochMillis) {
        self.first = first;
        self.next = next;
        self.marks.push_back((now, next));
    }

    /// The store records of the events noted since the last call, in sequence order, and of
    /// the old ones cut.
    pub(crate) fn take_records(&mut self, records: &mut Vec<Record>) {
        if let Some((start, end)) = self.removed.take() {
            records.push(Record::DeleteRange {
                table: Table::JobEvents,
                start: event_key(start),
                end: event_key(end),
            });
        }
        for event in self.pending.drain(..) {
            records.push(Record::put(
                Table::JobEvents,
                event_key(event.sequence),
                &StoredEvent {
                    t: event.time,
                    j: event.job_id,
                    n: event.job_name,
                    q: event.job_queue,
                    s: event.status,
                    r: event.status_reason,
                },
            ));
        }
    }

    /// Gives `event` the next sequence and keeps it to be written.
    fn push(&mut self, mut event: JobEvent) {
        event.sequence = self.next;
        self.next += 1;
        if self
            .marks
            .back()
            .is_none_or(|&(at, _)| event.time >= at + MARK_EVERY)
        {
            self.marks.push_back((event.time, event.sequence));
        }
        self.pending.push(event);
    }

    /// Cuts the events that happened before `due` (as far as the marks can tell), at `now`.
    fn expire(&mut self, due: EpochMillis, now: EpochMillis) {
        // Every event so far happened by now: the last of a burst is cut in its turn even if
        // no later event comes to mark it.
        if self.marks.back().is_none_or(|&(_, next)| next < self.next) {
            self.marks.push_back((now, self.next));
        }
        let mut until = self.first;
        while let Some(&(time, next)) = self.marks.front() {
            if time >= due {
                break;
            }
            until = until.max(next);
            self.marks.pop_front();
        }
        if until > self.first {
            let start = self.removed.map_or(self.first, |(start, _)| start);
            self.removed = Some((start, until));
            self.first = until;
        }
    }
}

impl State {
    /// Notes that job `id` moved from `was` (`None`: it was not counted yet, so it is new)
    /// to its status, unless it is new and merely SUBMITTED (AWS sends no event for that).
    pub(crate) fn note_event(&mut self, id: &str, was: Option<JobStatus>) {
        if !self.events.recording {
            return;
        }
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        if was.is_none() && job.status == JobStatus::Submitted {
            return;
        }
        let time = now();
        let event = JobEvent {
            sequence: 0,
            time,
            job_id: id.to_string(),
            job_name: job.submission.job_name.to_string(),
            job_queue: stored_name(ResourceKind::JobQueue, &job.submission.job_queue).to_string(),
            status: job.status,
            status_reason: job.status_reason.clone(),
        };
        // A local placement (STARTING) is not written on its own: the start that follows it
        // is. The job did pass through STARTING, so it gets that event too, with the start's.
        let placed_unseen = job.status == JobStatus::Running
            && matches!(
                was,
                Some(JobStatus::Submitted | JobStatus::Pending | JobStatus::Runnable)
            );
        if placed_unseen {
            self.events.push(JobEvent {
                status: JobStatus::Starting,
                status_reason: None,
                ..event.clone()
            });
        }
        self.events.push(event);
    }

    /// Cuts the events older than `due` (epoch ms).
    pub(crate) fn expire_events(&mut self, due: EpochMillis, now: EpochMillis) {
        self.events.expire(due, now);
    }
}

impl BatchConfig {
    /// How long events are kept: [`BatchConfig::event_retention`], or as long as jobs.
    pub(crate) fn events_kept(&self) -> std::time::Duration {
        self.event_retention.unwrap_or(self.job_retention)
    }
}

/// The first and next sequence of the events a data dir holds. Blocking.
pub(crate) fn stored_range(
    store: &crate::store::Store,
) -> Result<(u64, u64), crate::store::StoreError> {
    let first: Vec<(String, StoredEvent)> = store.load_from(Table::JobEvents, "", "", 1)?;
    let last: Option<(String, StoredEvent)> = store.load_last(Table::JobEvents, "0")?;
    let sequence = |key: &str| key.parse::<u64>().ok();
    let next = last
        .and_then(|(key, _)| sequence(&key))
        .map_or(1, |s| s + 1);
    let first = first
        .first()
        .and_then(|(key, _)| sequence(key))
        .unwrap_or(next);
    Ok((first, next))
}

impl Batch {
    /// Up to `most` (at most [`MAX_EVENTS_PER_READ`]) committed events after sequence `after`,
    /// in sequence order. Fewer than asked means none more is committed yet. Events cut by
    /// retention are not there: the first returned may be well after `after + 1`.
    pub async fn job_events(&self, after: u64, most: usize) -> Result<Vec<JobEvent>, BatchError> {
        let most = most.clamp(1, MAX_EVENTS_PER_READ);
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let start = event_key(after.saturating_add(1));
            let stored: Vec<(String, StoredEvent)> =
                shared.store.load_from(Table::JobEvents, "", &start, most)?;
            Ok(stored
                .into_iter()
                .filter_map(|(key, e)| {
                    Some(JobEvent {
                        sequence: key.parse().ok()?,
                        time: e.t,
                        job_id: e.j,
                        job_name: e.n,
                        job_queue: e.q,
                        status: e.s,
                        status_reason: e.r,
                    })
                })
                .collect())
        })
        .await
        .map_err(|e| BatchError::Store(crate::store::StoreError::Read(format!("events: {e}"))))?
    }

    /// The sequence of the last event noted so far (0: none yet); it may not be committed.
    pub fn last_event_sequence(&self) -> u64 {
        self.shared.lock().events.next - 1
    }

    /// How far commits have got: a point to wait past with [`Batch::committed_past`]. Read
    /// it before [`Batch::job_events`], and an event committed after the read is either in
    /// what that call returns or makes the wait return at once.
    pub fn commit_point(&self) -> u64 {
        self.shared.store.committed_through()
    }

    /// Resolves once more than `point` is committed (perhaps events), with the new point;
    /// `None` once the service's store has failed or closed.
    pub async fn committed_past(&self, point: u64) -> Option<u64> {
        self.shared.store.committed_past(point).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The range of sequences `log` deletes in its next records, if any.
    fn cut(log: &mut EventLog) -> Option<(u64, u64)> {
        let mut records = Vec::new();
        log.take_records(&mut records);
        match &records[..] {
            [] => None,
            [Record::DeleteRange { start, end, .. }] => {
                Some((start.parse().unwrap(), end.parse().unwrap()))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn old_events_are_cut_by_their_marks_and_never_past_the_last_one_due() {
        let mut log = EventLog::default();
        log.resume(1, 11, 1_000);
        log.marks.push_back((5_000, 20));
        log.marks.push_back((9_000, 30));
        log.next = 30;
        log.expire(4_000, 4_000);
        assert_eq!(cut(&mut log), Some((1, 11)));
        log.expire(9_500, 9_500);
        assert_eq!(cut(&mut log), Some((11, 30)));
        log.next = 35;
        log.expire(9_600, 10_000);
        assert_eq!(cut(&mut log), None, "events 30 to 34 happened after 9,500");
        log.expire(10_001, 20_000);
        assert_eq!(cut(&mut log), Some((30, 35)));
    }
}
