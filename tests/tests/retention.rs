//! Retention: finished jobs (arrays whole) and their logs leave memory and the database once
//! their retention has passed, unfinished ones stay, and a job waiting on a removed one still
//! runs, across a restart too. Retentions are a few hundred milliseconds; each wait is bounded.

use std::time::Duration;

use serde_json::json;
use wasmbatch_runtime::model::{JobStatus, ListJobs, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{decode, guests};

/// A service over `dir` keeping finished jobs for `jobs` and their logs for `logs`.
fn config(dir: &std::path::Path, jobs: Duration, logs: Option<Duration>) -> BatchConfig {
    let mut config = BatchConfig::new(dir);
    config.job_retention = jobs;
    config.log_retention = logs;
    config
}

/// Queue `main` on an ENABLED environment and queue `held` on a DISABLED one (its jobs wait
/// RUNNABLE), and definition `hello`.
async fn setup(batch: &Batch) {
    wasmbatch_tests::local_queue(batch, 2, "ENABLED").await;
    wasmbatch_tests::environment(batch, "off", 2, "DISABLED").await;
    wasmbatch_tests::job_queue(batch, "held", 1, "off").await;
    wasmbatch_tests::module_and_definition(
        batch,
        "hello",
        guests::wasip1::HELLO,
        &[],
        64,
        json!({}),
    )
    .await;
}

async fn submit(batch: &Batch, queue: &str, extra: serde_json::Value) -> String {
    let mut request = json!({"jobName": "j", "jobQueue": queue, "jobDefinition": "hello"});
    for (key, value) in extra.as_object().unwrap() {
        request[key] = value.clone();
    }
    batch
        .submit_job(decode::<SubmitJob>(request))
        .await
        .unwrap()
        .job_id
}

fn known(batch: &Batch, id: &str) -> bool {
    !batch.describe_jobs(&[id.to_string()]).unwrap().is_empty()
}

/// Waits (at most 20 s) until `done` holds.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what} did not happen within 20 s");
}

fn listed(batch: &Batch, queue: &str, status: JobStatus) -> Vec<String> {
    batch
        .list_jobs(&ListJobs {
            job_queue: Some(queue.into()),
            job_status: Some(status),
            ..Default::default()
        })
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.job_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_goes_after_its_retention_and_an_unfinished_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let short = config(dir.path(), Duration::from_millis(300), None);
    let batch = Batch::open(short.clone()).await.unwrap();
    setup(&batch).await;
    let waiting = submit(&batch, "held", json!({})).await;
    let array = submit(&batch, "held", json!({"arrayProperties": {"size": 2}})).await;
    let done = submit(&batch, "main", json!({})).await;
    let finished = wasmbatch_tests::finished(&batch, &done).await;
    assert_eq!(finished.status, JobStatus::Succeeded);
    assert_eq!(
        listed(&batch, "main", JobStatus::Succeeded),
        std::slice::from_ref(&done)
    );
    until("the finished job's removal", async || !known(&batch, &done)).await;
    assert!(listed(&batch, "main", JobStatus::Succeeded).is_empty());
    let stream = finished.attempts[0].log_stream_name.clone().unwrap();
    assert!(batch.log_events(&stream).await.unwrap().is_empty());
    for id in [&waiting, &array, &format!("{array}:1")] {
        assert!(known(&batch, id), "{id} has not finished and stays");
    }

    // Gone from the database too: a restart (keeping everything) does not bring it back.
    batch.close("test").await.unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    assert!(!known(&batch, &done));
    assert!(known(&batch, &waiting) && known(&batch, &array));
    batch.close("test").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_goes_whole_once_its_parent_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(config(dir.path(), Duration::from_millis(300), None))
        .await
        .unwrap();
    setup(&batch).await;
    let array = submit(&batch, "main", json!({"arrayProperties": {"size": 3}})).await;
    let children: Vec<String> = (0..3).map(|i| format!("{array}:{i}")).collect();
    let parent = wasmbatch_tests::finished(&batch, &array).await;
    assert_eq!(parent.status, JobStatus::Succeeded);
    until("the array's removal", async || {
        // Parent and children leave in one change: never one without the others.
        let left = children.iter().filter(|c| known(&batch, c)).count();
        let parent = known(&batch, &array);
        assert!(
            left == if parent { 3 } else { 0 },
            "parent known: {parent}, children left: {left}"
        );
        !parent
    })
    .await;
    batch.close("test").await.unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    assert!(!known(&batch, &array) && !children.iter().any(|c| known(&batch, c)));
    batch.close("test").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_first_with_a_shorter_log_retention() {
    let dir = tempfile::tempdir().unwrap();
    let hour = Duration::from_secs(3600);
    let logs_short = config(dir.path(), hour, Some(Duration::from_millis(300)));
    let batch = Batch::open(logs_short.clone()).await.unwrap();
    setup(&batch).await;
    let id = submit(&batch, "main", json!({})).await;
    let job = wasmbatch_tests::finished(&batch, &id).await;
    let stream = job.attempts[0].log_stream_name.clone().unwrap();
    assert!(
        !batch.log_events(&stream).await.unwrap().is_empty(),
        "hello writes a line"
    );
    until("the log's removal", async || {
        batch.log_events(&stream).await.unwrap().is_empty()
    })
    .await;
    assert!(known(&batch, &id), "the job stays for its own retention");
    batch.close("test").await.unwrap();
    let batch = Batch::open(config(dir.path(), hour, None)).await.unwrap();
    assert!(known(&batch, &id));
    assert!(
        batch.log_events(&stream).await.unwrap().is_empty(),
        "its chunks are gone"
    );
    batch.close("test").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_on_a_removed_one_still_runs_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let short = config(dir.path(), Duration::from_millis(300), None);
    let batch = Batch::open(short.clone()).await.unwrap();
    setup(&batch).await;
    let first = submit(&batch, "main", json!({})).await;
    let held = submit(&batch, "held", json!({})).await;
    let dependent = submit(
        &batch,
        "main",
        json!({"dependsOn": [{"jobId": first}, {"jobId": held}]}),
    )
    .await;
    assert_eq!(
        wasmbatch_tests::finished(&batch, &first).await.status,
        JobStatus::Succeeded
    );
    until("the first job's removal", async || !known(&batch, &first)).await;
    assert_eq!(
        wasmbatch_tests::describe(&batch, &dependent).status,
        JobStatus::Pending
    );

    batch.close("test").await.unwrap();
    let batch = Batch::open(short).await.unwrap();
    assert_eq!(
        wasmbatch_tests::describe(&batch, &dependent).status,
        JobStatus::Pending,
        "still waiting on the held job, and only on it"
    );
    batch
        .update_compute_environment(decode(
            json!({"computeEnvironment": "off", "state": "ENABLED"}),
        ))
        .await
        .unwrap();
    let ran = wasmbatch_tests::finished(&batch, &dependent).await;
    assert_eq!(ran.status, JobStatus::Succeeded, "{ran:?}");
    batch.close("test").await.unwrap();
}
