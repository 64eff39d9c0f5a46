//! Retention: finished jobs are kept for [`BatchConfig::job_retention`] after they end, their
//! logs for [`BatchConfig::log_retention`], then removed from memory and from the store, so a
//! service that runs jobs for ever holds a bounded number of them. A timer task (holding the
//! service weakly, as the scheduler does) removes what is due in passes of at most
//! [`BatchConfig::max_removals_per_pass`] jobs, each pass one [`Batch::change`], so the state
//! lock is held for one batch at a time and the removals are ordinary records (deletes).
//!
//! What is removed: a job that has ended and is not an array child, found through
//! `State::ended` (by stop time), and with an array parent all its children, which ended before
//! it. Unfinished jobs are never removed. A job still waiting on a removed one is not harmed: it
//! already counted that dependency as met (a failed one would have failed it), and recovery
//! counts a dependency it cannot find as met.

use std::time::Duration;

use super::state::State;
use super::{Batch, BatchConfig, BatchError, Shared, now};
use crate::model::EpochMillis;

/// The longest the task sleeps between passes, so that what ends is removed at most this
/// long after it is due.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// Starts the retention task; it ends once the service is gone or its store has closed.
pub(crate) fn start(shared: std::sync::Weak<Shared>) {
    tokio::spawn(async move {
        loop {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let batch = Batch { shared };
            let idle = match batch.expire(now()).await {
                Ok(Pass::More) => Duration::ZERO,
                Ok(Pass::Done { next_due }) => next_due.min(MAX_IDLE),
                // Storage has failed or closed: nothing can be removed by this process.
                Err(e @ BatchError::Store(_)) => {
                    tracing::debug!("retention stops: {e}");
                    return;
                }
                Err(e) => {
                    tracing::warn!("retention pass failed: {e}");
                    MAX_IDLE
                }
            };
            drop(batch);
            if idle.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(idle).await;
            }
        }
    });
}

/// A key of `State::ended`: (stoppedAt, sequence).
type EndedKey = (EpochMillis, u64);

/// What a pass left.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// More was due than one pass removes.
    More,
    /// Nothing more is due; the next thing is due in this long (at most an hour: later ends
    /// may come sooner).
    Done { next_due: Duration },
}

impl BatchConfig {
    /// How long logs are kept: [`BatchConfig::log_retention`], but never longer than the job.
    fn logs_kept(&self) -> Duration {
        self.log_retention
            .map_or(self.job_retention, |logs| logs.min(self.job_retention))
    }
}

impl Batch {
    /// One pass at `now` (epoch ms): removes the logs and jobs that are due, at most
    /// [`BatchConfig::max_removals_per_pass`] jobs' worth, through the one write path.
    pub(crate) async fn expire(&self, now: EpochMillis) -> Result<Pass, BatchError> {
        let config = &self.shared.config;
        let millis = |d: Duration| EpochMillis::try_from(d.as_millis()).unwrap_or(EpochMillis::MAX);
        let (jobs_kept, logs_kept) = (millis(config.job_retention), millis(config.logs_kept()));
        let budget = config.max_removals_per_pass.max(1);
        let events_due = now.saturating_sub(millis(config.events_kept()));
        self.change(|state| {
            state.expire_events(events_due, now);
            Ok(expire(
                state,
                now.saturating_sub(jobs_kept),
                now.saturating_sub(logs_kept),
                budget,
            )
            .unwrap_or_else(|| Pass::Done {
                next_due: next_due(state, now, jobs_kept, logs_kept),
            }))
        })
        .await
    }
}

/// Removes the logs of jobs that ended at or before `logs_due`, then the jobs that ended at or
/// before `jobs_due` (no later than `logs_due`), oldest first, about `budget` jobs of each (an
/// array counts its children; one is always taken, so a large array is not stuck).
/// `Some(Pass::More)` if a budget ran out before what is due.
fn expire(
    state: &mut State,
    jobs_due: EpochMillis,
    logs_due: EpochMillis,
    budget: usize,
) -> Option<Pass> {
    let (logs, more_logs) = take_due(state, state.logs_removed_before, logs_due, budget);
    let mut sequences = Vec::new();
    for (key, id) in logs {
        sequences.extend(family(state, &id));
        state.forget_streams(&id);
        state.logs_removed_before = (key.0, key.1 + 1);
    }
    // One call, so the consecutive sequences of a burst of jobs become one range delete.
    state.forget_logs(sequences);
    let (jobs, more_jobs) = take_due(state, (EpochMillis::MIN, 0), jobs_due, budget);
    for (key, id) in jobs {
        // Only once its logs are gone: a job is never removed and its logs left behind.
        if key >= state.logs_removed_before {
            break;
        }
        state.forget_job(&id);
    }
    (more_logs || more_jobs).then_some(Pass::More)
}

/// The entries of `State::ended` from `from` on that ended at or before `due`, as many as make
/// `budget` jobs (at least one); and whether more were due.
fn take_due(
    state: &State,
    from: EndedKey,
    due: EpochMillis,
    budget: usize,
) -> (Vec<(EndedKey, String)>, bool) {
    let mut taken = Vec::new();
    let mut spent = 0;
    for (key, id) in state.ended.range(from..) {
        if key.0 > due {
            return (taken, false);
        }
        if spent >= budget {
            return (taken, true);
        }
        spent += 1 + array_size(state, id);
        taken.push((*key, id.clone()));
    }
    (taken, false)
}

fn array_size(state: &State, id: &str) -> usize {
    state
        .jobs
        .get(id)
        .and_then(|j| j.array_properties?.size)
        .unwrap_or(0) as usize
}

/// The sequences of job `id` and, for an array parent, its children.
fn family(state: &State, id: &str) -> Vec<u64> {
    let Some(job) = state.jobs.get(id) else {
        return Vec::new();
    };
    let mut sequences = vec![job.sequence];
    for index in 0..array_size(state, id) {
        if let Some(child) = state.jobs.get(format!("{id}:{index}").as_str()) {
            sequences.push(child.sequence);
        }
    }
    sequences
}

/// How long until the next removal is due, capped at an hour.
fn next_due(state: &State, now: EpochMillis, jobs_kept: i64, logs_kept: i64) -> Duration {
    let logs = state
        .ended
        .range(state.logs_removed_before..)
        .next()
        .map(|((stopped, _), _)| stopped.saturating_add(logs_kept));
    let jobs = state
        .ended
        .keys()
        .next()
        .map(|(stopped, _)| stopped.saturating_add(jobs_kept));
    let due = match (logs, jobs) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Duration::from_secs(3600),
    };
    Duration::from_millis(
        u64::try_from(due.saturating_sub(now))
            .unwrap_or(0)
            .min(3_600_000),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Job;
    use crate::store::{Record, Table};

    /// Adds job `id` with `sequence`, in `status`, stopped at `stopped` if given, and returns
    /// the records of it (so it is indexed as the write path would).
    fn add(state: &mut State, id: &str, sequence: u64, status: &str, stopped: Option<i64>) {
        let job: Job = serde_json::from_value(json!({
            "jobId": id, "jobArn": id, "jobName": "j",
            "jobQueue": "arn:aws:batch:r:a:job-queue/q",
            "jobDefinition": "arn:aws:batch:r:a:job-definition/d:1",
            "status": status, "createdAt": 0, "sequence": sequence, "stoppedAt": stopped
        }))
        .unwrap();
        let job = crate::batch::job_slot::JobSlot::from_job(job, &mut state.names);
        state.jobs.insert(id.into(), Box::new(job));
        state.touch_job(id);
    }

    fn deletes(records: &[Record]) -> (Vec<String>, Vec<(String, String)>) {
        let (mut keys, mut ranges) = (Vec::new(), Vec::new());
        for record in records {
            match record {
                Record::Delete { table, key } => {
                    // An array child's own part is in its own table.
                    assert!(
                        matches!(table, Table::Jobs | Table::ArrayChildren),
                        "{table:?}"
                    );
                    keys.push(key.clone());
                }
                Record::DeleteRange { table, start, end } => {
                    assert_eq!(*table, Table::LogChunks);
                    ranges.push((start.clone(), end.clone()));
                }
                Record::Put { key, .. } => panic!("put {key}"),
            }
        }
        (keys, ranges)
    }

    #[test]
    fn a_pass_removes_at_most_its_budget_oldest_first_and_never_an_unfinished_job() {
        let mut state = State::empty();
        add(&mut state, "running", 1, "RUNNING", None);
        for n in 2..=7 {
            add(
                &mut state,
                &format!("j{n}"),
                n,
                "SUCCEEDED",
                Some(100 + n as i64),
            );
        }
        add(&mut state, "late", 8, "FAILED", Some(500));
        state.take_records();
        assert_eq!(state.ended.len(), 7, "every ended job is indexed");

        assert_eq!(expire(&mut state, 200, 200, 4), Some(Pass::More));
        let (keys, ranges) = deletes(&state.take_records());
        assert_eq!(
            keys,
            (2..=5).map(|n| format!("{n:020}")).collect::<Vec<_>>()
        );
        // Consecutive jobs' logs are one range: sequences 2 to 5.
        assert_eq!(ranges, [(format!("{:020}", 2), format!("{:020}", 6))]);

        assert_eq!(expire(&mut state, 200, 200, 4), None);
        let (keys, _) = deletes(&state.take_records());
        assert_eq!(keys, [format!("{:020}", 6), format!("{:020}", 7)]);
        let mut left: Vec<&str> = state.jobs.keys().map(|id| &**id).collect();
        left.sort();
        assert_eq!(left, ["late", "running"], "not due, and not finished");
        assert_eq!(
            next_due(&state, 200, 100, 100),
            Duration::from_millis(400),
            "late ended at 500, kept 100 ms"
        );
    }

    #[test]
    fn logs_go_before_their_jobs_and_an_array_with_its_children() {
        let mut state = State::empty();
        add(&mut state, "p", 1, "SUCCEEDED", Some(100));
        state.jobs.get_mut("p").unwrap().array_properties = Some(crate::model::ArrayJob {
            size: Some(2),
            index: None,
        });
        for index in 0..2u32 {
            let id = format!("p:{index}");
            add(&mut state, &id, 2 + u64::from(index), "SUCCEEDED", Some(90));
            state.jobs.get_mut(id.as_str()).unwrap().array_properties =
                Some(crate::model::ArrayJob {
                    size: None,
                    index: Some(index),
                });
        }
        state.take_records();
        assert_eq!(
            state.ended.len(),
            1,
            "children are not indexed: they go with the parent"
        );

        // Logs due, the jobs not yet.
        assert_eq!(expire(&mut state, 50, 150, 10), None);
        let (keys, ranges) = deletes(&state.take_records());
        assert!(keys.is_empty());
        assert_eq!(ranges, [(format!("{:020}", 1), format!("{:020}", 4))]);
        assert_eq!(state.jobs.len(), 3);

        assert_eq!(expire(&mut state, 150, 150, 10), None);
        let records = state.take_records();
        let tables: Vec<Table> = records
            .iter()
            .filter_map(|r| match r {
                Record::Delete { table, .. } => Some(*table),
                _ => None,
            })
            .collect();
        assert_eq!(
            tables,
            [Table::Jobs, Table::ArrayChildren, Table::ArrayChildren],
            "the parent's record and its children's own parts"
        );
        let (keys, ranges) = deletes(&records);
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert!(ranges.is_empty(), "the logs went already");
        assert!(state.jobs.is_empty() && state.ended.is_empty());
    }
}
