//! Job queues: CreateJobQueue, DescribeJobQueues, UpdateJobQueue and DeleteJobQueue, each
//! change made through the one write path ([`Batch::change`]); and the rules on a queue's
//! scheduling policy (it must exist; a fair-share queue's can be replaced, never removed; a FIFO
//! queue never gets one) and its time-limit actions.

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
        validate::job_state_time_limit_actions(&request.job_state_time_limit_actions)?;
        let config = &self.shared.config;
        self.change(|state| {
            let order = resolve_order(config, state, &request.compute_environment_order)?;
            let policy = match &request.scheduling_policy_arn {
                Some(reference) => Some(resolve_policy(config, state, reference)?),
                None => None,
            };
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
                scheduling_policy_arn: policy,
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

    /// UpdateJobQueue: state, priority, environments, scheduling policy (replaced on a
    /// fair-share queue, as AWS allows; refused on a FIFO queue), time-limit actions.
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
        if let Some(actions) = &request.job_state_time_limit_actions {
            validate::job_state_time_limit_actions(actions)?;
        }
        self.change(|state| {
            let order = match &request.compute_environment_order {
                Some(order) => Some(resolve_order(config, state, order)?),
                None => None,
            };
            let slot = state.queues.get(&name).ok_or_else(|| BatchError::NotFound {
                what: "job queue",
                name: name.clone(),
            })?;
            let policy = match &request.scheduling_policy_arn {
                None => None,
                Some(_) if slot.queue.scheduling_policy_arn.is_none() => {
                    return Err(BatchError::invalid(
                        "schedulingPolicyArn",
                        format!(
                            "job queue {name} is a FIFO queue (it was created without a scheduling policy) and cannot get one, as on AWS; create a queue with schedulingPolicyArn instead"
                        ),
                    ));
                }
                Some(reference) if reference.is_empty() => {
                    return Err(BatchError::invalid(
                        "schedulingPolicyArn",
                        format!(
                            "job queue {name}'s scheduling policy can be replaced by another but not removed, as on AWS"
                        ),
                    ));
                }
                Some(reference) => Some(resolve_policy(config, state, reference)?),
            };
            let scheduling = policy.is_some() || request.job_state_time_limit_actions.is_some();
            let queue = &mut state
                .queues
                .get_mut(&name)
                .expect("looked up above, under the same lock")
                .queue;
            queue.state = request.state.unwrap_or(queue.state);
            queue.priority = request.priority.unwrap_or(queue.priority);
            if let Some(order) = order {
                queue.compute_environment_order = order;
            }
            if let Some(policy) = policy {
                queue.scheduling_policy_arn = Some(policy);
            }
            if let Some(actions) = &request.job_state_time_limit_actions {
                queue.job_state_time_limit_actions = actions.clone();
            }
            let updated = queue.clone();
            state.touch_queue(&name);
            if scheduling {
                state.scheduling_changed();
            }
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
                .filter(|j| *j.submission.job_queue == *arn.as_str() && !j.status.is_terminal())
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

/// The canonical ARN of the scheduling policy a queue names by `reference` (a name or one of
/// our ARNs), which must exist.
fn resolve_policy(
    config: &BatchConfig,
    state: &State,
    reference: &str,
) -> Result<String, BatchError> {
    let field = "schedulingPolicyArn";
    let name = config.resource_name(ResourceKind::SchedulingPolicy, field, reference)?;
    let policy = state.policies.get(name).ok_or_else(|| {
        BatchError::invalid(
            field,
            format!("scheduling policy {reference:?} does not exist"),
        )
    })?;
    Ok(policy.arn.clone())
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
