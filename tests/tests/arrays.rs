//! Arrays cost per child, not per request (issue 14): a child keeps only what is its own and
//! shares the rest with its parent, in memory and in the database, yet DescribeJobs shows each
//! child whole, as AWS does, before and after a restart; and a data dir of store format 2, which
//! kept every child whole, opens with an array mid-flight whose children still run.

use std::path::Path;

use serde_json::json;
use wasmbatch_runtime::model::{ArrayProperties, ContainerOverrides, Job, JobStatus, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{
    decode, describe, finished, guests, large_submit, local_queue, module_and_definition,
};

/// A service with queue `main` on environment `local` (in `state`) and definition `hello`,
/// which prints its arguments: `Ref::frame` by default.
async fn service(dir: &Path, state: &str) -> Batch {
    let batch = Batch::open(BatchConfig::new(dir)).await.unwrap();
    local_queue(&batch, 4, state).await;
    let parameters = json!({"parameters": {"frame": "default"}});
    module_and_definition(
        &batch,
        "hello",
        guests::wasip1::HELLO,
        &["Ref::frame"],
        16,
        parameters,
    )
    .await;
    batch
}

async fn enable(batch: &Batch) {
    batch
        .update_compute_environment(decode(json!({
            "computeEnvironment": "local", "state": "ENABLED"
        })))
        .await
        .unwrap();
}

/// An array of `size` children of `hello` with parameters and overrides of its own.
fn array(size: u32) -> SubmitJob {
    SubmitJob {
        job_name: "frames".into(),
        job_queue: "main".into(),
        job_definition: "hello".into(),
        array_properties: Some(ArrayProperties { size: Some(size) }),
        parameters: [("frame".to_string(), "given".to_string())].into(),
        container_overrides: Some(ContainerOverrides {
            command: Some(vec!["Ref::frame".into(), "overridden".into()]),
            environment: vec![decode(json!({"name": "COLOR", "value": "red"}))],
            ..ContainerOverrides::default()
        }),
        retry_strategy: Some(decode(json!({"attempts": 2}))),
        tags: [("team".to_string(), "render".to_string())].into(),
        ..SubmitJob::default()
    }
}

/// What every child of [`array`] reports of its parent.
fn assert_shows_its_array(child: &Job, parent: &Job) {
    assert_eq!(child.job_name, "frames");
    assert_eq!(
        child.job_arn,
        format!(
            "{}:{}",
            parent.job_arn,
            child.array_properties.unwrap().index.unwrap()
        )
    );
    assert_eq!(child.job_queue, parent.job_queue);
    assert_eq!(child.job_definition, parent.job_definition);
    assert_eq!(child.created_at, parent.created_at);
    assert_eq!(child.parameters["frame"], "given");
    let overrides = child
        .container_overrides
        .as_deref()
        .expect("the array's overrides");
    assert_eq!(
        overrides.command.as_deref().unwrap(),
        ["Ref::frame", "overridden"]
    );
    assert_eq!(overrides.environment[0].value.as_deref(), Some("red"));
    assert_eq!(child.retry_strategy.as_ref().unwrap().attempts, Some(2));
    assert_eq!(child.tags["team"], "render");
}

/// The lines child `id`'s latest attempt printed.
async fn output(batch: &Batch, id: &str) -> Vec<String> {
    let stream = batch.log_stream(id, None).expect("the child ran");
    let events = batch.log_events(&stream).await.unwrap();
    events.into_iter().map(|e| e.message).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_child_described_after_a_restart_shows_its_parents_parameters_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path(), "DISABLED").await;
    let parent = batch.submit_job(array(3)).await.unwrap().job_id;
    batch.close("restart").await.unwrap();

    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let parent = describe(&batch, &parent);
    for index in 0..3 {
        let child = describe(&batch, &format!("{}:{index}", parent.job_id));
        assert_eq!(child.status, JobStatus::Runnable);
        assert_shows_its_array(&child, &parent);
    }
    enable(&batch).await;
    assert_eq!(
        finished(&batch, &parent.job_id).await.status,
        JobStatus::Succeeded
    );
    let lines = output(&batch, &format!("{}:2", parent.job_id)).await;
    assert!(
        lines[0].ends_with(r#"args=["hello", "given", "overridden"]"#),
        "the child ran its array's command: {lines:?}"
    );
    assert!(
        lines.contains(&"AWS_BATCH_JOB_ARRAY_INDEX=2".to_string()),
        "{lines:?}"
    );
}

/// The database file's length.
fn db_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("wasmbatch.redb")).unwrap().len()
}

/// Issue 14's request: 29 KB with 10,000 children grew the database by 544 MiB when each child
/// kept a copy. Each child's record is now its own part only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_child_array_of_a_large_request_takes_little_room_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path(), "DISABLED").await;
    let before = db_bytes(dir.path());
    let mut request = large_submit("big", "hello", 29_000);
    let request_bytes = serde_json::to_vec(&request).unwrap().len();
    assert!((28_000..30_000).contains(&request_bytes), "{request_bytes}");
    request.array_properties = Some(ArrayProperties { size: Some(10_000) });
    let parent = batch.submit_job(request).await.unwrap().job_id;
    let grown = db_bytes(dir.path()) - before;
    assert!(grown < 20 << 20, "the database grew by {grown} bytes");

    let child = describe(&batch, &format!("{parent}:9999"));
    assert_eq!(child.parameters.len(), 100);
    assert_eq!(child.container_overrides.unwrap().environment.len(), 100);
}

/// What store format 2 (before array children were stored apart) left: every child whole in
/// `jobs`, no `array_children` table (nor format 4's `scheduling_policies` or format 5's `job_events`), format 2 in `meta`. Written from what DescribeJobs shows
/// of each child, which is what format 2 stored.
async fn downgrade_to_format_2(dir: &Path, children: Vec<Job>) {
    let path = dir.join("wasmbatch.redb");
    // Closed by the caller: the file is free.
    let db = redb::Database::open(&path).expect("the closed service released the database");
    let txn = db.begin_write().unwrap();
    {
        let mut jobs = txn
            .open_table(redb::TableDefinition::<&str, &[u8]>::new("jobs"))
            .unwrap();
        for child in &children {
            let key = format!("{:020}", child.sequence);
            jobs.insert(key.as_str(), serde_json::to_vec(child).unwrap().as_slice())
                .unwrap();
        }
        txn.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .unwrap()
            .insert("format", 2)
            .unwrap();
    }
    for table in ["array_children", "scheduling_policies", "job_events"] {
        let deleted = txn
            .delete_table(redb::TableDefinition::<&str, &[u8]>::new(table))
            .unwrap();
        assert!(deleted, "the current format has table {table}");
    }
    txn.commit().unwrap();
}

/// The tables' record counts and the format, read as a later start finds them.
fn stored(dir: &Path) -> (u64, usize, usize) {
    let db = redb::Database::open(dir.join("wasmbatch.redb")).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let count = |name| match txn.open_table(redb::TableDefinition::<&str, &[u8]>::new(name)) {
        Ok(table) => redb::ReadableTableMetadata::len(&table).unwrap() as usize,
        Err(redb::TableError::TableDoesNotExist(_)) => 0,
        Err(e) => panic!("{name}: {e}"),
    };
    let format = txn
        .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
        .unwrap()
        .get("format")
        .unwrap()
        .unwrap()
        .value();
    (format, count("jobs"), count("array_children"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_store_format_2_with_an_array_mid_flight_opens_and_its_children_run() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path(), "DISABLED").await;
    let parent = batch.submit_job(array(4)).await.unwrap().job_id;
    let ids: Vec<String> = (0..4).map(|i| format!("{parent}:{i}")).collect();
    let mut children = batch.describe_jobs(&ids).unwrap();
    batch.close("downgrade").await.unwrap();
    // Mid-flight at the kill: child 0 done, child 1 running its first attempt, 2 and 3 queued.
    children[0].status = JobStatus::Succeeded;
    children[0].started_at = Some(children[0].created_at + 1);
    children[0].stopped_at = Some(children[0].created_at + 2);
    children[0].attempts = vec![decode(json!({"startedAt": children[0].created_at + 1,
        "stoppedAt": children[0].created_at + 2, "exitCode": 0}))];
    children[1].status = JobStatus::Running;
    children[1].started_at = Some(children[1].created_at + 1);
    downgrade_to_format_2(dir.path(), children).await;
    assert_eq!(
        stored(dir.path()),
        (2, 5, 0),
        "a format-2 data dir: five whole jobs"
    );

    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let parent = describe(&batch, &parent);
    assert_eq!(parent.status, JobStatus::Pending);
    let children = batch.describe_jobs(&ids).unwrap();
    for child in &children {
        assert_shows_its_array(child, &parent);
    }
    let statuses: Vec<JobStatus> = children.iter().map(|c| c.status).collect();
    use JobStatus::{Runnable, Succeeded};
    assert_eq!(
        statuses,
        [Succeeded, Runnable, Runnable, Runnable],
        "child 1 is retried"
    );
    assert_eq!(
        children[1].attempts[0].reason.as_deref(),
        Some("HostRestarted")
    );

    enable(&batch).await;
    assert_eq!(
        finished(&batch, &parent.job_id).await.status,
        JobStatus::Succeeded
    );
    let children = batch.describe_jobs(&ids).unwrap();
    let attempts: Vec<usize> = children.iter().map(|c| c.attempts.len()).collect();
    assert_eq!(attempts, [1, 2, 1, 1]);
    let lines = output(&batch, &ids[3]).await;
    assert!(
        lines[0].ends_with(r#"args=["hello", "given", "overridden"]"#),
        "{lines:?}"
    );
    batch.close("upgraded").await.unwrap();
    assert_eq!(
        stored(dir.path()),
        (6, 1, 4),
        "upgraded: the parent whole, the children apart"
    );
}
