//! What callers ask for, with the member names of AWS Batch's request shapes, so the HTTP face
//! can decode a request body straight into one of these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    ArrayProperties, ComputeEnvironmentOrder, ComputeEnvironmentType, ComputeResources,
    ContainerOverrides, ContainerProperties, Extra, JobDependency, JobStatus, JobTimeout,
    RetryStrategy, State,
    scheduling::{FairsharePolicy, JobStateTimeLimitAction},
};

/// CreateComputeEnvironment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateComputeEnvironment {
    /// Its name.
    pub compute_environment_name: String,
    /// MANAGED or UNMANAGED.
    #[serde(rename = "type")]
    pub kind: ComputeEnvironmentType,
    /// ENABLED unless given.
    #[serde(default)]
    pub state: Option<State>,
    /// Required for MANAGED.
    #[serde(default)]
    pub compute_resources: Option<ComputeResources>,
    /// Memory capacity in MiB (our extension); a share of host RAM if absent.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Accepted and echoed (serviceRole, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// UpdateComputeEnvironment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateComputeEnvironment {
    /// Name or ARN.
    pub compute_environment: String,
    /// New state.
    #[serde(default)]
    pub state: Option<State>,
    /// New vCPU capacity (only `maxvCpus` and `desiredvCpus`/`minvCpus` are read).
    #[serde(default)]
    pub compute_resources: Option<Extra>,
    /// The other members AWS takes (serviceRole, updatePolicy, unmanagedvCpus, context, …):
    /// stored and echoed as the environment's own, replacing what it had.
    #[serde(flatten)]
    pub extra: Extra,
}

/// CreateJobQueue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateJobQueue {
    /// Its name.
    pub job_queue_name: String,
    /// ENABLED unless given.
    #[serde(default)]
    pub state: Option<State>,
    /// Higher first.
    pub priority: i32,
    /// 1 to 3 environments.
    #[serde(default)]
    pub compute_environment_order: Vec<ComputeEnvironmentOrder>,
    /// A fair-share scheduling policy (name or ARN); FIFO without.
    #[serde(default)]
    pub scheduling_policy_arn: Option<String>,
    /// What to do with jobs stuck at the head of the queue.
    #[serde(default)]
    pub job_state_time_limit_actions: Vec<JobStateTimeLimitAction>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Accepted and echoed (jobQueueType, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// UpdateJobQueue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateJobQueue {
    /// Name or ARN.
    pub job_queue: String,
    /// New state.
    #[serde(default)]
    pub state: Option<State>,
    /// New priority.
    #[serde(default)]
    pub priority: Option<i32>,
    /// New environments.
    #[serde(default)]
    pub compute_environment_order: Option<Vec<ComputeEnvironmentOrder>>,
    /// Another scheduling policy (a fair-share queue's may be replaced, never removed; a FIFO
    /// queue takes none).
    #[serde(default)]
    pub scheduling_policy_arn: Option<String>,
    /// New time-limit actions (an empty list removes them).
    #[serde(default)]
    pub job_state_time_limit_actions: Option<Vec<JobStateTimeLimitAction>>,
}

/// CreateSchedulingPolicy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSchedulingPolicy {
    /// Its name.
    pub name: String,
    /// The fair-share parameters; a policy without them shares equally.
    #[serde(default)]
    pub fairshare_policy: Option<FairsharePolicy>,
    /// AWS's other kind of policy, for SageMaker training queues: read only to be refused by
    /// name (wasmbatch schedules by fair share only), not silently dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_share_policy: Option<serde_json::Value>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// UpdateSchedulingPolicy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSchedulingPolicy {
    /// Name or ARN.
    pub arn: String,
    /// Replaces the policy's fair-share parameters whole (members left out take their
    /// defaults, as on AWS); absent, they stay as they are (AWS never removes them).
    #[serde(default)]
    pub fairshare_policy: Option<FairsharePolicy>,
    /// Refused, as on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_share_policy: Option<serde_json::Value>,
}

/// RegisterJobDefinition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterJobDefinition {
    /// The name; each registration adds a revision.
    pub job_definition_name: String,
    /// `container`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `Ref::` defaults.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Retries.
    #[serde(default)]
    pub retry_strategy: Option<RetryStrategy>,
    /// What to run.
    #[serde(default)]
    pub container_properties: Option<ContainerProperties>,
    /// Per-attempt timeout.
    #[serde(default)]
    pub timeout: Option<JobTimeout>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Whether jobs inherit the tags.
    #[serde(default)]
    pub propagate_tags: Option<bool>,
    /// Accepted and echoed (platformCapabilities, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// SubmitJob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitJob {
    /// The job's name.
    pub job_name: String,
    /// Queue name or ARN.
    pub job_queue: String,
    /// Definition: `name`, `name:revision` or ARN.
    pub job_definition: String,
    /// Makes it an array job.
    #[serde(default)]
    pub array_properties: Option<ArrayProperties>,
    /// Jobs it waits for.
    #[serde(default)]
    pub depends_on: Vec<JobDependency>,
    /// `Ref::` values, over the definition's.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Command, environment, resources over the definition's.
    #[serde(default)]
    pub container_overrides: Option<ContainerOverrides>,
    /// Replaces the definition's.
    #[serde(default)]
    pub retry_strategy: Option<RetryStrategy>,
    /// Replaces the definition's.
    #[serde(default)]
    pub timeout: Option<JobTimeout>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Whether the job takes its definition's tags.
    #[serde(default)]
    pub propagate_tags: Option<bool>,
    /// Fair share's identifier: required on a queue with a fair-share scheduling policy, refused
    /// on one without, as AWS does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_identifier: Option<String>,
    /// Fair share's priority, 0 to 9999, over the definition's `schedulingPriority`: orders jobs
    /// within their share (not used on FIFO queues, as on AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_priority_override: Option<i32>,
    /// Members for kinds of job wasmbatch does not run (nodeOverrides, ecsPropertiesOverride,
    /// …): refused by name rather than ignored.
    #[serde(flatten)]
    pub extra: Extra,
    /// Who submits it, as the caller's authentication established (never from the request
    /// body); recorded on the job.
    #[serde(skip)]
    pub submitted_by: Option<String>,
}

/// What a submit answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmittedJob {
    /// The new job's id.
    pub job_id: String,
    /// Its name.
    pub job_name: String,
    /// Its ARN.
    pub job_arn: String,
}

/// ListJobs: exactly one of `job_queue` and `array_job_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListJobs {
    /// Queue name or ARN.
    #[serde(default)]
    pub job_queue: Option<String>,
    /// An array parent's id: list its children.
    #[serde(default)]
    pub array_job_id: Option<String>,
    /// Only this status (RUNNING when neither it nor a filter is given).
    #[serde(default)]
    pub job_status: Option<JobStatus>,
    /// At most one filter; it overrides `job_status`.
    #[serde(default)]
    pub filters: Vec<KeyValuesPair>,
    /// Page size.
    #[serde(default)]
    pub max_results: Option<u32>,
    /// Where the previous page ended.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// A ListJobs filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValuesPair {
    /// JOB_NAME, JOB_DEFINITION, BEFORE_CREATED_AT or AFTER_CREATED_AT.
    #[serde(default)]
    pub name: Option<String>,
    /// One value.
    #[serde(default)]
    pub values: Vec<String>,
}
