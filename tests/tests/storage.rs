//! Guards against losing or inventing state at the storage layer: changes that race each other
//! (an update beside a tag, an update beside a delete, many registrations of one definition)
//! are stored in the order they were made, so a restart shows exactly what the API
//! acknowledged; and a disk that fails (a write, an fsync, a full disk, injected into redb's
//! file backend) stops the service from taking changes (503 ServerException "storage
//! unavailable", `GET /health` 503) and from running anything whose records were not committed,
//! while reads go on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use wasmbatch_runtime::model::{ArrayProperties, JobStatus, ListJobs, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig, Health, StorageFaults};
use wasmbatch_tests::{decode, finished, guests, local_queue, module_and_definition, router};

async fn service(dir: &std::path::Path, faults: &Arc<StorageFaults>) -> Batch {
    let mut config = BatchConfig::new(dir);
    config.storage_faults = Some(faults.clone());
    Batch::open(config).await.unwrap()
}

async fn setup(batch: &Batch) {
    local_queue(batch, 2, "ENABLED").await;
    module_and_definition(batch, "hello", guests::wasip1::HELLO, &[], 16, json!({})).await;
}

fn hello(name: &str) -> SubmitJob {
    SubmitJob {
        job_name: name.into(),
        job_queue: "main".into(),
        job_definition: "hello".into(),
        ..SubmitJob::default()
    }
}

/// An HTTP request through the whole router (authentication, origin checks, routes).
async fn call(batch: &Batch, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let app = wasmbatch_api::app(batch.clone(), wasmbatch_api::Access::local());
    router::answer(&app, request).await
}

async fn post(batch: &Batch, operation: &str, body: Value) -> (StatusCode, Option<String>, Value) {
    call(batch, router::post(operation, body.to_string())).await
}

async fn health(batch: &Batch) -> (StatusCode, Value) {
    let (status, _, body) = call(batch, Request::get("/health").body(Body::empty()).unwrap()).await;
    (status, body)
}

/// Every job of queue `main`, page by page.
fn all_jobs(batch: &Batch) -> Vec<wasmbatch_runtime::model::Job> {
    let mut jobs = Vec::new();
    let mut next_token = None;
    loop {
        let page = batch
            .list_jobs(&ListJobs {
                job_queue: Some("main".into()),
                filters: vec![wasmbatch_runtime::model::KeyValuesPair {
                    name: Some("JOB_NAME".into()),
                    values: vec!["*".into()],
                }],
                max_results: Some(100),
                next_token,
                ..ListJobs::default()
            })
            .unwrap();
        jobs.extend(page.jobs);
        match page.next_token {
            Some(token) => next_token = Some(token),
            None => return jobs,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_stops_changes_and_runs_nothing_it_did_not_acknowledge() {
    let dir = tempfile::tempdir().unwrap();
    let faults = StorageFaults::new();
    let batch = service(dir.path(), &faults).await;
    setup(&batch).await;
    let before = batch.submit_job(hello("before")).await.unwrap().job_id;
    finished(&batch, &before).await;
    assert_eq!(health(&batch).await.0, StatusCode::OK);

    faults.fail_syncs();
    let (status, kind, body) = post(
        &batch,
        "submitjob",
        json!({"jobName": "fan", "jobQueue": "main", "jobDefinition": "hello",
               "arrayProperties": {"size": 2000}}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(kind.as_deref(), Some("ServerException"));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("storage unavailable"),
        "{body}"
    );
    assert!(faults.injected() > 0, "the fault was hit");

    // Every later change is refused, even with the disk working again (redb cannot go on
    // after a failed commit): a restart is what brings the service back.
    faults.heal();
    let (status, _, body) = post(
        &batch,
        "submitjob",
        json!({"jobName": "after", "jobQueue": "main", "jobDefinition": "hello"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, _, _) = post(
        &batch,
        "createjobqueue",
        json!({"jobQueueName": "other", "priority": 1,
               "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = health(&batch).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["reason"].as_str().unwrap().contains("injected fault"),
        "{body}"
    );
    assert!(matches!(batch.health(), Health::StorageUnavailable { .. }));

    // Reads are served, and none of the 2,000 children, whose submit failed, ran.
    let (status, _, body) = post(&batch, "describejobs", json!({"jobs": [before]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["jobs"][0]["status"], "SUCCEEDED");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ran: Vec<_> = all_jobs(&batch)
        .into_iter()
        .filter(|j| j.job_name == "fan")
        .collect();
    assert!(
        ran.iter().all(|j| j.attempts.is_empty()
            && !matches!(j.status, JobStatus::Running | JobStatus::Succeeded)),
        "an unacknowledged job ran: {:?}",
        ran.iter().find(|j| !j.attempts.is_empty())
    );
    batch.close("restart").await.unwrap();

    // A restart on the working disk has what was acknowledged, and works.
    let batch = service(dir.path(), &faults).await;
    assert_eq!(health(&batch).await.0, StatusCode::OK);
    let jobs = all_jobs(&batch);
    assert!(
        jobs.iter()
            .any(|j| j.job_id == before && j.status == JobStatus::Succeeded)
    );
    assert!(
        jobs.iter()
            .all(|j| j.job_name != "fan" && j.job_name != "after"),
        "only acknowledged jobs are kept: {:?}",
        jobs.iter().map(|j| &j.job_name).collect::<Vec<_>>()
    );
    let again = batch.submit_job(hello("again")).await.unwrap().job_id;
    assert_eq!(finished(&batch, &again).await.status, JobStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_by_health_and_refuses_changes() {
    let dir = tempfile::tempdir().unwrap();
    let faults = StorageFaults::new();
    let batch = service(dir.path(), &faults).await;
    setup(&batch).await;
    faults.fill_disk();
    // Enough records to grow the file.
    let mut request = hello("big");
    request.array_properties = Some(ArrayProperties { size: Some(5000) });
    let error = batch.submit_job(request).await.unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    let (status, body) = health(&batch).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{body}"
    );
    let (status, _, _) = post(
        &batch,
        "registerjobdefinition",
        json!({"jobDefinitionName": "x", "type": "container",
               "containerProperties": {"image": "hello"}}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        batch
            .push_module("another", guests::bytes(guests::wasip1::HELLO))
            .await
            .is_err()
    );
}

/// The Nth write of the file fails in the middle of a burst of concurrent submits: every submit
/// acknowledged before is there after a restart, and every one after it was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_failing_in_a_burst_keeps_every_acknowledged_submit() {
    let dir = tempfile::tempdir().unwrap();
    let faults = StorageFaults::new();
    let batch = service(dir.path(), &faults).await;
    local_queue(&batch, 2, "DISABLED").await;
    module_and_definition(&batch, "hello", guests::wasip1::HELLO, &[], 16, json!({})).await;
    // A few group commits in, then the file's writes fail.
    faults.fail_writes_after(40);
    let tasks: Vec<_> = (0..16)
        .map(|client| {
            let batch = batch.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut refused = 0;
                for i in 0..60 {
                    match batch.submit_job(hello(&format!("c{client}-{i}"))).await {
                        Ok(job) => acknowledged.push(job.job_id),
                        Err(e) => {
                            assert!(e.is_unavailable(), "{e}");
                            refused += 1;
                        }
                    }
                }
                (acknowledged, refused)
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (ids, failed) = task.await.unwrap();
        acknowledged.extend(ids);
        refused += failed;
    }
    assert!(refused > 0, "the fault was never hit");
    assert!(!acknowledged.is_empty(), "the fault came before any commit");
    batch.close("restart").await.unwrap();
    faults.heal();

    let batch = service(dir.path(), &faults).await;
    let kept: std::collections::HashSet<String> =
        all_jobs(&batch).into_iter().map(|j| j.job_id).collect();
    for id in &acknowledged {
        assert!(kept.contains(id), "acknowledged job {id} was lost");
    }
}

/// UpdateJobQueue beside TagResource on the same queue, many times over: the store ends with
/// what memory ends with (an older copy of the queue committed last would lose tags).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_and_tags_are_all_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let faults = StorageFaults::new();
    let batch = service(dir.path(), &faults).await;
    local_queue(&batch, 2, "ENABLED").await;
    let arn = batch.job_queue_arn("main").unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (batch, arn) = (batch.clone(), arn.clone());
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                batch
                    .update_job_queue(decode(json!({"jobQueue": "main", "priority": i})))
                    .await
                    .map(|_| ())
            } else {
                let tag = BTreeMap::from([(format!("t{}", i % 40), format!("{i}"))]);
                batch.tag_resource(&arn, tag, &[]).await
            }
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let acknowledged = batch.describe_job_queues(&[]);
    batch.close("restart").await.unwrap();
    let batch = service(dir.path(), &faults).await;
    assert_eq!(batch.describe_job_queues(&[]), acknowledged);
    assert_eq!(acknowledged[0].tags.len(), 20);
}

/// UpdateJobQueue racing DeleteJobQueue: once the delete is acknowledged, no later restart
/// brings the queue back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_queue_stays_deleted_whatever_update_ran_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let faults = StorageFaults::new();
    let batch = service(dir.path(), &faults).await;
    local_queue(&batch, 2, "ENABLED").await;
    for q in 0..20 {
        batch
            .create_job_queue(decode(json!({
                "jobQueueName": format!("q{q}"), "priority": 1, "state": "DISABLED",
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}]
            })))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for q in 0..20 {
        for i in 0..5 {
            let batch = batch.clone();
            tasks.push(tokio::spawn(async move {
                let queue = format!("q{q}");
                if i == 2 {
                    batch.delete_job_queue(&queue).await.map(|()| true)
                } else {
                    // Refused (not found) once the delete has gone through.
                    let _ = batch
                        .update_job_queue(decode(json!({"jobQueue": queue, "priority": i})))
                        .await;
                    Ok(false)
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let acknowledged = batch.describe_job_queues(&[]);
    assert_eq!(acknowledged.len(), 1, "only main is left");
    batch.close("restart").await.unwrap();
    let batch = service(dir.path(), &faults).await;
    assert_eq!(batch.describe_job_queues(&[]), acknowledged);
}

/// Many registrations of one definition at once, with a write failing among them: each
/// acknowledged revision is served under its own number after the restart, and a revision is
/// never given twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_registered_at_once_keep_their_numbers_through_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let faults = StorageFaults::new();
    let batch = service(dir.path(), &faults).await;
    faults.fail_writes_after(20);
    // Ten callers, each registering one after another: many commits, the fault among them.
    let tasks: Vec<_> = (0..10)
        .map(|caller| {
            let batch = batch.clone();
            tokio::spawn(async move {
                let mut results = Vec::new();
                for n in 0..10 {
                    let i = caller * 10 + n;
                    let definition = batch
                        .register_job_definition(decode(json!({
                            "jobDefinitionName": "render", "type": "container",
                            "parameters": {"who": format!("caller-{i}")},
                            "containerProperties": {"image": "hello"}
                        })))
                        .await;
                    results.push(definition.map(|d| (i, d.revision)));
                }
                results
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for task in tasks {
        for result in task.await.unwrap() {
            match result {
                Ok(pair) => acknowledged.push(pair),
                Err(e) => {
                    assert!(e.is_unavailable(), "{e}");
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 0 && !acknowledged.is_empty(), "{refused} refused");
    let mut revisions: Vec<u32> = acknowledged.iter().map(|(_, r)| *r).collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(
        revisions.len(),
        acknowledged.len(),
        "a revision was given twice"
    );
    batch.close("restart").await.unwrap();
    faults.heal();

    let batch = service(dir.path(), &faults).await;
    for (i, revision) in &acknowledged {
        let found = batch.describe_job_definitions(&[format!("render:{revision}")], None, None);
        assert_eq!(found.len(), 1, "revision {revision} is gone");
        assert_eq!(found[0].revision, *revision);
        assert_eq!(found[0].parameters["who"], format!("caller-{i}"));
    }
    let next = batch
        .register_job_definition(decode(json!({
            "jobDefinitionName": "render", "type": "container",
            "containerProperties": {"image": "hello"}
        })))
        .await
        .unwrap();
    assert!(
        acknowledged.iter().all(|(_, r)| *r < next.revision),
        "revision {} was given before",
        next.revision
    );
}
