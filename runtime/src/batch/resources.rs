//! Compute environments, job queues, job definitions and modules: create, describe, update,
//! delete. Each change is checked against the state, applied to it, and persisted before the
//! call returns; if the write fails the change is undone.

use crate::model::validate::{self, ValidationError};
use crate::model::{
    ComputeEnvironment, ComputeEnvironmentOrder, ComputeEnvironmentType, CreateComputeEnvironment,
    CreateJobQueue, JobDefinition, JobQueue, RegisterJobDefinition, State as OnOff, Status,
    UpdateComputeEnvironment, UpdateJobQueue,
};
use crate::modules::ModuleInfo;
use crate::store::{Record, Table};

use super::state::{EnvSlot, QueueSlot};
use super::{Batch, BatchConfig, BatchError};
use crate::model::arn::ResourceKind;

/// Members of RegisterJobDefinition for kinds of job wasmbatch does not run: refused by name,
/// where they would otherwise be stored and never used.
const UNSUPPORTED_PROPERTIES: [&str; 4] = [
    "nodeProperties",
    "ecsProperties",
    "eksProperties",
    "consumableResourceProperties",
];

/// Most compute environments and queues (AWS's quotas).
const MAX_ENVIRONMENTS: usize = 50;
const MAX_QUEUES: usize = 50;
const COMPUTE_RESOURCE_TYPES: [&str; 5] = [
    "EC2",
    "SPOT",
    "FARGATE",
    "FARGATE_SPOT",
    "ECS_MANAGED_INSTANCES",
];

impl Batch {
    /// CreateComputeEnvironment.
    pub async fn create_compute_environment(
        &self,
        request: CreateComputeEnvironment,
    ) -> Result<ComputeEnvironment, BatchError> {
        let name = request.compute_environment_name.clone();
        validate::name("computeEnvironmentName", &name)?;
        if let Some(resources) = &request.compute_resources {
            if !COMPUTE_RESOURCE_TYPES.contains(&resources.kind.as_str()) {
                return Err(BatchError::invalid(
                    "computeResources.type",
                    format!(
                        "must be one of {COMPUTE_RESOURCE_TYPES:?}, got {:?}",
                        resources.kind
                    ),
                ));
            }
            if resources
                .minv_cpus
                .is_some_and(|min| min > resources.maxv_cpus)
            {
                return Err(BatchError::invalid(
                    "computeResources.minvCpus",
                    format!(
                        "{} is more than maxvCpus {}",
                        resources.minv_cpus.unwrap_or(0),
                        resources.maxv_cpus
                    ),
                ));
            }
        } else if request.kind == ComputeEnvironmentType::Managed {
            return Err(BatchError::invalid(
                "computeResources",
                "is required for a MANAGED compute environment",
            ));
        }
        if request.memory_mib == Some(0) {
            return Err(BatchError::invalid("memoryMib", "must be at least 1"));
        }
        let env = ComputeEnvironment {
            compute_environment_arn: self
                .shared
                .config
                .arn(ResourceKind::ComputeEnvironment, &name),
            compute_environment_name: name.clone(),
            kind: request.kind,
            state: request.state.unwrap_or(OnOff::Enabled),
            status: Status::Valid,
            status_reason: Some("ComputeEnvironment Healthy".into()),
            compute_resources: request.compute_resources,
            memory_mib: request.memory_mib,
            tags: request.tags,
            extra: request.extra,
        };
        {
            let mut state = self.shared.lock();
            if state.envs.contains_key(&name) {
                return Err(BatchError::Conflict(format!(
                    "Object already exists: compute environment {name}"
                )));
            }
            if state.envs.len() >= MAX_ENVIRONMENTS {
                return Err(BatchError::Conflict(format!(
                    "at most {MAX_ENVIRONMENTS} compute environments"
                )));
            }
            let memory_mib = env
                .memory_mib
                .unwrap_or(self.shared.config.default_environment_memory_mib);
            state.envs.insert(
                name.clone(),
                EnvSlot {
                    env: env.clone(),
                    memory_mib,
                    used_vcpus: 0.0,
                    used_memory_mib: 0,
                },
            );
        }
        if let Err(e) = self
            .shared
            .store
            .write(vec![Record::put(Table::ComputeEnvironments, &name, &env)])
            .await
        {
            self.shared.lock().envs.remove(&name);
            return Err(e.into());
        }
        Ok(env)
    }

    /// DescribeComputeEnvironments: the named ones (names or ARNs), or all when none is named.
    pub fn describe_compute_environments(&self, names: &[String]) -> Vec<ComputeEnvironment> {
        let state = self.shared.lock();
        if names.is_empty() {
            return state.envs.values().map(|s| s.env.clone()).collect();
        }
        names
            .iter()
            .filter_map(|n| {
                let name = self
                    .shared
                    .config
                    .resource_name(ResourceKind::ComputeEnvironment, "computeEnvironments", n)
                    .ok()?;
                state.envs.get(name)
            })
            .map(|s| s.env.clone())
            .collect()
    }

    /// UpdateComputeEnvironment: its state and its vCPU capacity.
    pub async fn update_compute_environment(
        &self,
        request: UpdateComputeEnvironment,
    ) -> Result<ComputeEnvironment, BatchError> {
        let name = self
            .shared
            .config
            .resource_name(
                ResourceKind::ComputeEnvironment,
                "computeEnvironment",
                &request.compute_environment,
            )?
            .to_string();
        let (before, after) = {
            let mut state = self.shared.lock();
            let slot = state
                .envs
                .get_mut(&name)
                .ok_or_else(|| BatchError::NotFound {
                    what: "compute environment",
                    name: name.clone(),
                })?;
            let before = slot.env.clone();
            let mut after = before.clone();
            if let Some(new_state) = request.state {
                after.state = new_state;
            }
            if let Some(update) = &request.compute_resources {
                let resources = after.compute_resources.as_mut().ok_or_else(|| {
                    BatchError::invalid(
                        "computeResources",
                        "an UNMANAGED compute environment has none to update",
                    )
                })?;
                for (member, value) in update {
                    let number = || {
                        value
                            .as_u64()
                            .and_then(|v| u32::try_from(v).ok())
                            .ok_or_else(|| {
                                BatchError::invalid(
                                    format!("computeResources.{member}"),
                                    format!("must be a whole number, got {value}"),
                                )
                            })
                    };
                    match member.as_str() {
                        "maxvCpus" => resources.maxv_cpus = number()?,
                        "minvCpus" => resources.minv_cpus = Some(number()?),
                        "desiredvCpus" => resources.desiredv_cpus = Some(number()?),
                        _ => {
                            resources.extra.insert(member.clone(), value.clone());
                        }
                    }
                }
            }
            slot.env = after.clone();
            (before, after)
        };
        if let Err(e) = self
            .shared
            .store
            .write(vec![Record::put(Table::ComputeEnvironments, &name, &after)])
            .await
        {
            if let Some(slot) = self.shared.lock().envs.get_mut(&name) {
                slot.env = before;
            }
            return Err(e.into());
        }
        self.shared.wake.notify_one();
        Ok(after)
    }

    /// DeleteComputeEnvironment: it must be DISABLED and in no queue.
    pub async fn delete_compute_environment(&self, environment: &str) -> Result<(), BatchError> {
        let name = self
            .shared
            .config
            .resource_name(
                ResourceKind::ComputeEnvironment,
                "computeEnvironment",
                environment,
            )?
            .to_string();
        let removed = {
            let mut state = self.shared.lock();
            let slot = state.envs.get(&name).ok_or_else(|| BatchError::NotFound {
                what: "compute environment",
                name: name.clone(),
            })?;
            if slot.env.state == OnOff::Enabled {
                return Err(BatchError::Conflict(format!(
                    "compute environment {name} must be DISABLED before it is deleted"
                )));
            }
            let arn = slot.env.compute_environment_arn.clone();
            if let Some(queue) = state.queues.values().find(|q| {
                q.queue
                    .compute_environment_order
                    .iter()
                    .any(|o| o.compute_environment == arn)
            }) {
                return Err(BatchError::Conflict(format!(
                    "compute environment {name} is still used by job queue {}",
                    queue.queue.job_queue_name
                )));
            }
            state.envs.remove(&name).expect("checked above")
        };
        let record = Record::Delete {
            table: Table::ComputeEnvironments,
            key: name.clone(),
        };
        if let Err(e) = self.shared.store.write(vec![record]).await {
            self.shared.lock().envs.insert(name, removed);
            return Err(e.into());
        }
        Ok(())
    }

    /// CreateJobQueue.
    pub async fn create_job_queue(&self, request: CreateJobQueue) -> Result<JobQueue, BatchError> {
        let name = request.job_queue_name.clone();
        validate::name("jobQueueName", &name)?;
        check_priority(request.priority)?;
        let queue = {
            let mut state = self.shared.lock();
            let order = resolve_order(
                &self.shared.config,
                &state,
                &request.compute_environment_order,
            )?;
            if state.queues.contains_key(&name) {
                return Err(BatchError::Conflict(format!(
                    "Object already exists: job queue {name}"
                )));
            }
            if state.queues.len() >= MAX_QUEUES {
                return Err(BatchError::Conflict(format!(
                    "at most {MAX_QUEUES} job queues"
                )));
            }
            let queue = JobQueue {
                job_queue_arn: self.shared.config.arn(ResourceKind::JobQueue, &name),
                job_queue_name: name.clone(),
                state: request.state.unwrap_or(OnOff::Enabled),
                status: Status::Valid,
                status_reason: Some("JobQueue Healthy".into()),
                priority: request.priority,
                compute_environment_order: order,
                tags: request.tags,
                extra: request.extra,
            };
            state.queues.insert(
                name.clone(),
                QueueSlot {
                    queue: queue.clone(),
                    runnable: Default::default(),
                },
            );
            queue
        };
        if let Err(e) = self
            .shared
            .store
            .write(vec![Record::put(Table::JobQueues, &name, &queue)])
            .await
        {
            self.shared.lock().queues.remove(&name);
            return Err(e.into());
        }
        Ok(queue)
    }

    /// DescribeJobQueues: the named ones (names or ARNs), or all.
    pub fn describe_job_queues(&self, names: &[String]) -> Vec<JobQueue> {
        let state = self.shared.lock();
        if names.is_empty() {
            return state.queues.values().map(|q| q.queue.clone()).collect();
        }
        names
            .iter()
            .filter_map(|n| {
                let name = self
                    .shared
                    .config
                    .resource_name(ResourceKind::JobQueue, "jobQueues", n)
                    .ok()?;
                state.queues.get(name)
            })
            .map(|q| q.queue.clone())
            .collect()
    }

    /// UpdateJobQueue: state, priority, environments.
    pub async fn update_job_queue(&self, request: UpdateJobQueue) -> Result<JobQueue, BatchError> {
        let name = self
            .shared
            .config
            .resource_name(ResourceKind::JobQueue, "jobQueue", &request.job_queue)?
            .to_string();
        if let Some(priority) = request.priority {
            check_priority(priority)?;
        }
        let (before, after) = {
            let mut state = self.shared.lock();
            let order = match &request.compute_environment_order {
                Some(order) => Some(resolve_order(&self.shared.config, &state, order)?),
                None => None,
            };
            let slot = state
                .queues
                .get_mut(&name)
                .ok_or_else(|| BatchError::NotFound {
                    what: "job queue",
                    name: name.clone(),
                })?;
            let before = slot.queue.clone();
            let mut after = before.clone();
            after.state = request.state.unwrap_or(after.state);
            after.priority = request.priority.unwrap_or(after.priority);
            if let Some(order) = order {
                after.compute_environment_order = order;
            }
            slot.queue = after.clone();
            (before, after)
        };
        if let Err(e) = self
            .shared
            .store
            .write(vec![Record::put(Table::JobQueues, &name, &after)])
            .await
        {
            if let Some(slot) = self.shared.lock().queues.get_mut(&name) {
                slot.queue = before;
            }
            return Err(e.into());
        }
        self.shared.wake.notify_one();
        Ok(after)
    }

    /// DeleteJobQueue: it must be DISABLED and hold no job that has not ended.
    pub async fn delete_job_queue(&self, queue: &str) -> Result<(), BatchError> {
        let name = self
            .shared
            .config
            .resource_name(ResourceKind::JobQueue, "jobQueue", queue)?
            .to_string();
        let removed = {
            let mut state = self.shared.lock();
            let slot = state
                .queues
                .get(&name)
                .ok_or_else(|| BatchError::NotFound {
                    what: "job queue",
                    name: name.clone(),
                })?;
            if slot.queue.state == OnOff::Enabled {
                return Err(BatchError::Conflict(format!(
                    "job queue {name} must be DISABLED before it is deleted"
                )));
            }
            let arn = &slot.queue.job_queue_arn;
            let active = state
                .jobs
                .values()
                .filter(|j| j.job_queue == *arn && !j.status.is_terminal())
                .count();
            if active > 0 {
                return Err(BatchError::Conflict(format!(
                    "job queue {name} still has {active} jobs that have not finished; cancel or terminate them first"
                )));
            }
            state.queues.remove(&name).expect("checked above")
        };
        let record = Record::Delete {
            table: Table::JobQueues,
            key: name.clone(),
        };
        if let Err(e) = self.shared.store.write(vec![record]).await {
            self.shared.lock().queues.insert(name, removed);
            return Err(e.into());
        }
        Ok(())
    }

    /// RegisterJobDefinition: a new revision of the name.
    pub async fn register_job_definition(
        &self,
        request: RegisterJobDefinition,
    ) -> Result<JobDefinition, BatchError> {
        let name = request.job_definition_name.clone();
        validate::name("jobDefinitionName", &name)?;
        if request.kind != "container" {
            return Err(BatchError::invalid(
                "type",
                format!(
                    "only \"container\" job definitions are supported, got {:?}",
                    request.kind
                ),
            ));
        }
        if let Some(member) = UNSUPPORTED_PROPERTIES
            .into_iter()
            .find(|m| request.extra.contains_key(*m))
        {
            return Err(BatchError::invalid(
                member,
                "is not supported: wasmbatch runs container jobs; use containerProperties",
            ));
        }
        if let Some(priority) = request.extra.get("schedulingPriority") {
            let priority = priority.as_i64().ok_or_else(|| {
                BatchError::invalid(
                    "schedulingPriority",
                    format!("must be a whole number, got {priority}"),
                )
            })?;
            validate::scheduling_priority("schedulingPriority", priority)?;
        }
        validate::parameters("parameters", &request.parameters)?;
        validate::tags("tags", &request.tags)?;
        let container = request
            .container_properties
            .as_ref()
            .ok_or_else(|| BatchError::invalid("containerProperties", "is required"))?;
        validate::command("containerProperties.command", &container.command)?;
        match &container.image {
            Some(image) => check_image("containerProperties.image", image)?,
            None => {
                return Err(BatchError::invalid(
                    "containerProperties.image",
                    "is required: the module to run",
                ));
            }
        }
        let resources = validate::resources(
            "containerProperties.resourceRequirements",
            &container.resource_requirements,
        )?;
        let max_mib = self.shared.executor.config().max_memory_bytes >> 20;
        if let Some(memory) = resources.memory_mib.filter(|&m| m > max_mib) {
            let i = container
                .resource_requirements
                .iter()
                .position(|r| r.kind == "MEMORY")
                .unwrap_or_default();
            return Err(BatchError::invalid(
                format!("containerProperties.resourceRequirements[{i}].value"),
                format!("MEMORY {memory} MiB is more than a job may have here, {max_mib} MiB"),
            ));
        }
        check_environment("containerProperties.environment", &container.environment)?;
        validate::volumes(
            "containerProperties",
            &container.volumes,
            &container.mount_points,
        )?;
        if let Some(retry) = &request.retry_strategy {
            validate::retry_strategy(retry)?;
        }
        if let Some(timeout) = &request.timeout {
            validate::timeout(timeout)?;
        }
        let definition = {
            let mut state = self.shared.lock();
            let revisions = state.definitions.entry(name.clone()).or_default();
            let revision = revisions.len() as u32 + 1;
            let definition = JobDefinition {
                job_definition_arn: self
                    .shared
                    .config
                    .arn(ResourceKind::JobDefinition, &format!("{name}:{revision}")),
                job_definition_name: name.clone(),
                revision,
                status: "ACTIVE".into(),
                kind: request.kind,
                parameters: request.parameters,
                retry_strategy: request.retry_strategy,
                container_properties: request.container_properties,
                timeout: request.timeout,
                tags: request.tags,
                propagate_tags: request.propagate_tags,
                extra: request.extra,
            };
            revisions.push(definition.clone());
            definition
        };
        let key = format!("{name}:{}", definition.revision);
        if let Err(e) = self
            .shared
            .store
            .write(vec![Record::put(Table::JobDefinitions, key, &definition)])
            .await
        {
            if let Some(revisions) = self.shared.lock().definitions.get_mut(&name) {
                revisions.retain(|d| d.revision != definition.revision);
            }
            return Err(e.into());
        }
        Ok(definition)
    }

    /// The ARNs (`…:volume/<path>`) of the host directories a definition would mount, each path
    /// as the scheduler resolves it under the volume root; refuses a path that would leave it.
    pub fn volume_arns(&self, request: &RegisterJobDefinition) -> Result<Vec<String>, BatchError> {
        let Some(properties) = &request.container_properties else {
            return Ok(Vec::new());
        };
        let mut arns = Vec::new();
        for (i, volume) in properties.volumes.iter().enumerate() {
            let Some(source) = volume.host.as_ref().and_then(|h| h.source_path.as_deref()) else {
                continue;
            };
            let field = format!("containerProperties.volumes[{i}].host.sourcePath");
            let path = validate::volume_path(&field, source)?;
            let path: Vec<&str> = path.iter().filter_map(|c| c.to_str()).collect();
            arns.push(
                self.shared
                    .config
                    .arn(ResourceKind::Volume, &path.join("/")),
            );
        }
        Ok(arns)
    }

    /// DescribeJobDefinitions: by `name`, `name:revision` or ARN, or by name and status, or all.
    pub fn describe_job_definitions(
        &self,
        definitions: &[String],
        name: Option<&str>,
        status: Option<&str>,
    ) -> Vec<JobDefinition> {
        let state = self.shared.lock();
        state
            .definitions
            .values()
            .flatten()
            .filter(|d| {
                definitions.is_empty()
                    || definitions.iter().any(|wanted| {
                        let Ok(wanted) = self.shared.config.resource_name(
                            ResourceKind::JobDefinition,
                            "jobDefinitions",
                            wanted,
                        ) else {
                            return false;
                        };
                        wanted == d.job_definition_name
                            || wanted == format!("{}:{}", d.job_definition_name, d.revision)
                    })
            })
            .filter(|d| name.is_none_or(|n| n == d.job_definition_name))
            .filter(|d| status.is_none_or(|s| s.eq_ignore_ascii_case(&d.status)))
            .cloned()
            .collect()
    }

    /// DeregisterJobDefinition: `name:revision` or ARN becomes INACTIVE.
    pub async fn deregister_job_definition(&self, definition: &str) -> Result<(), BatchError> {
        let named = self.shared.config.resource_name(
            ResourceKind::JobDefinition,
            "jobDefinition",
            definition,
        )?;
        let (name, revision) = parse_revision(named).ok_or_else(|| {
            BatchError::invalid(
                "jobDefinition",
                format!("expected name:revision or an ARN, got {definition:?}"),
            )
        })?;
        let updated = {
            let mut state = self.shared.lock();
            let found = state
                .definitions
                .get_mut(&name)
                .and_then(|revisions| revisions.get_mut(revision as usize - 1))
                .ok_or_else(|| BatchError::NotFound {
                    what: "job definition",
                    name: definition.to_string(),
                })?;
            found.status = "INACTIVE".into();
            found.clone()
        };
        let key = format!("{name}:{revision}");
        self.shared
            .store
            .write(vec![Record::put(Table::JobDefinitions, key, &updated)])
            .await?;
        Ok(())
    }

    /// Every named module.
    pub fn modules(&self) -> Vec<ModuleInfo> {
        self.shared.modules.list()
    }

    /// One named module.
    pub fn module(&self, name: &str) -> Option<ModuleInfo> {
        self.shared.modules.get(name)
    }

    /// Removes a module name (and its bytes, where no other name uses them). Jobs that need it
    /// later fail, saying so.
    pub async fn delete_module(&self, name: &str) -> Result<ModuleInfo, BatchError> {
        self.shared
            .modules
            .delete(name)
            .await?
            .ok_or_else(|| BatchError::NotFound {
                what: "module",
                name: name.to_string(),
            })
    }
}

fn check_priority(priority: i32) -> Result<(), BatchError> {
    if !(0..=1000).contains(&priority) {
        return Err(BatchError::invalid(
            "priority",
            format!("must be between 0 and 1000, got {priority}"),
        ));
    }
    Ok(())
}

/// Checks a queue's environments and returns them with ARNs, in ascending order.
fn resolve_order(
    config: &BatchConfig,
    state: &super::State,
    order: &[ComputeEnvironmentOrder],
) -> Result<Vec<ComputeEnvironmentOrder>, BatchError> {
    if order.is_empty() || order.len() > 3 {
        return Err(BatchError::invalid(
            "computeEnvironmentOrder",
            format!("must list 1 to 3 compute environments, got {}", order.len()),
        ));
    }
    let mut resolved = Vec::with_capacity(order.len());
    for (i, entry) in order.iter().enumerate() {
        let field = format!("computeEnvironmentOrder[{i}].computeEnvironment");
        let name = config.resource_name(
            ResourceKind::ComputeEnvironment,
            &field,
            &entry.compute_environment,
        )?;
        let slot = state.envs.get(name).ok_or_else(|| {
            BatchError::invalid(
                format!("computeEnvironmentOrder[{i}].computeEnvironment"),
                format!(
                    "compute environment {:?} does not exist",
                    entry.compute_environment
                ),
            )
        })?;
        if resolved
            .iter()
            .any(|o: &ComputeEnvironmentOrder| o.order == entry.order)
        {
            return Err(BatchError::invalid(
                format!("computeEnvironmentOrder[{i}].order"),
                format!("order {} is given twice", entry.order),
            ));
        }
        resolved.push(ComputeEnvironmentOrder {
            order: entry.order,
            compute_environment: slot.env.compute_environment_arn.clone(),
        });
    }
    resolved.sort_by_key(|o| o.order);
    Ok(resolved)
}

/// `name` or `name@sha256:<64 hex>`.
pub(crate) fn check_image(field: &str, image: &str) -> Result<(), ValidationError> {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    validate::name(field, name).map_err(|e| ValidationError {
        field: e.field,
        problem: format!(
            "module reference {image:?} must be NAME or NAME@sha256:<hex>: {}",
            e.problem
        ),
    })?;
    if let Some(digest) = digest
        && crate::engine::Digest::parse(digest).is_none()
    {
        return Err(ValidationError {
            field: field.to_string(),
            problem: format!("{digest:?} is not sha256:<64 hex digits>"),
        });
    }
    Ok(())
}

pub(crate) fn check_environment(
    field: &str,
    environment: &[crate::model::KeyValuePair],
) -> Result<(), ValidationError> {
    for (i, pair) in environment.iter().enumerate() {
        // A NUL would cut the variable short: WASI hands it over as a NUL-terminated string.
        if pair.value.as_deref().is_some_and(|v| v.contains('\0')) {
            return Err(ValidationError {
                field: format!("{field}[{i}].value"),
                problem: "must not contain a NUL character".into(),
            });
        }
        match &pair.name {
            Some(name)
                if !name.is_empty()
                    && !name.contains(['=', '\0'])
                    && !name.starts_with("AWS_BATCH") => {}
            Some(name) if name.starts_with("AWS_BATCH") => {
                return Err(ValidationError {
                    field: format!("{field}[{i}].name"),
                    problem: format!("{name:?}: names starting with AWS_BATCH are reserved"),
                });
            }
            other => {
                return Err(ValidationError {
                    field: format!("{field}[{i}].name"),
                    problem: format!("must be a non-empty name without '=' or NUL, got {other:?}"),
                });
            }
        }
    }
    Ok(())
}

/// `name` and `revision` from `name:revision` (as [`BatchConfig::resource_name`] reads a
/// definition's name or ARN).
pub(crate) fn parse_revision(definition: &str) -> Option<(String, u32)> {
    let (name, revision) = definition.rsplit_once(':')?;
    let revision: u32 = revision.parse().ok().filter(|r| *r > 0)?;
    Some((name.to_string(), revision))
}

/// What an ARN of this service names.
enum Tagged {
    Environment(String),
    Queue(String),
    Definition(String, u32),
    Job(String),
}

fn tagged(config: &BatchConfig, arn: &str) -> Result<Tagged, BatchError> {
    let (kind, name) = config.parse_arn("resourceArn", arn)?;
    Ok(match kind {
        ResourceKind::ComputeEnvironment => Tagged::Environment(name.to_string()),
        ResourceKind::JobQueue => Tagged::Queue(name.to_string()),
        ResourceKind::JobDefinition => parse_revision(name)
            .map(|(n, r)| Tagged::Definition(n, r))
            .ok_or_else(|| {
                BatchError::invalid(
                    "resourceArn",
                    format!("{arn:?}: a job definition's ARN names a revision (…/NAME:REVISION)"),
                )
            })?,
        ResourceKind::Job => Tagged::Job(name.to_string()),
        ResourceKind::Module | ResourceKind::Volume => {
            return Err(BatchError::invalid(
                "resourceArn",
                format!("{arn:?}: modules and volumes take no tags"),
            ));
        }
    })
}

impl Batch {
    /// The tags of a resource (by ARN).
    pub fn list_tags(
        &self,
        arn: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, BatchError> {
        let state = self.shared.lock();
        let not_found = || BatchError::NotFound {
            what: "resource",
            name: arn.to_string(),
        };
        match tagged(&self.shared.config, arn)? {
            Tagged::Environment(name) => state.envs.get(&name).map(|s| s.env.tags.clone()),
            Tagged::Queue(name) => state.queues.get(&name).map(|q| q.queue.tags.clone()),
            Tagged::Definition(name, revision) => state
                .definitions
                .get(&name)
                .and_then(|r| r.get(revision as usize - 1))
                .map(|d| d.tags.clone()),
            Tagged::Job(id) => state.jobs.get(&id).map(|j| j.tags.clone()),
        }
        .ok_or_else(not_found)
    }

    /// TagResource (`add`) and UntagResource (`remove`), applied and persisted together.
    pub async fn tag_resource(
        &self,
        arn: &str,
        add: std::collections::BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), BatchError> {
        validate::tags("tags", &add)?;
        let target = tagged(&self.shared.config, arn)?;
        let committed = {
            let mut state = self.shared.lock();
            let not_found = || BatchError::NotFound {
                what: "resource",
                name: arn.to_string(),
            };
            let apply =
                |tags: &mut std::collections::BTreeMap<String, String>| -> Result<(), BatchError> {
                    let mut next = tags.clone();
                    for key in remove {
                        next.remove(key);
                    }
                    next.extend(add.clone());
                    if next.len() > validate::MAX_TAGS {
                        return Err(BatchError::invalid(
                            "tags",
                            format!(
                                "at most {} tags per resource, would be {}",
                                validate::MAX_TAGS,
                                next.len()
                            ),
                        ));
                    }
                    *tags = next;
                    Ok(())
                };
            // Sent under the lock, so the store sees this change in order with the others.
            let records = match target {
                Tagged::Environment(name) => {
                    let slot = state.envs.get_mut(&name).ok_or_else(not_found)?;
                    apply(&mut slot.env.tags)?;
                    vec![Record::put(Table::ComputeEnvironments, &name, &slot.env)]
                }
                Tagged::Queue(name) => {
                    let slot = state.queues.get_mut(&name).ok_or_else(not_found)?;
                    apply(&mut slot.queue.tags)?;
                    vec![Record::put(Table::JobQueues, &name, &slot.queue)]
                }
                Tagged::Definition(name, revision) => {
                    let definition = state
                        .definitions
                        .get_mut(&name)
                        .and_then(|r| r.get_mut(revision as usize - 1))
                        .ok_or_else(not_found)?;
                    apply(&mut definition.tags)?;
                    vec![Record::put(
                        Table::JobDefinitions,
                        format!("{name}:{revision}"),
                        &*definition,
                    )]
                }
                Tagged::Job(id) => {
                    let job = state.jobs.get_mut(&id).ok_or_else(not_found)?;
                    apply(&mut job.tags)?;
                    super::records(&state, &[id])
                }
            };
            self.shared.store.send(records)
        };
        committed.await?;
        Ok(())
    }
}
