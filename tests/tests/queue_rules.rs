//! The queue rules AWS documents (issue 15), through the embedded service with real guests: a
//! job no environment of its queue could ever hold is refused at submit; one that becomes such
//! a job (its environment shrank) is set aside with AWS's MISCONFIGURATION reason and blocks
//! nobody, runs if the environment grows again, and is cancelled by a matching
//! jobStateTimeLimitAction; CancelJob on a PENDING job cancels it once its dependencies have
//! completed, across a restart too.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use wasmbatch_runtime::model::{JobStatus, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{decode, describe, finished, guests, local_queue, module_and_definition};

/// Queue `main` on environment `local` (2 vCPUs) with `actions` as its time-limit actions, and
/// definition `sleep` (1 vCPU).
async fn service(dir: &Path, actions: serde_json::Value) -> Batch {
    let batch = Batch::open(BatchConfig::new(dir)).await.unwrap();
    local_queue(&batch, 2, "ENABLED").await;
    batch
        .update_job_queue(decode(
            json!({"jobQueue": "main", "jobStateTimeLimitActions": actions}),
        ))
        .await
        .unwrap();
    module_and_definition(&batch, "sleep", guests::wasip1::SLEEP, &[], 16, json!({})).await;
    batch
}

/// `sleep millis` asking for `vcpus`.
fn sleep(name: &str, vcpus: u32, millis: u32) -> SubmitJob {
    decode(json!({
        "jobName": name, "jobQueue": "main", "jobDefinition": "sleep",
        "containerOverrides": {"command": [millis.to_string()],
            "resourceRequirements": [{"type": "VCPU", "value": vcpus.to_string()}]}
    }))
}

async fn set_vcpus(batch: &Batch, vcpus: u32) {
    batch
        .update_compute_environment(decode(json!({
            "computeEnvironment": "local", "computeResources": {"maxvCpus": vcpus}
        })))
        .await
        .unwrap();
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} did not happen within 20 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_environment_could_hold_is_refused_at_submit_naming_why() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path(), json!([])).await;
    let error = batch.submit_job(sleep("huge", 3, 1)).await.unwrap_err();
    assert!(error.is_client_error(), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("containerOverrides.resourceRequirements:")
            && message.contains("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE")
            && message.contains("at most 2"),
        "{message}"
    );
    let memory: SubmitJob = decode(json!({
        "jobName": "fat", "jobQueue": "main", "jobDefinition": "sleep",
        "containerOverrides": {"resourceRequirements": [{"type": "MEMORY", "value": "999999"}]}
    }));
    let message = batch.submit_job(memory).await.unwrap_err().to_string();
    assert!(message.contains("MISCONFIGURATION"), "{message}");
    assert!(
        batch.job_counts("main").unwrap().is_empty(),
        "nothing was added"
    );
    batch.close("test").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_its_environment_shrank_under_is_set_aside_then_runs_when_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path(), json!([])).await;
    let blocker = batch
        .submit_job(sleep("blocker", 2, 3_000))
        .await
        .unwrap()
        .job_id;
    until("the blocker runs", || {
        describe(&batch, &blocker).status == JobStatus::Running
    })
    .await;
    // Queued behind the blocker: a 2-vCPU job, then a 1-vCPU one.
    let big = batch.submit_job(sleep("big", 2, 1)).await.unwrap().job_id;
    let small = batch.submit_job(sleep("small", 1, 1)).await.unwrap().job_id;
    set_vcpus(&batch, 1).await;
    // FIFO, yet the job that can never fit now holds up nobody.
    assert_eq!(finished(&batch, &small).await.status, JobStatus::Succeeded);
    let job = describe(&batch, &big);
    assert_eq!(job.status, JobStatus::Runnable);
    let reason = job.status_reason.unwrap_or_default();
    assert!(
        reason.starts_with(
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - the job needs 2 vCPUs"
        ),
        "{reason}"
    );
    set_vcpus(&batch, 2).await;
    assert_eq!(finished(&batch, &big).await.status, JobStatus::Succeeded);
    batch.close("test").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_limit_action_cancels_a_stuck_job_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let actions = json!([{
        "reason": "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE", "state": "RUNNABLE",
        "maxTimeSeconds": 1, "action": "CANCEL"
    }]);
    let batch = service(dir.path(), actions).await;
    let blocker = batch
        .submit_job(sleep("blocker", 2, 2_000))
        .await
        .unwrap()
        .job_id;
    until("the blocker runs", || {
        describe(&batch, &blocker).status == JobStatus::Running
    })
    .await;
    let big = batch.submit_job(sleep("big", 2, 1)).await.unwrap().job_id;
    set_vcpus(&batch, 1).await;
    let started = std::time::Instant::now();
    let job = finished(&batch, &big).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "cancelled after {:?}, before its maxTimeSeconds",
        started.elapsed()
    );
    assert_eq!((job.status, job.is_cancelled), (JobStatus::Failed, true));
    assert_eq!(
        job.status_reason.as_deref(),
        Some(
            "Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
        )
    );
    assert!(job.attempts.is_empty(), "it never ran");
    // Written: the cancellation is there after a restart.
    let batch = wasmbatch_tests::reopen(batch, BatchConfig::new(dir.path())).await;
    assert_eq!(describe(&batch, &big).status, JobStatus::Failed);
    batch.close("test").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_pending_job_ends_once_its_dependency_does_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path(), json!([])).await;
    // Retried if the restart interrupts it, so that it completes by succeeding.
    let mut first = sleep("first", 1, 1_500);
    first.retry_strategy = Some(decode(json!({"attempts": 3})));
    let first = batch.submit_job(first).await.unwrap().job_id;
    let mut waits = sleep("waits", 1, 1);
    waits.depends_on = vec![decode(json!({"jobId": first}))];
    let waits = batch.submit_job(waits).await.unwrap().job_id;
    assert_eq!(describe(&batch, &waits).status, JobStatus::Pending);
    batch.cancel_job(&waits, "no longer wanted").await.unwrap();
    // AWS cancels it once its dependency completes: until then it waits, marked.
    let job = describe(&batch, &waits);
    assert_eq!(job.status, JobStatus::Pending);
    assert!(job.is_cancelled);
    // A restart while it waits keeps the request.
    let batch = wasmbatch_tests::reopen(batch, BatchConfig::new(dir.path())).await;
    assert_eq!(finished(&batch, &first).await.status, JobStatus::Succeeded);
    let job = finished(&batch, &waits).await;
    assert_eq!((job.status, job.is_cancelled), (JobStatus::Failed, true));
    assert_eq!(job.status_reason.as_deref(), Some("no longer wanted"));
    assert!(job.attempts.is_empty(), "it never ran");
    batch.close("test").await.unwrap();
}
