//! Start-up: reads everything stored and rebuilds the in-memory state and its indexes. An
//! attempt that was running when the previous process died is recorded as failed ("the host
//! restarted"), then retried if its job has attempts left, else the job is FAILED.

use crate::model::retry::{self, FailedAttempt, RetryDecision};
use crate::model::{
    Attempt, ComputeEnvironment, EpochMillis, Job, JobDefinition, JobQueue, JobStatus,
};
use crate::store::{Record, Store, StoreError, Table};

use super::BatchConfig;
use super::jobs::child_dependencies;
use super::state::{EnvSlot, QueueSlot, State};

/// The statusReason of an attempt cut short by a restart.
pub(crate) const HOST_RESTARTED: &str =
    "Host restarted: the attempt was running when wasmbatch stopped";

/// The recovered state, and the records that make the store agree with it.
pub(crate) fn load(
    config: &BatchConfig,
    store: &Store,
    now: EpochMillis,
) -> Result<(State, Vec<Record>), StoreError> {
    let mut state = State::empty();
    for (name, env) in store.load::<ComputeEnvironment>(Table::ComputeEnvironments)? {
        let memory_mib = env
            .memory_mib
            .unwrap_or(config.default_environment_memory_mib);
        state.envs.insert(
            name,
            EnvSlot {
                env,
                memory_mib,
                used_vcpus: 0.0,
                used_memory_mib: 0,
            },
        );
    }
    for (name, queue) in store.load::<JobQueue>(Table::JobQueues)? {
        state.queues.insert(
            name,
            QueueSlot {
                queue,
                runnable: Default::default(),
            },
        );
    }
    for (_, definition) in store.load::<JobDefinition>(Table::JobDefinitions)? {
        state
            .definitions
            .entry(definition.job_definition_name.clone())
            .or_default()
            .push(definition);
    }
    for revisions in state.definitions.values_mut() {
        revisions.sort_by_key(|d| d.revision);
    }
    let mut jobs: Vec<Job> = store
        .load::<Job>(Table::Jobs)?
        .into_iter()
        .map(|(_, job)| job)
        .collect();
    jobs.sort_by_key(|j| j.sequence);
    state.next_sequence = jobs.last().map_or(1, |j| j.sequence + 1);

    let mut interrupted = Vec::new();
    let mut ended = Vec::new();
    for job in &mut jobs {
        if matches!(job.status, JobStatus::Starting | JobStatus::Running) {
            interrupt(job, now);
            interrupted.push(job.job_id.clone());
            if job.status.is_terminal() {
                ended.push(job.job_id.clone());
            }
        }
    }
    let order: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    state.jobs = jobs
        .into_iter()
        .map(|j| (j.job_id.clone(), Box::new(j)))
        .collect();
    for id in &interrupted {
        state.touch_job(id);
    }

    for id in order {
        let job = &state.jobs[&id];
        match job.status {
            JobStatus::Runnable => {
                state.requeue(&id);
            }
            JobStatus::Pending | JobStatus::Submitted if job.is_array_parent() => {
                let size = job.array_properties.and_then(|a| a.size).unwrap_or(0);
                let (mut ok, mut failed) = (0, 0);
                for index in 0..size {
                    match state.jobs.get(&format!("{id}:{index}")).map(|c| c.status) {
                        Some(JobStatus::Succeeded) => ok += 1,
                        Some(JobStatus::Failed) => failed += 1,
                        _ => {}
                    }
                }
                state.array_done.insert(id.clone(), (ok, failed));
            }
            JobStatus::Pending | JobStatus::Submitted => {
                let dependencies = match (
                    job.array_parent(),
                    job.array_properties.and_then(|a| a.index),
                ) {
                    (Some(parent), Some(index)) => {
                        let parent_deps = state
                            .jobs
                            .get(parent)
                            .map(|p| p.depends_on.clone())
                            .unwrap_or_default();
                        child_dependencies(parent, index, &parent_deps)
                    }
                    _ => job
                        .depends_on
                        .iter()
                        .filter_map(|d| d.job_id.clone())
                        .collect(),
                };
                let mut unmet = 0;
                let mut failed = None;
                for dependency in dependencies {
                    match state.jobs.get(&dependency).map(|d| d.status) {
                        Some(JobStatus::Succeeded) | None => {}
                        Some(JobStatus::Failed) => failed = Some(dependency),
                        Some(_) => {
                            unmet += 1;
                            state
                                .dependents
                                .entry(dependency)
                                .or_default()
                                .push(id.clone());
                        }
                    }
                }
                if let Some(dependency) = failed {
                    state.fail_one(&id, &format!("Dependent Job failed: {dependency}"), now);
                    ended.push(id);
                } else if unmet == 0 {
                    state.make_runnable(&id);
                } else {
                    state.unmet.insert(id, unmet);
                }
            }
            _ => {}
        }
    }
    state.settle(ended, now);
    let records = state.take_records();
    Ok((state, records))
}

/// Records the interrupted attempt and decides what happens to the job.
fn interrupt(job: &mut Job, now: EpochMillis) {
    let number = job.attempts.len() as u32 + 1;
    job.attempts.push(Attempt {
        started_at: job.started_at,
        stopped_at: Some(now),
        exit_code: None,
        reason: Some("HostRestarted".into()),
        status_reason: Some(HOST_RESTARTED.into()),
        ..Attempt::default()
    });
    let failed = FailedAttempt {
        exit_code: None,
        reason: Some("HostRestarted"),
        status_reason: HOST_RESTARTED,
    };
    let decision = if job.is_terminated {
        RetryDecision::Exit
    } else {
        retry::decide(job.retry_strategy.as_ref(), number, failed)
    };
    match decision {
        // Queued by the index rebuild, which sees RUNNABLE.
        RetryDecision::Retry => job.status = JobStatus::Runnable,
        RetryDecision::Exit => {
            job.status = JobStatus::Failed;
            job.status_reason = Some(HOST_RESTARTED.into());
            job.stopped_at = Some(now);
        }
    }
}
