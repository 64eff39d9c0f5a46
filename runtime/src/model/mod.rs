//! The domain: compute environments, job queues, job definitions, jobs and their attempts, with
//! the member names and enums of AWS Batch's service model, so the same values serialize to the
//! wire format the AWS clients expect. Fields that AWS accepts but wasmbatch does not use (EC2
//! subnets, instance roles, …) are kept in `extra` and echoed back unchanged.
//!
//! The rules that are pure functions of these values live beside them: `retry` (what a failed
//! attempt's evaluateOnExit decides), `params` (`Ref::name` substitution), `validate` (names and
//! limits).

pub mod arn;
pub mod container;
pub mod image;
pub mod params;
mod requests;
pub mod retry;
pub mod scheduling;
pub mod validate;

pub use requests::{
    CreateComputeEnvironment, CreateJobQueue, CreateSchedulingPolicy, KeyValuesPair, ListJobs,
    RegisterJobDefinition, SubmitJob, SubmittedJob, UpdateComputeEnvironment, UpdateJobQueue,
    UpdateSchedulingPolicy,
};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Members we store and echo but do not interpret.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// Milliseconds since the Unix epoch, as AWS Batch reports times.
pub type EpochMillis = i64;

/// Where jobs run: a share of this host's capacity (MANAGED), or of remote workers (UNMANAGED).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeEnvironment {
    /// Unique name, `[A-Za-z0-9_-]{1,128}`.
    pub compute_environment_name: String,
    /// `arn:aws:batch:<region>:<account>:compute-environment/<name>`.
    pub compute_environment_arn: String,
    /// MANAGED or UNMANAGED.
    #[serde(rename = "type")]
    pub kind: ComputeEnvironmentType,
    /// ENABLED environments take new jobs.
    pub state: State,
    /// Lifecycle status (VALID once created).
    pub status: Status,
    /// Why the status is what it is, if there is something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Capacity, for MANAGED environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_resources: Option<ComputeResources>,
    /// Memory capacity in MiB (our extension: AWS sizes memory by instance type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// An UNMANAGED environment's live capacity: its workers now (cluster mode; ours, never
    /// stored).
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub live_capacity: Option<LiveCapacity>,
    /// Accepted and echoed, not used (serviceRole, eksConfiguration, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// What an UNMANAGED environment's workers offer now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveCapacity {
    /// Workers heard from within their lease.
    pub workers: u32,
    /// Their vCPUs.
    pub vcpus: f64,
    /// Their memory, in MiB.
    pub memory_mib: u64,
    /// vCPUs their attempts hold.
    pub used_vcpus: f64,
}

/// MANAGED or UNMANAGED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ComputeEnvironmentType {
    /// A slice of this host, sized by `maxvCpus` and a memory capacity.
    Managed,
    /// Capacity provided elsewhere; jobs wait in RUNNABLE until remote workers exist.
    Unmanaged,
}

/// ENABLED or DISABLED (for environments and queues alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Takes new work.
    Enabled,
    /// Finishes what it has and takes nothing new.
    Disabled,
}

/// Lifecycle status of an environment or queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Being created.
    Creating,
    /// Being updated.
    Updating,
    /// Being deleted.
    Deleting,
    /// Deleted.
    Deleted,
    /// Ready.
    Valid,
    /// Misconfigured.
    Invalid,
}

/// The capacity of a MANAGED environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeResources {
    /// EC2, SPOT, FARGATE or FARGATE_SPOT: stored, all run on this host.
    #[serde(rename = "type")]
    pub kind: String,
    /// Minimum vCPUs (stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minv_cpus: Option<u32>,
    /// Concurrent vCPU capacity on this host.
    pub maxv_cpus: u32,
    /// Desired vCPUs (stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desiredv_cpus: Option<u32>,
    /// instanceTypes, subnets, securityGroupIds, instanceRole, …: stored and echoed.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where jobs wait, in priority order, for the environments it lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobQueue {
    /// Unique name.
    pub job_queue_name: String,
    /// `arn:aws:batch:<region>:<account>:job-queue/<name>`.
    pub job_queue_arn: String,
    /// ENABLED queues dispatch; DISABLED ones keep their jobs waiting.
    pub state: State,
    /// Lifecycle status.
    pub status: Status,
    /// Why the status is what it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Higher is dispatched first.
    pub priority: i32,
    /// Up to 3 environments, tried in ascending `order`.
    pub compute_environment_order: Vec<ComputeEnvironmentOrder>,
    /// The fair-share scheduling policy; without one the queue is FIFO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_policy_arn: Option<String>,
    /// What to do with jobs stuck at the head of the queue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_state_time_limit_actions: Vec<scheduling::JobStateTimeLimitAction>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Accepted and echoed, not used (jobQueueType, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One environment of a queue and its place in the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeEnvironmentOrder {
    /// Lower is tried first.
    pub order: i32,
    /// The environment's name or ARN.
    pub compute_environment: String,
}

/// A registered revision of a job definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDefinition {
    /// Name shared by all revisions.
    pub job_definition_name: String,
    /// `arn:aws:batch:<region>:<account>:job-definition/<name>:<revision>`.
    pub job_definition_arn: String,
    /// 1 for the first registration, then one more each time.
    pub revision: u32,
    /// ACTIVE, or INACTIVE once deregistered.
    pub status: String,
    /// `container` (multinode is refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// Defaults for `Ref::name` placeholders in the command.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// Retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<RetryStrategy>,
    /// What to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_properties: Option<ContainerProperties>,
    /// Per-attempt timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<JobTimeout>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Whether jobs inherit the definition's tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<bool>,
    /// Accepted and echoed, not used (platformCapabilities, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// What a job runs and with what resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerProperties {
    /// The module: `name` (latest pushed) or `name@sha256:<hex>` (pinned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The module's arguments after argv[0].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<KeyValuePair>,
    /// VCPU, MEMORY (MiB) and FUEL (our extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_requirements: Vec<ResourceRequirement>,
    /// Host directories the job may use: `host.sourcePath` is a directory under the service's
    /// volume root, never an arbitrary host path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Where the guest sees the volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<MountPoint>,
    /// Accepted and echoed, not used (jobRoleArn, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A named host directory (AWS's `Volume`; only `host` volumes are supported).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// What mount points call it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
    /// Other kinds (efsVolumeConfiguration), refused.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where a host volume is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    /// A relative path under the volume root (a leading `/` is read as the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
}

/// A volume as the guest sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    /// The guest path, absolute, e.g. `/data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    /// Read-only when true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// The volume's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_volume: Option<String>,
}

/// A name and a value (environment variables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValuePair {
    /// The name.
    #[serde(default)]
    pub name: Option<String>,
    /// The value.
    #[serde(default)]
    pub value: Option<String>,
}

/// One resource a job needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRequirement {
    /// VCPU, MEMORY, FUEL (ours) or GPU (refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// A number, as a string.
    pub value: String,
}

/// How often a job is tried and when not to retry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Attempts in all, 1..10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Up to 5 conditions, checked in order; the first match decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluate_on_exit: Vec<EvaluateOnExit>,
}

/// A condition on a failed attempt and what to do when it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluateOnExit {
    /// Glob on the attempt's statusReason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_status_reason: Option<String>,
    /// Glob on the attempt's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reason: Option<String>,
    /// Glob on the exit code (digits, may end in `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit_code: Option<String>,
    /// RETRY or EXIT, any case.
    pub action: String,
}

/// Per-attempt wall-clock limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobTimeout {
    /// Seconds from the attempt's start (we allow down to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_duration_seconds: Option<u32>,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Accepted, not yet evaluated.
    Submitted,
    /// Waiting for dependencies (or, for an array parent, for its children).
    Pending,
    /// Waiting for capacity.
    Runnable,
    /// Placed; its module is being loaded.
    Starting,
    /// Its attempt is running.
    Running,
    /// Exited 0.
    Succeeded,
    /// Failed, with no attempts left, or cancelled, or terminated.
    Failed,
}

impl JobStatus {
    /// Every status, in life order.
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Submitted,
        JobStatus::Pending,
        JobStatus::Runnable,
        JobStatus::Starting,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
    ];

    /// SUCCEEDED or FAILED: nothing more will happen to the job.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }

    /// The AWS spelling, e.g. `RUNNABLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Submitted => "SUBMITTED",
            JobStatus::Pending => "PENDING",
            JobStatus::Runnable => "RUNNABLE",
            JobStatus::Starting => "STARTING",
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dependency of a job on another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDependency {
    /// The job depended on; absent for a SEQUENTIAL array dependency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// N_TO_N or SEQUENTIAL, for arrays.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ArrayJobDependency>,
}

/// How children of an array depend on each other or on another array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ArrayJobDependency {
    /// Child i waits for child i of the array named by `jobId`.
    NToN,
    /// Child i waits for child i-1 of its own array.
    Sequential,
}

/// Array sizing on submit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayProperties {
    /// Children, 2..10,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

/// Overrides a job's submit may give over its definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerOverrides {
    /// Replaces the definition's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Added to (and overriding) the definition's environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<KeyValuePair>,
    /// Replace the definition's requirements of the same type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_requirements: Vec<ResourceRequirement>,
    /// Accepted and echoed, not used (instanceType, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One try at running a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// When it started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<EpochMillis>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<EpochMillis>,
    /// The guest's exit code, if it exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The failure kind, if it did not (e.g. `OutOfFuel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the attempt ended as it did, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// `<jobDefinitionName>/default/<id>` in log group `/aws/batch/job`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_stream_name: Option<String>,
    /// Fuel the guest burned, when fuel was metered (ours: the attempt's CPU work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_consumed: Option<u64>,
    /// The most linear memory (and tables) the guest held at once, in bytes (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// The remote worker it ran on, in cluster mode (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// `sha256:<hex>` of what the image resolved to when the attempt was placed (ours; ECS's
    /// name): the module's bytes, or a registry image's manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

/// Where a job's current attempt was sent in cluster mode, committed before it is published, so
/// a restarted control plane knows which worker holds it (not an AWS member).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteHolder {
    /// The worker's name.
    pub worker: String,
    /// The worker's session it was given to.
    pub session: String,
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The UNMANAGED compute environment.
    pub environment: String,
    /// vCPUs it holds on the worker.
    pub vcpus: f64,
    /// Memory it holds on the worker, in MiB.
    pub memory_mib: u64,
    /// Its log stream.
    pub log_stream_name: String,
    /// The work message as published (JSON), re-published as is by a restarted control plane
    /// when the attempt had not started: the stream's duplicate window drops it if it was.
    pub work: String,
}

/// A submitted job: what it runs, where it is in its life, and its attempts so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// A UUID; array children are `<parentId>:<index>`.
    pub job_id: String,
    /// `arn:aws:batch:<region>:<account>:job/<jobId>`.
    pub job_arn: String,
    /// The name given on submit.
    pub job_name: String,
    /// The queue's ARN.
    pub job_queue: String,
    /// The ARN of the definition revision it was submitted with.
    pub job_definition: String,
    /// Where it is.
    pub status: JobStatus,
    /// Why it is there, when there is something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When it was submitted.
    pub created_at: EpochMillis,
    /// When its latest attempt started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<EpochMillis>,
    /// When it reached SUCCEEDED or FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<EpochMillis>,
    /// Finished attempts, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Jobs it waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<JobDependency>,
    /// Size for an array parent, index for a child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_properties: Option<ArrayJob>,
    /// `Ref::` values given on submit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// Overrides given on submit. Boxed: most jobs have none, and every queued job would carry
    /// the empty room for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_overrides: Option<Box<ContainerOverrides>>,
    /// Retries in force (the submit's, else the definition's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<RetryStrategy>,
    /// Timeout in force (the submit's, else the definition's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<JobTimeout>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Whether the definition's tags were propagated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<bool>,
    /// Cancelled before it ran.
    #[serde(default)]
    pub is_cancelled: bool,
    /// Submission order across the service: FIFO dispatch follows it (not an AWS member).
    #[serde(default)]
    pub sequence: u64,
    /// Terminated while it ran, or cancelled through TerminateJob.
    #[serde(default)]
    pub is_terminated: bool,
    /// The identity that submitted it (not an AWS member; AWS records it in CloudTrail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    /// Its fair share, on a queue with a scheduling policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_identifier: Option<String>,
    /// Its order within its share (higher first): the submit's override, else the
    /// definition's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_priority: Option<i32>,
    /// The worker holding its current attempt, in cluster mode (not an AWS member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteHolder>,
}

/// Array information of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayJob {
    /// The parent's number of children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// A child's index, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

impl Job {
    /// The id of the array parent, for a child.
    pub fn array_parent(&self) -> Option<&str> {
        self.array_properties?.index?;
        self.job_id.rsplit_once(':').map(|(parent, _)| parent)
    }

    /// Whether this is an array parent.
    pub fn is_array_parent(&self) -> bool {
        self.array_properties.is_some_and(|a| a.size.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_use_aws_member_names_and_echo_what_they_do_not_use() {
        let wire = serde_json::json!({
            "jobDefinitionName": "render",
            "jobDefinitionArn": "arn:aws:batch:us-east-1:000000000000:job-definition/render:2",
            "revision": 2,
            "status": "ACTIVE",
            "type": "container",
            "parameters": {"frame": "1"},
            "retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onExitCode": "1*", "action": "EXIT"}]},
            "timeout": {"attemptDurationSeconds": 30},
            "platformCapabilities": ["EC2"],
            "containerProperties": {
                "image": "render@sha256:00",
                "command": ["Ref::frame"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "FUEL", "value": "100"}],
                "jobRoleArn": "arn:aws:iam::000000000000:role/render",
                "volumes": [{"name": "v"}]
            }
        });
        let definition: JobDefinition = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(definition.revision, 2);
        assert_eq!(
            definition.retry_strategy.as_ref().unwrap().evaluate_on_exit[0].action,
            "EXIT"
        );
        let container = definition.container_properties.as_ref().unwrap();
        assert_eq!(container.resource_requirements[1].kind, "FUEL");
        assert!(container.extra.contains_key("jobRoleArn"));
        assert_eq!(serde_json::to_value(&definition).unwrap(), wire);
    }

    #[test]
    fn statuses_are_spelled_as_aws_does() {
        for status in JobStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(serde_json::from_str::<JobStatus>(&json).unwrap(), status);
        }
        assert_eq!(
            serde_json::to_string(&ArrayJobDependency::NToN).unwrap(),
            "\"N_TO_N\""
        );
    }
}
