//! Job queues: CreateJobQueue, DescribeJobQueues, UpdateJobQueue and DeleteJobQueue, each
//! change made through the one write path ([`Batch::change`]).

use crate::model::arn::ResourceKind;
use crate::model::validate;
use crate::model::{
    ComputeEnvironmentOrder, CreateJobQueue, JobQueue, State as OnOff, Status, UpdateJobQueue,
};

use super::state::{QueueSlot, State};
use super::{Batch, BatchConfig, BatchError};

/// Most job queues (AWS's quota).
const MAX_QUEUES: usize = 50;

impl Batch {
    /// CreateJobQueue.
    pub async fn create_job_queue(&self, request: CreateJobQueue) -> Result<JobQueue, BatchError> {
        let name = request.job_queue_name.clone();
        validate::name("jobQueueName", &name)?;
        validate::priority(request.priority)?;
        validate::compute_environment_order(&request.compute_environment_order)?;
        let config = &self.shared.config;
        self.change(|state| {
            let order = resolve_order(config, state, &request.compute_environment_order)?;
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
                job_queue_arn: config.arn(ResourceKind::JobQueue, &name),
                job_queue_name: name.clone(),
                state: request.state.unwrap_or(OnOff::Enabled),
                status: Status::Valid,
                status_reason: Some("JobQueue Healthy".into()),
                priority: request.priority,
                compute_environment_order: order,
                scheduling_policy_arn: request.scheduling_policy_arn,
                job_state_time_limit_actions: request.job_state_time_limit_actions,
                tags: request.tags,
                extra: request.extra,
            };
            state
                .queues
                .insert(name.clone(), QueueSlot::new(queue.clone()));
            state.touch_queue(&name);
            state.scheduling_changed();
            Ok(queue)
        })
        .await
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
        let config = &self.shared.config;
        let name = config
            .resource_name(ResourceKind::JobQueue, "jobQueue", &request.job_queue)?
            .to_string();
        if let Some(priority) = request.priority {
            validate::priority(priority)?;
        }
        if let Some(order) = &request.compute_environment_order {
            validate::compute_environment_order(order)?;
        }
        self.change(|state| {
            let order = match &request.compute_environment_order {
                Some(order) => Some(resolve_order(config, state, order)?),
                None => None,
            };
            let slot = state
                .queues
                .get_mut(&name)
                .ok_or_else(|| BatchError::NotFound {
                    what: "job queue",
                    name: name.clone(),
                })?;
            let queue = &mut slot.queue;
            queue.state = request.state.unwrap_or(queue.state);
            queue.priority = request.priority.unwrap_or(queue.priority);
            if let Some(order) = order {
                queue.compute_environment_order = order;
            }
            let updated = queue.clone();
            state.touch_queue(&name);
            Ok(updated)
        })
        .await
    }

    /// DeleteJobQueue: it must be DISABLED and hold no job that has not ended.
    pub async fn delete_job_queue(&self, queue: &str) -> Result<(), BatchError> {
        let name = self
            .shared
            .config
            .resource_name(ResourceKind::JobQueue, "jobQueue", queue)?
            .to_string();
        self.change(|state| {
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
                .filter(|j| j.submission.job_queue == *arn && !j.status.is_terminal())
                .count();
            if active > 0 {
                return Err(BatchError::Conflict(format!(
                    "job queue {name} still has {active} jobs that have not finished; cancel or terminate them first"
                )));
            }
            state.queues.remove(&name);
            state.touch_queue(&name);
            Ok(())
        })
        .await
    }
}

/// A queue's environments with ARNs, in ascending order; each must exist.
fn resolve_order(
    config: &BatchConfig,
    state: &State,
    order: &[ComputeEnvironmentOrder],
) -> Result<Vec<ComputeEnvironmentOrder>, BatchError> {
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
                &field,
                format!(
                    "compute environment {:?} does not exist",
                    entry.compute_environment
                ),
            )
        })?;
        resolved.push(ComputeEnvironmentOrder {
            order: entry.order,
            compute_environment: slot.env.compute_environment_arn.clone(),
        });
    }
    resolved.sort_by_key(|o| o.order);
    Ok(resolved)
}
