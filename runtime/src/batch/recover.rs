//! Start-up: reads everything stored and rebuilds the in-memory state and its indexes. An
//! attempt that was running when the previous process died is recorded as failed ("the host
//! restarted"), then retried if its job has attempts left, else the job is FAILED. A dependency
//! that is not stored any more was removed by retention, which removes only ended jobs; a job
//! still waiting on it saw it succeed (one that failed would have failed its dependents), so it
//! counts as met. An array
//! child stored whole (store formats 1 and 2) is moved to `array_children`, keeping only its
//! own part.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::model::retry::{self, FailedAttempt, RetryDecision};
use crate::model::scheduling::SchedulingPolicy;
use crate::model::{
    Attempt, ComputeEnvironment, EpochMillis, Job, JobDefinition, JobQueue, JobStatus,
};
use crate::store::{Record, Store, StoreError, Table};

use super::BatchConfig;
use super::job_slot::{JobSlot, SharedNames, StoredChild, Submission};
use super::jobs::child_dependencies;
use super::line::LineJob;
use super::state::{
    EnvSlot, Placement, QueueSlot, RemoteAttempt, State, WorkerSlot, job_key, line_job,
};

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
    // Loading a job is not a move; recovery's own moves (below) are.
    state.events.recording = false;
    let (first_event, next_event) = super::events::stored_range(store)?;
    state.events.resume(first_event, next_event, now);
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
    // Before the queues, which name them.
    for (name, policy) in store.load::<SchedulingPolicy>(Table::SchedulingPolicies)? {
        state.policies.insert(name, policy);
    }
    for (name, queue) in store.load::<JobQueue>(Table::JobQueues)? {
        state.queues.insert(name, QueueSlot::new(queue));
    }
    // Lines take their policies before any job is filed in them.
    state.scheduling_changed();
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
    let (mut jobs, moved) = load_jobs(store, &mut state.names)?;
    jobs.sort_by_key(|j| j.sequence);
    state.next_sequence = jobs.last().map_or(1, |j| j.sequence + 1);

    let mut interrupted = Vec::new();
    let mut ended = Vec::new();
    let mut remote = Vec::new();
    for job in &mut jobs {
        if matches!(job.status, JobStatus::Starting | JobStatus::Running) {
            if job.remote.is_some() && config.cluster_enabled() {
                // Its worker still runs it: its reports wait in JetStream, or its worker is
                // found lost once its lease passes (cluster::control).
                remote.push(job.job_id.clone());
                continue;
            }
            // A remote attempt with cluster mode off is abandoned like a local one.
            job.remote = None;
            interrupt(job, now);
            interrupted.push(job.job_id.clone());
            if job.status.is_terminal() {
                ended.push(job.job_id.to_string());
            }
        }
    }
    // Counted as children that ended by settle() below, so not again in the arrays' counts.
    let ended_here: HashSet<String> = ended.iter().cloned().collect();
    let order: Vec<String> = jobs.iter().map(|j| j.job_id.to_string()).collect();
    state.jobs = jobs
        .into_iter()
        .map(|j| (j.job_id.clone(), Box::new(j)))
        .collect();
    // Every job counted as the store had it (the interrupted as they are now), so what
    // recovery changes from here on is noted as a move, with an event.
    state.count_all();
    state.events.recording = true;
    for id in &interrupted {
        state.touch_job(id);
        state.note_event(id, Some(JobStatus::Running));
    }
    // Written in their new place as changed jobs, and gone from the old.
    let mut records = Vec::with_capacity(moved.len());
    for id in &moved {
        records.push(Record::Delete {
            table: Table::Jobs,
            key: job_key(&state.jobs[id.as_str()]),
        });
        state.touch_job(id);
    }

    for id in order {
        let job = &state.jobs[id.as_str()];
        match job.status {
            JobStatus::Runnable => {
                state.requeue(&id);
            }
            JobStatus::Pending | JobStatus::Submitted if job.is_array_parent() => {
                let size = job.array_properties.and_then(|a| a.size).unwrap_or(0);
                let (mut ok, mut failed) = (0, 0);
                for index in 0..size {
                    let child = format!("{id}:{index}");
                    if ended_here.contains(&child) {
                        continue;
                    }
                    match state.jobs.get(child.as_str()).map(|c| c.status) {
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
                    // A child's waits follow from its array's, which it shares.
                    (Some(parent), Some(index)) => {
                        child_dependencies(parent, index, &job.submission.details().depends_on)
                    }
                    _ => job
                        .submission
                        .details()
                        .depends_on
                        .iter()
                        .filter_map(|d| d.job_id.clone())
                        .collect(),
                };
                let mut unmet = 0;
                let mut failed = None;
                for dependency in dependencies {
                    match state.jobs.get(dependency.as_str()).map(|d| d.status) {
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
                    if state.waited_enough(&id, now) {
                        ended.push(id);
                    }
                } else {
                    state.unmet.insert(id, unmet);
                }
            }
            _ => {}
        }
    }
    state.settle(ended, now);
    state.index_all_ended();
    state.charge_past_usage(now);
    for id in remote {
        adopt_remote(&mut state, &id, now);
    }
    state.count_all();
    records.extend(state.take_records());
    Ok((state, records))
}

/// Puts a remote attempt that was running when the previous process stopped back in the state:
/// its capacity held on its worker (known only from this until it sends a heartbeat), its job
/// counted as running in its queue's line.
fn adopt_remote(state: &mut State, id: &str, now: EpochMillis) {
    let job = &state.jobs[id];
    let holder = job.remote.as_deref().expect("kept for it").clone();
    let queue = crate::model::arn::stored_name(
        crate::model::arn::ResourceKind::JobQueue,
        &job.submission.job_queue,
    )
    .to_string();
    let placement = Placement {
        job_id: id.to_string(),
        sequence: job.sequence,
        queue: queue.clone(),
        environment: holder.environment.clone(),
        worker: Some(holder.worker.clone()),
        vcpus: holder.vcpus,
        memory_mib: holder.memory_mib,
        log_stream_name: holder.log_stream_name.clone(),
        log_key: crate::logs::log_key(job.sequence, holder.attempt as usize),
        // The work as published names the module the worker was sent (for a registry image,
        // its module's digest: the manifest's is not journaled).
        image_digest: serde_json::from_str::<serde_json::Value>(&holder.work)
            .ok()
            .and_then(|work| crate::engine::Digest::parse(work["digest"].as_str()?)),
    };
    let started = job.status == JobStatus::Running;
    let line_job = LineJob {
        vcpus: holder.vcpus,
        ..line_job(job, &state.definitions)
    };
    if let Some(slot) = state.queues.get_mut(&queue) {
        slot.line.placed(line_job, now);
    }
    if let Some(env) = state.envs.get_mut(&holder.environment) {
        env.used_vcpus += holder.vcpus;
        env.used_memory_mib += holder.memory_mib;
    }
    let worker = state
        .workers
        .entry(holder.worker.clone())
        .or_insert_with(|| WorkerSlot {
            environment: holder.environment.clone(),
            session: holder.session.clone(),
            host: String::new(),
            vcpus: 0.0,
            memory_mib: 0,
            used_vcpus: 0.0,
            used_memory_mib: 0,
            last_heard: std::time::Instant::now(),
            last_heard_at: now,
            recovered: true,
            recent_attempt_ms: None,
        });
    worker.used_vcpus += holder.vcpus;
    worker.used_memory_mib += holder.memory_mib;
    state.remote.insert(
        id.to_string(),
        RemoteAttempt {
            placement,
            session: holder.session,
            attempt: holder.attempt,
            started,
            stop: None,
            output: (0, 0),
        },
    );
}

/// Every stored job, each array child holding its parent's submission; and the ids of the
/// children stored whole (formats 1 and 2) in `jobs`, which belong in `array_children` now.
fn load_jobs(
    store: &Store,
    names: &mut SharedNames,
) -> Result<(Vec<JobSlot>, Vec<String>), StoreError> {
    let mut whole_children = Vec::new();
    let mut jobs = Vec::new();
    for (_, job) in store.load::<Job>(Table::Jobs)? {
        if job.array_parent().is_some() {
            whole_children.push(job);
        } else {
            jobs.push(JobSlot::from_job(job, names));
        }
    }
    let submissions: HashMap<String, Arc<Submission>> = jobs
        .iter()
        .filter(|j| j.is_array_parent())
        .map(|j| (j.job_id.to_string(), j.submission.clone()))
        .collect();
    let orphan = |id: &str| {
        // Parents and children are written in one transaction and never removed apart.
        tracing::warn!(job = id, "an array child without its parent is left out");
    };
    let mut moved = Vec::new();
    for child in whole_children {
        let parent = child.array_parent().expect("sorted as a child");
        let Some(submission) = submissions.get(parent) else {
            orphan(&child.job_id);
            continue;
        };
        moved.push(child.job_id.clone());
        jobs.push(JobSlot::from_whole_child(child, submission.clone(), names));
    }
    for (_, child) in store.load::<StoredChild>(Table::ArrayChildren)? {
        let Some(submission) = submissions.get(child.parent()) else {
            orphan(&child.job_id);
            continue;
        };
        let submission = submission.clone();
        jobs.push(JobSlot::from_stored_child(child, submission));
    }
    Ok((jobs, moved))
}

/// Records the interrupted attempt and decides what happens to the job.
fn interrupt(job: &mut JobSlot, now: EpochMillis) {
    let number = job.attempts.len() as u32 + 1;
    job.attempts.push(Attempt {
        // A job's startedAt is set when an attempt starts running and kept until the next one
        // does: an attempt cut short while STARTING never ran, whatever an earlier one did.
        started_at: job.started_at.filter(|_| job.status == JobStatus::Running),
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
        retry::decide(
            job.submission.details().retry_strategy.as_ref(),
            number,
            failed,
        )
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An array parent `p` of `children.len()` children, each in the status given, one attempt
    /// each; a running child started at 500.
    fn array(children: &[&str]) -> Vec<Job> {
        let job = |id: String, sequence: u64, status: &str, array: serde_json::Value| -> Job {
            let mut job = json!({
                "jobId": id, "jobArn": id, "jobName": "p",
                "jobQueue": "arn:aws:batch:r:a:job-queue/q",
                "jobDefinition": "arn:aws:batch:r:a:job-definition/d:1",
                "status": status, "createdAt": 0, "sequence": sequence,
                "arrayProperties": array
            });
            if status == "RUNNING" {
                job["startedAt"] = json!(500);
            }
            serde_json::from_value(job).unwrap()
        };
        let size = children.len() as u32;
        let mut jobs = vec![job("p".into(), 1, "PENDING", json!({"size": size}))];
        for (index, status) in children.iter().enumerate() {
            let array = json!({"index": index});
            jobs.push(job(format!("p:{index}"), 2 + index as u64, status, array));
        }
        jobs
    }

    /// The state recovered from a store that holds `jobs` as a killed process left them, each
    /// whole in `jobs` as store format 2 wrote them. Recovered a second time from what the first
    /// wrote (the children moved to `array_children`), which must read back the same.
    async fn recovered(jobs: Vec<Job>) -> State {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        let whole = jobs
            .iter()
            .map(|job| Record::put(Table::Jobs, format!("{:020}", job.sequence), job))
            .collect();
        store.write(whole).await.unwrap();
        let config = BatchConfig::new(dir.path());
        let (state, records) = load(&config, &store, 1_000).unwrap();
        store.write(records).await.unwrap();

        let left: Vec<(String, Job)> = store.load(Table::Jobs).unwrap();
        let left: Vec<&str> = left.iter().map(|(_, j)| j.job_id.as_str()).collect();
        assert_eq!(left, ["p"], "only the parent is kept whole");
        let (again, _) = load(&config, &store, 2_000).unwrap();
        assert_eq!(again.jobs.len(), state.jobs.len());
        for (id, job) in &state.jobs {
            assert_eq!(again.jobs[id].to_job(), job.to_job(), "{id} read back");
        }
        state
    }

    #[tokio::test]
    async fn an_interrupted_array_child_with_no_attempts_left_is_counted_once() {
        let state = recovered(array(&["RUNNING", "RUNNABLE"])).await;
        let child = &state.jobs["p:0"];
        assert_eq!(child.status, JobStatus::Failed);
        assert_eq!(child.attempts.len(), 1);
        assert_eq!(child.attempts[0].reason.as_deref(), Some("HostRestarted"));
        assert_eq!(
            state.jobs["p"].status,
            JobStatus::Pending,
            "child 1 has still to run"
        );
        assert_eq!(state.array_done["p"], (0, 1));
    }

    #[tokio::test]
    async fn an_attempt_cut_short_while_starting_did_not_run() {
        // Attempt 1 failed after running from 500; attempt 2 was still STARTING at the kill.
        let mut jobs = array(&["STARTING", "RUNNABLE"]);
        jobs[1].started_at = Some(500);
        jobs[1].attempts.push(Attempt {
            started_at: Some(500),
            stopped_at: Some(600),
            exit_code: Some(1),
            ..Attempt::default()
        });
        // The array's retry strategy, which its children share.
        jobs[0].retry_strategy = serde_json::from_value(json!({"attempts": 3})).unwrap();
        let state = recovered(jobs).await;
        let child = &state.jobs["p:0"];
        assert_eq!(child.status, JobStatus::Runnable, "one attempt is left");
        assert_eq!(child.attempts.len(), 2);
        assert_eq!(child.attempts[1].reason.as_deref(), Some("HostRestarted"));
        assert_eq!(child.attempts[1].started_at, None, "{child:#?}");
        assert_eq!(child.attempts[1].stopped_at, Some(1_000));
    }

    #[tokio::test]
    async fn an_array_whose_last_children_are_interrupted_ends_with_a_true_count() {
        let state = recovered(array(&["SUCCEEDED", "RUNNING", "RUNNING"])).await;
        let parent = &state.jobs["p"];
        assert_eq!(parent.status, JobStatus::Failed);
        assert_eq!(
            parent.status_reason.as_deref(),
            Some("2 of 3 child jobs failed")
        );
        assert!(
            !state.array_done.contains_key("p"),
            "an ended array has no counts left: {:?}",
            state.array_done
        );
    }
}
