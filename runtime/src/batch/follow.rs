//! Following a job's output as it is written: one attempt's lines, or every attempt's in turn
//! until the job ends, for `GET /v1/jobs/{id}/logs?follow=true` and for embedders.

use std::time::Duration;

use super::{Batch, BatchError};
use crate::logs::LogEvent;
use crate::model::JobStatus;
use crate::model::arn::{ResourceKind, stored_name};

/// How long a follower waiting for an attempt to start sleeps before looking again even when
/// nothing said jobs moved: a safety net, not the way starts are noticed.
const START_RECHECK: Duration = Duration::from_secs(1);

/// Reads a job's log as it grows. Made by [`Batch::follow_job`].
pub struct LogFollower {
    batch: Batch,
    job_id: String,
    attempt: usize,
    /// Follow only `attempt`, not the ones after it.
    only: bool,
    /// Events of `attempt` already handed out.
    from: usize,
}

/// Where a job stands with one of its attempts.
pub(super) enum AttemptState {
    Started { stream: String },
    NotStarted { job_over: bool },
}

impl Batch {
    /// A follower of job `job_id`'s output: of attempt `attempt` (from 1) only, or, when `None`,
    /// of every attempt in turn from the first until the job is SUCCEEDED or FAILED. (Starting
    /// from the latest attempt instead would race with a job that retries before the follower
    /// looks, and skip the attempts that explain why.)
    pub fn follow_job(
        &self,
        job_id: &str,
        attempt: Option<usize>,
    ) -> Result<LogFollower, BatchError> {
        if attempt == Some(0) {
            return Err(BatchError::invalid(
                "attempt",
                "attempts are counted from 1",
            ));
        }
        if !self.shared.lock().jobs.contains_key(job_id) {
            return Err(BatchError::NotFound {
                what: "job",
                name: job_id.to_string(),
            });
        }
        Ok(LogFollower {
            batch: self.clone(),
            job_id: job_id.to_string(),
            attempt: attempt.unwrap_or(1),
            only: attempt.is_some(),
            from: 0,
        })
    }

    /// Where job `job_id` stands with attempt `attempt` (from 1; its latest started when
    /// `None`); `None` for an unknown job. Shared by followers and [`Batch::log_stream`].
    pub(super) fn attempt_state(
        &self,
        job_id: &str,
        attempt: Option<usize>,
    ) -> Option<AttemptState> {
        let state = self.shared.lock();
        let job = state.jobs.get(job_id)?;
        let running = matches!(job.status, JobStatus::Starting | JobStatus::Running);
        let started = job.attempts.len() + usize::from(running);
        let attempt = attempt.unwrap_or(started);
        if attempt == 0 || attempt > started {
            return Some(AttemptState::NotStarted {
                job_over: job.status.is_terminal(),
            });
        }
        let definition = stored_name(ResourceKind::JobDefinition, &job.submission.job_definition)
            .rsplit_once(':')?
            .0;
        Some(AttemptState::Started {
            stream: crate::logs::stream_name(definition, job_id, attempt),
        })
    }
}

impl LogFollower {
    /// The next events, waiting until there are some; `None` once the followed attempt (or,
    /// following the whole job, the job) has ended and everything it wrote was returned. An
    /// attempt that never starts (the job was cancelled, or failed before) ends the log.
    pub async fn next(&mut self) -> Result<Option<Vec<LogEvent>>, BatchError> {
        loop {
            // Registered before looking, so a start between the look and the wait is not missed.
            let moved = self.batch.shared.jobs_moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            let state = self
                .batch
                .attempt_state(&self.job_id, Some(self.attempt))
                .ok_or_else(|| BatchError::NotFound {
                    what: "job",
                    name: self.job_id.clone(),
                })?;
            match state {
                AttemptState::NotStarted { job_over: true } => return Ok(None),
                // A stopping service starts nothing more: the log is over for now.
                AttemptState::NotStarted { .. }
                    if self
                        .batch
                        .shared
                        .stopping
                        .load(std::sync::atomic::Ordering::SeqCst) =>
                {
                    return Ok(None);
                }
                AttemptState::NotStarted { job_over: false } => {
                    let _ = tokio::time::timeout(START_RECHECK, moved).await;
                }
                AttemptState::Started { stream } => {
                    let (events, more) = self.batch.follow_log(&stream, self.from).await?;
                    self.from += events.len();
                    if !events.is_empty() {
                        return Ok(Some(events));
                    }
                    if !more {
                        if self.only {
                            return Ok(None);
                        }
                        self.attempt += 1;
                        self.from = 0;
                    }
                }
            }
        }
    }
}
