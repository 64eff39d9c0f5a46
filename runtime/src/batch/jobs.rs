//! Jobs: submit (arrays and dependencies included), describe, list with filters and pages,
//! cancel and terminate.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::definitions::parse_revision;
use super::job_slot::{Details, JobSlot, Submission};
use super::state::State;
use super::{Batch, BatchConfig, BatchError, now};
use crate::model::arn::{ResourceKind, stored_name};
use crate::model::container::JobContainer;
use crate::model::validate::{self, Resources};
use crate::model::{
    ArrayJob, ArrayJobDependency, Job, JobDefinition, JobDependency, JobStatus, ListJobs,
    State as OnOff, SubmitJob, SubmittedJob,
};

/// Most ids DescribeJobs takes.
const MAX_DESCRIBE: usize = 100;
/// Longest reason CancelJob and TerminateJob take (AWS's limit).
const MAX_REASON: usize = 1024;

/// One page of ListJobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// The jobs of this page.
    pub jobs: Vec<Job>,
    /// Pass back to get the next page; `None` on the last.
    pub next_token: Option<String>,
}

impl Batch {
    /// SubmitJob. Returns once the job (and, for an array, all its children) is committed.
    pub async fn submit_job(&self, request: SubmitJob) -> Result<SubmittedJob, BatchError> {
        validate::job_name(&request.job_name)?;
        if let Some(member) = request.extra.keys().next() {
            return Err(BatchError::invalid(
                member.as_str(),
                "is not supported: wasmbatch runs container jobs; use containerOverrides",
            ));
        }
        if let Some(array) = &request.array_properties {
            validate::array_properties(array)?;
        }
        validate::depends_on(&request.depends_on)?;
        validate::parameters("parameters", &request.parameters)?;
        if let Some(retry) = &request.retry_strategy {
            validate::retry_strategy(retry)?;
        }
        if let Some(timeout) = &request.timeout {
            validate::timeout(timeout)?;
        }
        if let Some(overrides) = &request.container_overrides {
            validate::command_override(overrides.command.as_deref().unwrap_or_default())?;
            validate::resources(
                "containerOverrides.resourceRequirements",
                &overrides.resource_requirements,
            )?;
            validate::deprecated_resources("containerOverrides", &overrides.extra)?;
            validate::environment("containerOverrides.environment", &overrides.environment)?;
        }
        validate::tags("tags", &request.tags)?;
        if let Some(share) = &request.share_identifier {
            validate::share_identifier(share)?;
        }
        if let Some(priority) = request.scheduling_priority_override {
            validate::scheduling_priority("schedulingPriorityOverride", priority.into())?;
        }
        let array_size = request.array_properties.and_then(|a| a.size);
        let now = now();

        let config = &self.shared.config;
        self.change(|state| {
            let queue_arn = queue_arn(config, state, &request.job_queue)?;
            let queue = &state.queues[stored_name(ResourceKind::JobQueue, &queue_arn)].queue;
            if queue.state == OnOff::Disabled {
                // AWS: a DISABLED queue takes no new jobs; those it has still run.
                return Err(BatchError::invalid(
                    "jobQueue",
                    format!(
                        "job queue {} is DISABLED: it takes no new jobs (those already in it still run)",
                        queue.job_queue_name
                    ),
                ));
            }
            match (&request.share_identifier, &queue.scheduling_policy_arn) {
                (Some(_), None) => {
                    return Err(BatchError::invalid(
                        "shareIdentifier",
                        format!(
                            "job queue {} has no fair-share scheduling policy, so its jobs take no share identifier",
                            queue.job_queue_name
                        ),
                    ));
                }
                (None, Some(policy)) => {
                    return Err(BatchError::invalid(
                        "shareIdentifier",
                        format!(
                            "is required: job queue {} shares its capacity by scheduling policy {policy}",
                            queue.job_queue_name
                        ),
                    ));
                }
                _ => {}
            }
            let definition = resolve_definition(config, state, &request.job_definition)?.clone();
            let resources = job_resources(&definition, &request)?;
            let overridden = |kind: &str| {
                request
                    .container_overrides
                    .as_ref()
                    .is_some_and(|o| o.resource_requirements.iter().any(|r| r.kind == kind))
            };
            if let Some((code, why)) = state.never_fits(
                queue,
                resources.vcpus.unwrap_or(super::state::DEFAULT_VCPUS),
                resources
                    .memory_mib
                    .unwrap_or(crate::engine::Limits::DEFAULT_MEMORY_BYTES >> 20),
            ) {
                // Refused here rather than left RUNNABLE for ever, as AWS would leave it: the
                // caller learns at once, and nothing queues behind a job that cannot run.
                let kind = if code.ends_with("JOB_RESOURCE_REQUIREMENT") {
                    "MEMORY"
                } else {
                    "VCPU"
                };
                return Err(BatchError::invalid(
                    if overridden(kind) {
                        "containerOverrides.resourceRequirements"
                    } else {
                        "containerProperties.resourceRequirements"
                    },
                    format!("{code}: {why}, so it could never run"),
                ));
            }
            let max_mib = self.shared.executor.config().max_memory_bytes >> 20;
            if let Some(memory) = resources.memory_mib.filter(|&m| m > max_mib) {
                // Definitions are checked when registered; the setting may have changed since.
                return Err(BatchError::invalid(
                    if overridden("MEMORY") {
                        "containerOverrides.resourceRequirements"
                    } else {
                        "containerProperties.resourceRequirements"
                    },
                    format!("MEMORY {memory} MiB is more than a job may have here, {max_mib} MiB"),
                ));
            }
            check_dependencies(state, &request.depends_on, array_size)?;

            let id = uuid::Uuid::new_v4().to_string();
            let mut tags = request.tags.clone();
            if request
                .propagate_tags
                .or(definition.propagate_tags)
                .unwrap_or(false)
            {
                for (k, v) in &definition.tags {
                    tags.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            let queue_name = stored_name(ResourceKind::JobQueue, &queue_arn).to_string();
            // Held once, by the job or by an array's parent and all its children (issue 14).
            let details = Details {
                depends_on: request.depends_on.clone(),
                parameters: request.parameters.clone(),
                container_overrides: request.container_overrides.clone().map(Box::new),
                retry_strategy: request
                    .retry_strategy
                    .clone()
                    .or(definition.retry_strategy.clone()),
                timeout: request.timeout.or(definition.timeout),
                tags,
                propagate_tags: request.propagate_tags,
                submitted_by: request.submitted_by.clone(),
                share_identifier: request.share_identifier.clone(),
                scheduling_priority: request.scheduling_priority_override.or_else(|| {
                    definition
                        .extra
                        .get("schedulingPriority")
                        .and_then(|p| p.as_i64())
                        .map(|p| p as i32)
                }),
            };
            let submission = Arc::new(Submission::new(
                &request.job_name,
                state.names.get(&queue_arn),
                state.names.get(&definition.job_definition_arn),
                now,
                details,
            ));
            let mut ended = Vec::new();
            let dependency_ids: Vec<String> = request
                .depends_on
                .iter()
                .filter_map(|d| d.job_id.clone())
                .collect();
            match array_size {
                None => {
                    let job = JobSlot::new(&id, take_sequence(state), submission);
                    admit(state, job, &dependency_ids, now, &mut ended);
                }
                Some(size) => {
                    let mut parent =
                        JobSlot::new(&id, take_sequence(state), submission.clone());
                    parent.status = JobStatus::Pending;
                    parent.array_properties = Some(ArrayJob {
                        size: Some(size),
                        index: None,
                    });
                    state.jobs.insert(parent.job_id.clone(), Box::new(parent));
                    state.touch_job(&id);
                    for index in 0..size {
                        let mut child = JobSlot::new(
                            &format!("{id}:{index}"),
                            take_sequence(state),
                            submission.clone(),
                        );
                        child.array_properties = Some(ArrayJob {
                            size: None,
                            index: Some(index),
                        });
                        let deps = child_dependencies(&id, index, &request.depends_on);
                        admit(state, child, &deps, now, &mut ended);
                    }
                }
            }
            state.settle(ended, now);
            state.metrics.submitted(&queue_name);
            Ok(SubmittedJob {
                job_arn: config.arn(ResourceKind::Job, &id),
                job_id: id,
                job_name: request.job_name,
            })
        })
        .await
    }

    /// The ARN of job queue `queue` (a name or an ARN), as SubmitJob would resolve it.
    pub fn job_queue_arn(&self, queue: &str) -> Result<String, BatchError> {
        queue_arn(&self.shared.config, &self.shared.lock(), queue)
    }

    /// The ARN of the revision `definition` (`name`, `name:revision` or an ARN) names, as
    /// SubmitJob would resolve it: without a revision, the latest ACTIVE one.
    pub fn job_definition_arn(&self, definition: &str) -> Result<String, BatchError> {
        resolve_definition(&self.shared.config, &self.shared.lock(), definition)
            .map(|d| d.job_definition_arn.clone())
    }

    /// The canonical ARN of what `reference` (a name or one of our ARNs, given in `field`) names,
    /// whether or not it exists: the one spelling a policy is asked about. A definition named
    /// without a revision is its latest ACTIVE revision, as SubmitJob resolves it. A look-alike
    /// ARN (another partition, service, region or account) is refused.
    pub fn resource_arn(
        &self,
        kind: ResourceKind,
        field: &str,
        reference: &str,
    ) -> Result<String, BatchError> {
        let config = &self.shared.config;
        let name = config.resource_name(kind, field, reference)?;
        if kind == ResourceKind::JobDefinition && !name.contains(':') {
            let state = self.shared.lock();
            if let Some(latest) = state
                .definitions
                .get(name)
                .and_then(|revisions| revisions.iter().rev().find(|d| d.status == "ACTIVE"))
            {
                return Ok(latest.job_definition_arn.clone());
            }
        }
        Ok(config.arn(kind, name))
    }

    /// DescribeJobs: the jobs with these ids (at most 100), in the order given; unknown ids are
    /// left out, as AWS does.
    pub fn describe_jobs(&self, ids: &[String]) -> Result<Vec<Job>, BatchError> {
        if ids.len() > MAX_DESCRIBE {
            return Err(BatchError::invalid(
                "jobs",
                format!("at most {MAX_DESCRIBE} job ids, got {}", ids.len()),
            ));
        }
        let state = self.shared.lock();
        Ok(ids
            .iter()
            .filter_map(|id| state.jobs.get(id.as_str()).map(|job| job.to_job()))
            .collect())
    }

    /// What `job` runs (or ran): its definition's container with its overrides and parameters
    /// applied. `None` for an array parent, which runs nothing itself.
    pub fn job_container(&self, job: &Job) -> Option<JobContainer> {
        if job.is_array_parent() {
            return None;
        }
        let state = self.shared.lock();
        let definition = state.definition(&job.job_definition)?;
        Some(crate::model::container::resolve(
            definition,
            &job.parameters,
            job.container_overrides.as_deref(),
        ))
    }

    /// How many children of an array job are in each status (its `statusSummary`).
    pub fn array_summary(&self, parent_id: &str) -> Option<BTreeMap<JobStatus, u32>> {
        let state = self.shared.lock();
        let parent = state.jobs.get(parent_id).filter(|j| j.is_array_parent())?;
        Some(state.array_summary(parent))
    }

    /// How many jobs of a queue (name or ARN) are in each status, array children included.
    pub fn job_counts(&self, queue: &str) -> Result<BTreeMap<JobStatus, u64>, BatchError> {
        let state = self.shared.lock();
        let arn = queue_arn(&self.shared.config, &state, queue)?;
        let name = stored_name(ResourceKind::JobQueue, &arn);
        let counts = state.counts.get(name).copied().unwrap_or_default();
        Ok(JobStatus::ALL
            .into_iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .collect())
    }

    /// ListJobs.
    pub fn list_jobs(&self, request: &ListJobs) -> Result<JobPage, BatchError> {
        let filter = match request.filters.as_slice() {
            [] => None,
            [one] => Some(ListFilter::parse(&self.shared.config, one)?),
            _ => {
                return Err(BatchError::invalid(
                    "filters",
                    "at most one filter may be given",
                ));
            }
        };
        let limit = request.max_results.unwrap_or(100);
        let most = if filter.is_some() { 100 } else { 1000 };
        if !(1..=most).contains(&limit) {
            return Err(BatchError::invalid(
                "maxResults",
                format!("must be between 1 and {most}, got {limit}"),
            ));
        }
        let after: Option<u64> = match &request.next_token {
            Some(token) => Some(token.parse().map_err(|_| {
                BatchError::invalid(
                    "nextToken",
                    format!("{token:?} is not a token this service gave"),
                )
            })?),
            None => None,
        };
        let status = request.job_status.unwrap_or(JobStatus::Running);
        let state = self.shared.lock();
        let mut jobs: Vec<&JobSlot> = match (&request.job_queue, &request.array_job_id) {
            (Some(queue), None) => {
                let arn = queue_arn(&self.shared.config, &state, queue)?;
                // Array children are listed through their parent, as in AWS.
                let mut jobs: Vec<&JobSlot> = state
                    .jobs
                    .values()
                    .filter(|j| *j.submission.job_queue == *arn && j.array_parent().is_none())
                    .map(|j| &**j)
                    .collect();
                jobs.sort_by_key(|j| std::cmp::Reverse(j.sequence));
                jobs
            }
            (None, Some(parent)) => {
                let size = state
                    .jobs
                    .get(parent.as_str())
                    .and_then(|p| p.array_properties?.size)
                    .ok_or_else(|| BatchError::NotFound {
                        what: "array job",
                        name: parent.clone(),
                    })?;
                (0..size)
                    .filter_map(|i| state.jobs.get(format!("{parent}:{i}").as_str()))
                    .map(|j| &**j)
                    .collect()
            }
            _ => {
                return Err(BatchError::invalid(
                    "jobQueue",
                    "exactly one of jobQueue and arrayJobId must be given",
                ));
            }
        };
        jobs.retain(|j| match &filter {
            Some(filter) => filter.matches(j),
            None => j.status == status,
        });
        let descending = request.array_job_id.is_none();
        if let Some(after) = after {
            jobs.retain(|j| {
                if descending {
                    j.sequence < after
                } else {
                    j.sequence > after
                }
            });
        }
        let next_token =
            (jobs.len() > limit as usize).then(|| jobs[limit as usize - 1].sequence.to_string());
        jobs.truncate(limit as usize);
        Ok(JobPage {
            jobs: jobs.into_iter().map(JobSlot::to_job).collect(),
            next_token,
        })
    }

    /// CancelJob: a job that has not started (SUBMITTED, RUNNABLE) is FAILED with
    /// `isCancelled`; a PENDING one is, once its dependencies have completed (as AWS does); one
    /// that has started is left alone and the call still succeeds. An array parent's children
    /// are cancelled with it.
    pub async fn cancel_job(&self, job_id: &str, reason: &str) -> Result<(), BatchError> {
        if job_id.is_empty() {
            return Err(BatchError::invalid("jobId", "is required"));
        }
        self.stop(&[job_id.to_string()], reason, false, true).await
    }

    /// TerminateJob: like CancelJob, and a STARTING or RUNNING attempt is killed; the job ends
    /// FAILED with `isTerminated` and is not retried.
    pub async fn terminate_job(&self, job_id: &str, reason: &str) -> Result<(), BatchError> {
        if job_id.is_empty() {
            return Err(BatchError::invalid("jobId", "is required"));
        }
        self.stop(&[job_id.to_string()], reason, true, true).await
    }

    /// CancelJobs: CancelJob for each of up to 50 jobs, in one write. Ids that name no job are
    /// passed over, as AWS counts them successful.
    pub async fn cancel_jobs(&self, job_ids: &[String], reason: &str) -> Result<(), BatchError> {
        check_bulk(job_ids)?;
        self.stop(job_ids, reason, false, false).await
    }

    /// TerminateJobs: TerminateJob for each of up to 50 jobs, in one write; unknown ids are
    /// passed over.
    pub async fn terminate_jobs(&self, job_ids: &[String], reason: &str) -> Result<(), BatchError> {
        check_bulk(job_ids)?;
        self.stop(job_ids, reason, true, false).await
    }

    async fn stop(
        &self,
        job_ids: &[String],
        reason: &str,
        terminate: bool,
        must_exist: bool,
    ) -> Result<(), BatchError> {
        if reason.is_empty() || reason.chars().count() > MAX_REASON {
            return Err(BatchError::invalid(
                "reason",
                format!(
                    "must be 1 to {MAX_REASON} characters, got {}",
                    reason.chars().count()
                ),
            ));
        }
        let now = now();
        self.change(|state| {
            let mut ended = Vec::new();
            for job_id in job_ids {
                let Some(job) = state.jobs.get(job_id.as_str()) else {
                    if must_exist {
                        return Err(BatchError::NotFound {
                            what: "job",
                            name: job_id.to_string(),
                        });
                    }
                    continue;
                };
                let mut targets = vec![job_id.to_string()];
                if let Some(size) = job.array_properties.and_then(|a| a.size) {
                    targets.extend((0..size).map(|i| format!("{job_id}:{i}")));
                }
                for id in targets {
                    stop_one(state, &id, reason, terminate, now, &mut ended);
                }
            }
            state.settle(ended, now);
            Ok(())
        })
        .await
    }
}

/// Most jobs CancelJobs and TerminateJobs take (AWS's limit).
const MAX_BULK: usize = 50;

fn check_bulk(job_ids: &[String]) -> Result<(), BatchError> {
    if job_ids.is_empty() || job_ids.len() > MAX_BULK {
        return Err(BatchError::invalid(
            "jobs",
            format!("must name 1 to {MAX_BULK} jobs, got {}", job_ids.len()),
        ));
    }
    if let Some(i) = job_ids.iter().position(|id| id.is_empty()) {
        return Err(BatchError::invalid(format!("jobs[{i}]"), "is empty"));
    }
    Ok(())
}

/// Cancels (or terminates) one job, as CancelJob and TerminateJob say; the jobs it ended are
/// added to `ended`.
fn stop_one(
    state: &mut State,
    id: &str,
    reason: &str,
    terminate: bool,
    now: i64,
    ended: &mut Vec<String>,
) {
    let Some(job) = state.jobs.get(id) else {
        return;
    };
    let (status, is_parent) = (job.status, job.is_array_parent());
    if is_parent {
        // The parent ends when its last child does (see `State::settle`).
        if !status.is_terminal() {
            let job = state.jobs.get_mut(id).expect("present");
            job.is_cancelled = !terminate;
            job.is_terminated = terminate;
            state.touch_job(id);
        }
    } else if status == JobStatus::Pending && state.unmet.contains_key(id) {
        // AWS cancels a job waiting on dependencies once they have completed: until then it
        // stays PENDING, marked, and `State::settle` ends it when its wait is over.
        let job = state.jobs.get_mut(id).expect("present");
        job.is_cancelled = true;
        job.is_terminated |= terminate;
        job.status_reason = Some(reason.to_string());
        state.touch_job(id);
    } else if matches!(
        status,
        JobStatus::Submitted | JobStatus::Pending | JobStatus::Runnable
    ) {
        if state.fail_one(id, reason, now) {
            state.jobs.get_mut(id).expect("just failed").is_cancelled = true;
            ended.push(id.to_string());
        }
    } else if terminate && !status.is_terminal() {
        state.jobs.get_mut(id).expect("present").is_terminated = true;
        state.touch_job(id);
        if let Some(kill) = state.running.get(id) {
            kill.kill(reason);
        } else if let Some(remote) = state.remote.get_mut(id) {
            // Reaches its worker with the worker's next lease (within a heartbeat).
            remote.stop.get_or_insert_with(|| reason.to_string());
        }
    }
}

/// The ARN of a queue given by name or ARN.
fn queue_arn(config: &BatchConfig, state: &State, queue: &str) -> Result<String, BatchError> {
    state
        .queues
        .get(config.resource_name(ResourceKind::JobQueue, "jobQueue", queue)?)
        .map(|q| q.queue.job_queue_arn.clone())
        .ok_or_else(|| BatchError::NotFound {
            what: "job queue",
            name: queue.to_string(),
        })
}

fn take_sequence(state: &mut State) -> u64 {
    let sequence = state.next_sequence;
    state.next_sequence += 1;
    sequence
}

/// Adds a job to the state with its dependencies: RUNNABLE if it waits on nothing, PENDING if
/// it waits, FAILED at once if something it depends on already failed.
fn admit(
    state: &mut State,
    mut job: JobSlot,
    dependencies: &[String],
    now: i64,
    ended: &mut Vec<String>,
) {
    let key = job.job_id.clone();
    let id = key.to_string();
    let mut unmet = 0;
    let mut failed_dependency = None;
    for dependency in dependencies {
        match state.jobs.get(dependency.as_str()).map(|d| d.status) {
            Some(JobStatus::Succeeded) => {}
            Some(JobStatus::Failed) => failed_dependency = Some(dependency.clone()),
            Some(_) => {
                unmet += 1;
                state
                    .dependents
                    .entry(dependency.clone())
                    .or_default()
                    .push(id.clone());
            }
            // Checked at submit; a child's predecessor is admitted before it.
            None => {}
        }
    }
    job.status = JobStatus::Pending;
    state.jobs.insert(key, Box::new(job));
    if let Some(dependency) = failed_dependency {
        state.fail_one(&id, &format!("Dependent Job failed: {dependency}"), now);
        ended.push(id);
    } else if unmet == 0 {
        state.make_runnable(&id);
    } else {
        state.unmet.insert(id.clone(), unmet);
        state.touch_job(&id);
    }
}

/// What child `index` of array `parent` waits for.
pub(crate) fn child_dependencies(
    parent: &str,
    index: u32,
    dependencies: &[JobDependency],
) -> Vec<String> {
    let mut waits = Vec::new();
    for dependency in dependencies {
        match (dependency.kind, &dependency.job_id) {
            (Some(ArrayJobDependency::Sequential), _) if index > 0 => {
                waits.push(format!("{parent}:{}", index - 1))
            }
            (Some(ArrayJobDependency::Sequential), _) => {}
            (Some(ArrayJobDependency::NToN), Some(other)) => waits.push(format!("{other}:{index}")),
            (_, Some(other)) => waits.push(other.clone()),
            (_, None) => {}
        }
    }
    waits
}

fn check_dependencies(
    state: &State,
    dependencies: &[JobDependency],
    array_size: Option<u32>,
) -> Result<(), BatchError> {
    for (i, dependency) in dependencies.iter().enumerate() {
        let field = format!("dependsOn[{i}]");
        match dependency.kind {
            Some(ArrayJobDependency::Sequential) if array_size.is_none() => {
                return Err(BatchError::invalid(
                    format!("{field}.type"),
                    "SEQUENTIAL is only for array jobs",
                ));
            }
            Some(ArrayJobDependency::Sequential) => continue,
            _ => {}
        }
        let id = dependency.job_id.as_deref().unwrap_or_default();
        let target = state.jobs.get(id).ok_or_else(|| {
            BatchError::invalid(
                format!("{field}.jobId"),
                format!("job {id:?} does not exist"),
            )
        })?;
        if dependency.kind == Some(ArrayJobDependency::NToN) {
            let other_size = target.array_properties.and_then(|a| a.size);
            if array_size.is_none() || other_size != array_size {
                return Err(BatchError::invalid(
                    format!("{field}.type"),
                    format!(
                        "N_TO_N needs this job and job {id} to be arrays of the same size ({array_size:?} and {other_size:?})"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The definition a submit names: `name` (latest ACTIVE revision), `name:revision` or ARN.
fn resolve_definition<'a>(
    config: &BatchConfig,
    state: &'a State,
    reference: &str,
) -> Result<&'a JobDefinition, BatchError> {
    let not_found = || BatchError::NotFound {
        what: "job definition",
        name: reference.to_string(),
    };
    let named = config.resource_name(ResourceKind::JobDefinition, "jobDefinition", reference)?;
    let found = match parse_revision(named) {
        Some((name, revision)) => state.revision(&name, revision),
        None => state
            .definitions
            .get(named)
            .and_then(|revisions| revisions.iter().rev().find(|d| d.status == "ACTIVE")),
    }
    .ok_or_else(not_found)?;
    if found.status != "ACTIVE" {
        return Err(BatchError::invalid(
            "jobDefinition",
            format!("{} is INACTIVE", found.job_definition_arn),
        ));
    }
    Ok(found)
}

/// What a job of `definition` submitted with `request`'s overrides asks for (see
/// [`crate::model::container::requirements`]).
pub(crate) fn job_resources(
    definition: &JobDefinition,
    request: &SubmitJob,
) -> Result<Resources, BatchError> {
    let wanted = crate::model::container::requirements(
        definition.container_properties.as_ref(),
        request.container_overrides.as_ref(),
    );
    Ok(validate::resources("containerOverrides", &wanted)?)
}

/// One ListJobs filter.
enum ListFilter {
    Name(String),
    /// A share identifier, or a prefix ending in `*`.
    Share(String),
    Definition(String),
    Before(i64),
    After(i64),
}

impl ListFilter {
    fn parse(
        config: &BatchConfig,
        filter: &crate::model::KeyValuesPair,
    ) -> Result<Self, BatchError> {
        let value = match filter.values.as_slice() {
            [one] => one.clone(),
            _ => {
                return Err(BatchError::invalid(
                    "filters[0].values",
                    "exactly one value must be given",
                ));
            }
        };
        let millis = |v: &str| {
            v.parse::<i64>().map_err(|_| {
                BatchError::invalid(
                    "filters[0].values",
                    format!("{v:?} is not a time in epoch milliseconds"),
                )
            })
        };
        match filter.name.as_deref() {
            Some("JOB_NAME") => Ok(ListFilter::Name(value.to_ascii_lowercase())),
            Some("SHARE_IDENTIFIER") => Ok(ListFilter::Share(value)),
            // A pattern (`render*`) is not a name, so only an ARN is read strictly here.
            Some("JOB_DEFINITION") if value.starts_with("arn:") => Ok(ListFilter::Definition(
                config
                    .resource_name(ResourceKind::JobDefinition, "filters[0].values", &value)?
                    .to_string(),
            )),
            Some("JOB_DEFINITION") => Ok(ListFilter::Definition(value)),
            Some("BEFORE_CREATED_AT") => Ok(ListFilter::Before(millis(&value)?)),
            Some("AFTER_CREATED_AT") => Ok(ListFilter::After(millis(&value)?)),
            other => Err(BatchError::invalid(
                "filters[0].name",
                format!(
                    "must be JOB_NAME, JOB_DEFINITION, SHARE_IDENTIFIER, BEFORE_CREATED_AT or AFTER_CREATED_AT, got {other:?}"
                ),
            )),
        }
    }

    fn matches(&self, job: &JobSlot) -> bool {
        let job = &*job.submission;
        match self {
            ListFilter::Name(pattern) => {
                crate::model::retry::glob(pattern, &job.job_name.to_ascii_lowercase())
            }
            ListFilter::Definition(wanted) => {
                let revision = stored_name(ResourceKind::JobDefinition, &job.job_definition);
                revision == wanted.as_str()
                    || revision
                        .rsplit_once(':')
                        .is_some_and(|(name, _)| crate::model::retry::glob(wanted, name))
            }
            ListFilter::Share(pattern) => job
                .details()
                .share_identifier
                .as_deref()
                .is_some_and(|share| crate::model::retry::glob(pattern, share)),
            ListFilter::Before(t) => job.created_at < *t,
            ListFilter::After(t) => job.created_at > *t,
        }
    }
}
