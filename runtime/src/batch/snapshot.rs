//! GetJobQueueSnapshot: the jobs at the front of a queue in the order they will be dispatched,
//! and how much of the queue's capacity each share holds.

use crate::model::EpochMillis;
use crate::model::arn::ResourceKind;

use super::{Batch, BatchError, now};

/// Most jobs a snapshot lists (AWS's number).
pub(crate) const FRONT_OF_QUEUE: usize = 100;

/// What GetJobQueueSnapshot reports of a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSnapshot {
    /// The first RUNNABLE jobs (at most 100), in the order they will be dispatched.
    pub front_of_queue: Vec<FrontOfQueueJob>,
    /// When the snapshot was taken.
    pub last_updated_at: EpochMillis,
    /// vCPUs the queue's jobs hold now.
    pub vcpus_in_use: f64,
    /// Shares active now (with jobs waiting or running, or within their decay window); 0 on a
    /// FIFO queue.
    pub active_shares: u64,
    /// Each share with jobs waiting or running or usage not yet decayed, most vCPUs first;
    /// empty on a FIFO queue.
    pub shares: Vec<ShareUsage>,
}

/// A job at the front of a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontOfQueueJob {
    /// Its ARN.
    pub job_arn: String,
    /// When it took its place in the line (became RUNNABLE).
    pub earliest_time_at_position: EpochMillis,
}

/// One share of a fair-share queue.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareUsage {
    /// The share identifier.
    pub share_identifier: String,
    /// Its weight factor (lower gets more).
    pub weight_factor: f64,
    /// vCPUs its jobs hold now.
    pub vcpus_in_use: f64,
    /// Its usage: vCPU-seconds of its attempts, decayed over the policy's window.
    pub usage_vcpu_seconds: f64,
    /// Its jobs waiting in RUNNABLE.
    pub runnable_jobs: u64,
}

/// What the scheduler has done since the service opened: for benchmarks, and for operators
/// who want to know what one placement decision costs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SchedulerStats {
    /// Scheduling passes run.
    pub passes: u64,
    /// Jobs placed (attempts started).
    pub placements: u64,
    /// Time spent choosing and placing, under the state lock, over all passes.
    pub placing: std::time::Duration,
}

impl Batch {
    /// What the scheduler has done so far.
    pub fn scheduler_stats(&self) -> SchedulerStats {
        self.shared.lock().scheduling
    }

    /// GetJobQueueSnapshot of queue `queue` (a name or an ARN).
    pub fn job_queue_snapshot(&self, queue: &str) -> Result<QueueSnapshot, BatchError> {
        let config = &self.shared.config;
        let name = config.resource_name(ResourceKind::JobQueue, "jobQueue", queue)?;
        let now = now();
        let mut state = self.shared.lock();
        let state = &mut *state;
        let slot = state
            .queues
            .get_mut(name)
            .ok_or_else(|| BatchError::NotFound {
                what: "job queue",
                name: queue.to_string(),
            })?;
        let jobs = &state.jobs;
        Ok(slot.line.snapshot(
            |id| jobs.get(id).map(|j| j.to_job_arn()),
            now,
            FRONT_OF_QUEUE,
        ))
    }
}
