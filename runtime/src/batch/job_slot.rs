//! How the state holds a job: what is its own (status, attempts, times, an array child's index)
//! beside an `Arc` of what it was submitted as ([`Submission`]: name, queue, definition,
//! parameters, overrides, retries, timeout, tags, …). An array's parent and all its children
//! share one `Submission`, so a 10,000-child array of a 29 KB request holds the request once, in
//! memory and on disk (issue 14). [`JobSlot::to_job`] builds the [`Job`] DescribeJobs returns
//! from the two; [`StoredChild`] is a child's record in the store, which leaves out what it
//! shares with its parent.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{
    ArrayJob, Attempt, ContainerOverrides, EpochMillis, Job, JobDependency, JobStatus, JobTimeout,
    RemoteHolder, RetryStrategy,
};

/// What one SubmitJob asked for, as it is in force (the submit's retries and timeout, else the
/// definition's): the same for a job, or for an array's parent and each of its children.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Submission {
    /// The submitted job's ARN; an array child's is this and `:<index>`.
    pub(crate) job_arn: String,
    pub(crate) job_name: String,
    pub(crate) job_queue: String,
    pub(crate) job_definition: String,
    pub(crate) created_at: EpochMillis,
    /// What the submitted job waits for; what a child waits for follows from it
    /// (`jobs::child_dependencies`), so a child reports none of its own.
    pub(crate) depends_on: Vec<JobDependency>,
    pub(crate) parameters: BTreeMap<String, String>,
    pub(crate) container_overrides: Option<Box<ContainerOverrides>>,
    pub(crate) retry_strategy: Option<RetryStrategy>,
    pub(crate) timeout: Option<JobTimeout>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) propagate_tags: Option<bool>,
    pub(crate) submitted_by: Option<String>,
    /// The fair share it counts against (on a queue with a scheduling policy).
    pub(crate) share_identifier: Option<String>,
    /// Its order within its share, higher first.
    pub(crate) scheduling_priority: Option<i32>,
}

/// A job in the state: where it is in its life, and what it was submitted as.
#[derive(Debug, Clone)]
pub(crate) struct JobSlot {
    pub(crate) job_id: String,
    pub(crate) status: JobStatus,
    pub(crate) status_reason: Option<String>,
    pub(crate) started_at: Option<EpochMillis>,
    pub(crate) stopped_at: Option<EpochMillis>,
    pub(crate) attempts: Vec<Attempt>,
    /// Size for an array parent, index for a child.
    pub(crate) array_properties: Option<ArrayJob>,
    pub(crate) is_cancelled: bool,
    pub(crate) is_terminated: bool,
    /// Submission order across the service (FIFO dispatch, store keys).
    pub(crate) sequence: u64,
    /// Shared with the array's parent and the other children.
    pub(crate) submission: Arc<Submission>,
    /// The worker holding its current attempt (cluster mode); stored.
    pub(crate) remote: Option<Box<RemoteHolder>>,
    /// The status the state's counts have it in (`State::count_status`); not stored.
    pub(crate) counted: Option<JobStatus>,
}

impl JobSlot {
    /// A job that has not started, submitted as `submission`.
    pub(crate) fn new(job_id: String, sequence: u64, submission: Arc<Submission>) -> Self {
        Self {
            job_id,
            status: JobStatus::Submitted,
            status_reason: None,
            started_at: None,
            stopped_at: None,
            attempts: Vec::new(),
            array_properties: None,
            is_cancelled: false,
            is_terminated: false,
            sequence,
            submission,
            remote: None,
            counted: None,
        }
    }

    /// Splits a whole job (a stored parent or single job) into its own part and a submission of
    /// its own.
    pub(crate) fn from_job(job: Job) -> Self {
        let submission = Arc::new(Submission {
            job_arn: job.job_arn,
            job_name: job.job_name,
            job_queue: job.job_queue,
            job_definition: job.job_definition,
            created_at: job.created_at,
            depends_on: job.depends_on,
            parameters: job.parameters,
            container_overrides: job.container_overrides,
            retry_strategy: job.retry_strategy,
            timeout: job.timeout,
            tags: job.tags,
            propagate_tags: job.propagate_tags,
            submitted_by: job.submitted_by,
            share_identifier: job.share_identifier,
            scheduling_priority: job.scheduling_priority,
        });
        Self {
            job_id: job.job_id,
            status: job.status,
            status_reason: job.status_reason,
            started_at: job.started_at,
            stopped_at: job.stopped_at,
            attempts: job.attempts,
            array_properties: job.array_properties,
            is_cancelled: job.is_cancelled,
            is_terminated: job.is_terminated,
            sequence: job.sequence,
            submission,
            remote: job.remote.map(Box::new),
            counted: None,
        }
    }

    /// A child stored whole, as store format 2 wrote every child: its own part, and its parent's
    /// submission instead of its copy (which was the same: children were cloned from it).
    pub(crate) fn from_whole_child(child: Job, submission: Arc<Submission>) -> Self {
        Self {
            submission,
            ..Self::from_job(child)
        }
    }

    /// The job as DescribeJobs reports it: a child with its array's name, queue, parameters,
    /// overrides, tags and so on, as AWS reports them.
    pub(crate) fn to_job(&self) -> Job {
        let s = &*self.submission;
        let index = self.array_properties.and_then(|a| a.index);
        Job {
            job_id: self.job_id.clone(),
            job_arn: match index {
                Some(index) => format!("{}:{index}", s.job_arn),
                None => s.job_arn.clone(),
            },
            job_name: s.job_name.clone(),
            job_queue: s.job_queue.clone(),
            job_definition: s.job_definition.clone(),
            status: self.status,
            status_reason: self.status_reason.clone(),
            created_at: s.created_at,
            started_at: self.started_at,
            stopped_at: self.stopped_at,
            attempts: self.attempts.clone(),
            depends_on: match index {
                Some(_) => Vec::new(),
                None => s.depends_on.clone(),
            },
            array_properties: self.array_properties,
            parameters: s.parameters.clone(),
            container_overrides: s.container_overrides.clone(),
            retry_strategy: s.retry_strategy.clone(),
            timeout: s.timeout,
            tags: s.tags.clone(),
            propagate_tags: s.propagate_tags,
            is_cancelled: self.is_cancelled,
            sequence: self.sequence,
            is_terminated: self.is_terminated,
            submitted_by: s.submitted_by.clone(),
            share_identifier: s.share_identifier.clone(),
            scheduling_priority: s.scheduling_priority,
            remote: self.remote.as_deref().cloned(),
        }
    }

    /// The job's ARN (a child's is its array's and `:<index>`).
    pub(crate) fn to_job_arn(&self) -> String {
        match self.array_properties.and_then(|a| a.index) {
            Some(index) => format!("{}:{index}", self.submission.job_arn),
            None => self.submission.job_arn.clone(),
        }
    }

    /// The id of the array parent, for a child.
    pub(crate) fn array_parent(&self) -> Option<&str> {
        self.array_properties?.index?;
        self.job_id.rsplit_once(':').map(|(parent, _)| parent)
    }

    /// Whether this is an array parent.
    pub(crate) fn is_array_parent(&self) -> bool {
        self.array_properties.is_some_and(|a| a.size.is_some())
    }

    /// The store's record of a child: its own part only.
    pub(crate) fn to_stored_child(&self, index: u32) -> StoredChild {
        StoredChild {
            job_id: self.job_id.clone(),
            index,
            status: self.status,
            status_reason: self.status_reason.clone(),
            started_at: self.started_at,
            stopped_at: self.stopped_at,
            attempts: self.attempts.clone(),
            is_cancelled: self.is_cancelled,
            is_terminated: self.is_terminated,
            sequence: self.sequence,
            remote: self.remote.as_deref().cloned(),
        }
    }

    /// A stored child, given its parent's submission.
    pub(crate) fn from_stored_child(child: StoredChild, submission: Arc<Submission>) -> Self {
        Self {
            job_id: child.job_id,
            status: child.status,
            status_reason: child.status_reason,
            started_at: child.started_at,
            stopped_at: child.stopped_at,
            attempts: child.attempts,
            array_properties: Some(ArrayJob {
                size: None,
                index: Some(child.index),
            }),
            is_cancelled: child.is_cancelled,
            is_terminated: child.is_terminated,
            sequence: child.sequence,
            submission,
            remote: child.remote.map(Box::new),
            counted: None,
        }
    }
}

/// An array child as stored (table `array_children`, store format 3): what is its own; the rest
/// is its parent's record in `jobs`. Member names as in [`Job`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredChild {
    /// `<parentId>:<index>`.
    pub(crate) job_id: String,
    pub(crate) index: u32,
    pub(crate) status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) started_at: Option<EpochMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stopped_at: Option<EpochMillis>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) is_cancelled: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) is_terminated: bool,
    pub(crate) sequence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remote: Option<RemoteHolder>,
}

impl StoredChild {
    /// The id of its parent.
    pub(crate) fn parent(&self) -> &str {
        self.job_id
            .rsplit_once(':')
            .map_or(self.job_id.as_str(), |(parent, _)| parent)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(value: serde_json::Value) -> Job {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_child_reports_its_arrays_submission_and_stores_only_its_own_part() {
        let parent = JobSlot::from_job(job(json!({
            "jobId": "p", "jobArn": "arn:aws:batch:r:a:job/p", "jobName": "render",
            "jobQueue": "arn:aws:batch:r:a:job-queue/q",
            "jobDefinition": "arn:aws:batch:r:a:job-definition/d:1",
            "status": "PENDING", "createdAt": 7, "sequence": 1,
            "arrayProperties": {"size": 2},
            "dependsOn": [{"type": "SEQUENTIAL"}],
            "parameters": {"frame": "1"},
            "containerOverrides": {"environment": [{"name": "K", "value": "v"}]},
            "tags": {"team": "a"}
        })));
        let mut child = JobSlot::new("p:1".into(), 3, parent.submission.clone());
        child.array_properties = Some(ArrayJob {
            size: None,
            index: Some(1),
        });
        child.status = JobStatus::Runnable;
        let described = child.to_job();
        assert_eq!(described.job_arn, "arn:aws:batch:r:a:job/p:1");
        assert_eq!(described.job_name, "render");
        assert_eq!(described.created_at, 7);
        assert_eq!(described.parameters["frame"], "1");
        assert_eq!(
            described.container_overrides.unwrap().environment[0].value,
            Some("v".into())
        );
        assert_eq!(described.tags["team"], "a");
        assert!(described.depends_on.is_empty(), "its waits are derived");

        let stored = serde_json::to_value(child.to_stored_child(1)).unwrap();
        assert_eq!(
            stored,
            json!({"jobId": "p:1", "index": 1, "status": "RUNNABLE", "sequence": 3})
        );
        let back: StoredChild = serde_json::from_value(stored).unwrap();
        assert_eq!(back.parent(), "p");
        let back = JobSlot::from_stored_child(back, parent.submission.clone());
        assert_eq!(back.to_job(), child.to_job());
    }

    #[test]
    fn a_whole_job_survives_the_split() {
        let whole = job(json!({
            "jobId": "j", "jobArn": "arn:aws:batch:r:a:job/j", "jobName": "n",
            "jobQueue": "q", "jobDefinition": "d", "status": "FAILED", "statusReason": "why",
            "createdAt": 1, "startedAt": 2, "stoppedAt": 3, "sequence": 9,
            "attempts": [{"exitCode": 1}], "dependsOn": [{"jobId": "x"}],
            "retryStrategy": {"attempts": 2}, "timeout": {"attemptDurationSeconds": 5},
            "propagateTags": true, "isCancelled": true, "submittedBy": "me"
        }));
        assert_eq!(JobSlot::from_job(whole.clone()).to_job(), whole);
    }
}
