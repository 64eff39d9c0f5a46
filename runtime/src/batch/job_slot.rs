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
///
/// Small, since every queued job holds one (issue 18: heap per queued job): the queue's and the
/// definition's ARNs are shared with every job that names them ([`SharedNames`]), the job's ARN
/// is not held but follows from its id and its queue's ARN, and what most jobs are submitted
/// without is behind one pointer that is empty for them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Submission {
    pub(crate) job_name: Box<str>,
    /// The queue's ARN.
    pub(crate) job_queue: Arc<str>,
    /// The ARN of the definition's revision.
    pub(crate) job_definition: Arc<str>,
    pub(crate) created_at: EpochMillis,
    /// The submitted job's ARN, only when it is not the one [`derived_job_arn`] gives (a record
    /// written by hand, or by a service of another region or account); an array child's is
    /// this and `:<index>`.
    job_arn: Option<Box<str>>,
    /// `None` when all of it is empty.
    details: Option<Box<Details>>,
}

/// What a SubmitJob may carry beyond a name, queue and definition.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Details {
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

static NO_DETAILS: Details = Details {
    depends_on: Vec::new(),
    parameters: BTreeMap::new(),
    container_overrides: None,
    retry_strategy: None,
    timeout: None,
    tags: BTreeMap::new(),
    propagate_tags: None,
    submitted_by: None,
    share_identifier: None,
    scheduling_priority: None,
};

impl Submission {
    pub(crate) fn new(
        job_name: &str,
        job_queue: Arc<str>,
        job_definition: Arc<str>,
        created_at: EpochMillis,
        details: Details,
    ) -> Self {
        Self {
            job_name: job_name.into(),
            job_queue,
            job_definition,
            created_at,
            job_arn: None,
            details: (details != NO_DETAILS).then(|| Box::new(details)),
        }
    }

    /// Everything but the name, queue and definition.
    pub(crate) fn details(&self) -> &Details {
        self.details.as_deref().unwrap_or(&NO_DETAILS)
    }

    pub(crate) fn details_mut(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Default::default)
    }

    /// The ARN of the job with id `job_id` submitted as this, array child `index` if it is one
    /// (whose id is `<parent id>:<index>`).
    fn job_arn(&self, job_id: &str, index: Option<u32>) -> String {
        match (&self.job_arn, index) {
            (None, _) => derived_job_arn(&self.job_queue, job_id),
            (Some(arn), None) => arn.to_string(),
            (Some(arn), Some(index)) => format!("{arn}:{index}"),
        }
    }
}

/// A job's ARN as this service names it: `job/<id>` after the region and account of its queue's
/// ARN, `arn:aws:batch:<region>:<account>:job-queue/<name>`.
fn derived_job_arn(queue_arn: &str, job_id: &str) -> String {
    let service = queue_arn
        .split_once(":job-queue/")
        .map_or(queue_arn, |(service, _)| service);
    format!("{service}:job/{job_id}")
}

/// The ARNs jobs name their queue and definition by, each held once however many jobs name it.
/// Entries no job holds any more are let go as the set grows, so it stays the size of what is in
/// use, not of everything ever named.
#[derive(Debug, Default)]
pub(crate) struct SharedNames {
    names: std::collections::HashSet<Arc<str>>,
    /// How many were held after the last letting go: the next is due at twice as many.
    kept: usize,
}

impl SharedNames {
    /// The shared copy of `name`.
    pub(crate) fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return shared.clone();
        }
        if self.names.len() >= 2 * self.kept + 64 {
            self.names.retain(|n| Arc::strong_count(n) > 1);
            self.kept = self.names.len();
        }
        let shared: Arc<str> = name.into();
        self.names.insert(shared.clone());
        shared
    }
}

/// A job in the state: where it is in its life, and what it was submitted as.
#[derive(Debug, Clone)]
pub(crate) struct JobSlot {
    /// Shared with the state's map of jobs and the queue's line.
    pub(crate) job_id: Arc<str>,
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
    pub(crate) fn new(job_id: &str, sequence: u64, submission: Arc<Submission>) -> Self {
        Self {
            job_id: job_id.into(),
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
    /// its own, whose ARNs are shared through `names`.
    pub(crate) fn from_job(job: Job, names: &mut SharedNames) -> Self {
        let mut submission = Submission::new(
            &job.job_name,
            names.get(&job.job_queue),
            names.get(&job.job_definition),
            job.created_at,
            Details {
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
            },
        );
        // A stored child's ARN is its parent's and `:<index>`: compared as the parent's.
        let own_arn = match job.array_properties.and_then(|a| a.index) {
            Some(index) => job
                .job_arn
                .strip_suffix(&format!(":{index}"))
                .unwrap_or(&job.job_arn)
                .to_string(),
            None => job.job_arn,
        };
        let parent_id = job
            .job_id
            .rsplit_once(':')
            .filter(|_| job.array_properties.is_some_and(|a| a.index.is_some()))
            .map_or(job.job_id.as_str(), |(parent, _)| parent);
        if own_arn != derived_job_arn(&submission.job_queue, parent_id) {
            submission.job_arn = Some(own_arn.into());
        }
        let submission = Arc::new(submission);
        Self {
            job_id: job.job_id.into(),
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
    pub(crate) fn from_whole_child(
        child: Job,
        submission: Arc<Submission>,
        names: &mut SharedNames,
    ) -> Self {
        Self {
            submission,
            ..Self::from_job(child, names)
        }
    }

    /// The job as DescribeJobs reports it: a child with its array's name, queue, parameters,
    /// overrides, tags and so on, as AWS reports them.
    pub(crate) fn to_job(&self) -> Job {
        let s = &*self.submission;
        let d = s.details();
        let index = self.array_properties.and_then(|a| a.index);
        Job {
            job_id: self.job_id.to_string(),
            job_arn: self.to_job_arn(),
            job_name: s.job_name.to_string(),
            job_queue: s.job_queue.to_string(),
            job_definition: s.job_definition.to_string(),
            status: self.status,
            status_reason: self.status_reason.clone(),
            created_at: s.created_at,
            started_at: self.started_at,
            stopped_at: self.stopped_at,
            attempts: self.attempts.clone(),
            depends_on: match index {
                Some(_) => Vec::new(),
                None => d.depends_on.clone(),
            },
            array_properties: self.array_properties,
            parameters: d.parameters.clone(),
            container_overrides: d.container_overrides.clone(),
            retry_strategy: d.retry_strategy.clone(),
            timeout: d.timeout,
            tags: d.tags.clone(),
            propagate_tags: d.propagate_tags,
            is_cancelled: self.is_cancelled,
            sequence: self.sequence,
            is_terminated: self.is_terminated,
            submitted_by: d.submitted_by.clone(),
            share_identifier: d.share_identifier.clone(),
            scheduling_priority: d.scheduling_priority,
            remote: self.remote.as_deref().cloned(),
        }
    }

    /// The job's ARN (a child's is its array's and `:<index>`).
    pub(crate) fn to_job_arn(&self) -> String {
        let index = self.array_properties.and_then(|a| a.index);
        self.submission.job_arn(&self.job_id, index)
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
            job_id: self.job_id.to_string(),
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
            job_id: child.job_id.into(),
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
        let mut names = SharedNames::default();
        let parent = JobSlot::from_job(
            job(json!({
                "jobId": "p", "jobArn": "arn:aws:batch:r:a:job/p", "jobName": "render",
                "jobQueue": "arn:aws:batch:r:a:job-queue/q",
                "jobDefinition": "arn:aws:batch:r:a:job-definition/d:1",
                "status": "PENDING", "createdAt": 7, "sequence": 1,
                "arrayProperties": {"size": 2},
                "dependsOn": [{"type": "SEQUENTIAL"}],
                "parameters": {"frame": "1"},
                "containerOverrides": {"environment": [{"name": "K", "value": "v"}]},
                "tags": {"team": "a"}
            })),
            &mut names,
        );
        let mut child = JobSlot::new("p:1", 3, parent.submission.clone());
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
        let mut names = SharedNames::default();
        assert_eq!(JobSlot::from_job(whole.clone(), &mut names).to_job(), whole);
    }

    #[test]
    fn a_jobs_arn_follows_from_its_id_and_queue_and_any_other_is_kept() {
        let mut names = SharedNames::default();
        let queue = "arn:aws:batch:us-east-1:123456789012:job-queue/q";
        let ours = job(json!({
            "jobId": "j", "jobArn": "arn:aws:batch:us-east-1:123456789012:job/j",
            "jobName": "n", "jobQueue": queue, "jobDefinition": "d",
            "status": "SUBMITTED", "createdAt": 1
        }));
        let slot = JobSlot::from_job(ours.clone(), &mut names);
        assert_eq!(slot.submission.job_arn, None, "ours is not held");
        assert_eq!(slot.to_job(), ours);
        assert_eq!(
            child_of(&slot, 4).to_job_arn(),
            "arn:aws:batch:us-east-1:123456789012:job/j:4"
        );
        // Written by a service of another account: kept as it was, for its children too.
        let theirs = job(json!({
            "jobId": "k", "jobArn": "arn:aws:batch:eu-west-1:999999999999:job/k",
            "jobName": "n", "jobQueue": queue, "jobDefinition": "d",
            "status": "SUBMITTED", "createdAt": 1
        }));
        let slot = JobSlot::from_job(theirs.clone(), &mut names);
        assert_eq!(slot.to_job(), theirs);
        assert_eq!(
            child_of(&slot, 0).to_job_arn(),
            "arn:aws:batch:eu-west-1:999999999999:job/k:0"
        );
    }

    /// Child `index` of array `parent`.
    fn child_of(parent: &JobSlot, index: u32) -> JobSlot {
        let id = format!("{}:{index}", parent.job_id);
        let mut child = JobSlot::new(
            &id,
            parent.sequence + 1 + u64::from(index),
            parent.submission.clone(),
        );
        child.array_properties = Some(ArrayJob {
            size: None,
            index: Some(index),
        });
        child
    }

    #[test]
    fn jobs_share_one_copy_of_a_name_which_goes_once_no_job_holds_it() {
        let mut names = SharedNames::default();
        let a = names.get("arn:aws:batch:r:a:job-queue/q");
        let b = names.get("arn:aws:batch:r:a:job-queue/q");
        assert!(Arc::ptr_eq(&a, &b));
        let gone = Arc::downgrade(&names.get("arn:aws:batch:r:a:job-queue/deleted"));
        for i in 0..1000 {
            names.get(&format!("arn:aws:batch:r:a:job-definition/d:{i}"));
        }
        assert!(gone.upgrade().is_none(), "let go once nothing held it");
        assert!(names.names.len() < 200, "{} held", names.names.len());
        assert!(Arc::ptr_eq(&a, &names.get("arn:aws:batch:r:a:job-queue/q")));
    }
}
