//! Scale the issue names, sized so the suite stays fast: a 10,000-child array runs to the end,
//! and 100,000 queued jobs are accepted, counted and all still there after a restart.

use std::time::Duration;

use serde_json::json;
use wasmbatch_runtime::model::{ArrayProperties, JobStatus, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{guests, local_queue, module_and_definition, submit_concurrently};

async fn open(dir: &std::path::Path) -> Batch {
    let mut config = BatchConfig::new(dir);
    config.default_environment_memory_mib = 1 << 20;
    Batch::open(config).await.unwrap()
}

async fn setup(batch: &Batch, state: &str) {
    local_queue(batch, 64, state).await;
    module_and_definition(batch, "hello", guests::wasip1::HELLO, &[], 16, json!({})).await;
}

fn submit(name: &str) -> SubmitJob {
    SubmitJob {
        job_name: name.into(),
        job_queue: "main".into(),
        job_definition: "hello".into(),
        ..SubmitJob::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_child_array_runs_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let batch = open(dir.path()).await;
    setup(&batch, "ENABLED").await;
    let mut request = submit("fan");
    request.array_properties = Some(ArrayProperties { size: Some(10_000) });
    let parent = batch.submit_job(request).await.unwrap().job_id;
    tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let job = batch
                .describe_jobs(std::slice::from_ref(&parent))
                .unwrap()
                .pop()
                .unwrap();
            if job.status.is_terminal() {
                assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the array did not finish");
    let summary = batch.array_summary(&parent).unwrap();
    assert_eq!(summary.get(&JobStatus::Succeeded), Some(&10_000));
    let last = batch
        .describe_jobs(&[format!("{parent}:9999")])
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.attempts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_queued_jobs_are_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let batch = open(dir.path()).await;
        setup(&batch, "DISABLED").await;
        submit_concurrently(&batch, "main", "hello", 50, 2_000).await;
        let counts = batch.job_counts("main").unwrap();
        assert_eq!(counts.get(&JobStatus::Runnable), Some(&100_000));
        batch.close("restart").await.unwrap();
    }
    let batch = open(dir.path()).await;
    let counts = batch.job_counts("main").unwrap();
    assert_eq!(
        counts.get(&JobStatus::Runnable),
        Some(&100_000),
        "{counts:?}"
    );
}
