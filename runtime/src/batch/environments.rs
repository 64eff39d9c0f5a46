//! Compute environments: CreateComputeEnvironment, DescribeComputeEnvironments,
//! UpdateComputeEnvironment and DeleteComputeEnvironment, each change made through the one write
//! path ([`Batch::change`]).

use crate::model::arn::ResourceKind;
use crate::model::validate;
use crate::model::{
    ComputeEnvironment, CreateComputeEnvironment, State as OnOff, Status, UpdateComputeEnvironment,
};

use super::state::EnvSlot;
use super::{Batch, BatchError};

/// Most compute environments (AWS's quota).
const MAX_ENVIRONMENTS: usize = 50;

impl Batch {
    /// CreateComputeEnvironment.
    pub async fn create_compute_environment(
        &self,
        request: CreateComputeEnvironment,
    ) -> Result<ComputeEnvironment, BatchError> {
        validate::compute_environment(&request)?;
        let config = &self.shared.config;
        let name = request.compute_environment_name.clone();
        let env = ComputeEnvironment {
            compute_environment_arn: config.arn(ResourceKind::ComputeEnvironment, &name),
            compute_environment_name: name.clone(),
            kind: request.kind,
            state: request.state.unwrap_or(OnOff::Enabled),
            status: Status::Valid,
            status_reason: Some("ComputeEnvironment Healthy".into()),
            compute_resources: request.compute_resources,
            memory_mib: request.memory_mib,
            tags: request.tags,
            live_capacity: None,
            extra: request.extra,
        };
        let memory_mib = env
            .memory_mib
            .unwrap_or(config.default_environment_memory_mib);
        self.change(|state| {
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
            state.envs.insert(
                name.clone(),
                EnvSlot {
                    env: env.clone(),
                    memory_mib,
                    used_vcpus: 0.0,
                    used_memory_mib: 0,
                },
            );
            state.touch_environment(&name);
            Ok(env)
        })
        .await
    }

    /// DescribeComputeEnvironments: the named ones (names or ARNs), or all when none is named.
    pub fn describe_compute_environments(&self, names: &[String]) -> Vec<ComputeEnvironment> {
        let state = self.shared.lock();
        let described = |slot: &super::state::EnvSlot| {
            let mut env = slot.env.clone();
            if env.kind == crate::model::ComputeEnvironmentType::Unmanaged {
                let mut live = crate::model::LiveCapacity::default();
                for worker in state
                    .workers
                    .values()
                    .filter(|w| w.environment == env.compute_environment_name && !w.recovered)
                {
                    live.workers += 1;
                    live.vcpus += worker.vcpus;
                    live.memory_mib += worker.memory_mib;
                    live.used_vcpus += worker.used_vcpus;
                }
                env.live_capacity = Some(live);
            }
            env
        };
        if names.is_empty() {
            return state.envs.values().map(described).collect();
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
            .map(described)
            .collect()
    }

    /// UpdateComputeEnvironment: its state and its vCPU capacity.
    pub async fn update_compute_environment(
        &self,
        request: UpdateComputeEnvironment,
    ) -> Result<ComputeEnvironment, BatchError> {
        let name = self.environment_name(&request.compute_environment)?;
        self.change(|state| {
            let slot = state
                .envs
                .get_mut(&name)
                .ok_or_else(|| BatchError::NotFound {
                    what: "compute environment",
                    name: name.clone(),
                })?;
            // Built aside and put in place whole: a bad member leaves the environment as it was.
            let mut after = slot.env.clone();
            if let Some(new_state) = request.state {
                after.state = new_state;
            }
            if let Some(update) = &request.compute_resources {
                update_resources(&mut after, update)?;
            }
            if let Some(role) = request.extra.get("serviceRole") {
                validate::service_role(role)?;
            }
            for (member, value) in &request.extra {
                after.extra.insert(member.clone(), value.clone());
            }
            slot.env = after.clone();
            state.touch_environment(&name);
            // A job set aside as too big for its queue may fit now.
            state.readmit_misfits();
            Ok(after)
        })
        .await
    }

    /// DeleteComputeEnvironment: it must be DISABLED and in no queue.
    pub async fn delete_compute_environment(&self, environment: &str) -> Result<(), BatchError> {
        let name = self.environment_name(environment)?;
        self.change(|state| {
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
            state.envs.remove(&name);
            state.touch_environment(&name);
            Ok(())
        })
        .await
    }
}

impl Batch {
    /// The name of the environment `reference` (a name or one of our ARNs) names, as
    /// UpdateComputeEnvironment and DeleteComputeEnvironment take it in `computeEnvironment`.
    fn environment_name(&self, reference: &str) -> Result<String, BatchError> {
        Ok(self
            .shared
            .config
            .resource_name(
                ResourceKind::ComputeEnvironment,
                "computeEnvironment",
                reference,
            )?
            .to_string())
    }
}

/// Applies UpdateComputeEnvironment's `computeResources` members to `env`.
fn update_resources(
    env: &mut ComputeEnvironment,
    update: &crate::model::Extra,
) -> Result<(), BatchError> {
    let resources = env.compute_resources.as_mut().ok_or_else(|| {
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
    Ok(())
}
