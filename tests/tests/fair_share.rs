//! Fair-share scheduling (issue 15), through the embedded service with real guests: tenants
//! with weights 1:1 and 1:8 (and three at 1:1:8) get those fractions of a small environment's
//! capacity once the queue is busy, measured from the attempts' own start and stop times; a
//! tenant that arrives behind 10,000 queued jobs of another starts at the next free slot; a
//! reservation keeps room for a tenant not yet active; priorities order jobs within a share.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use wasmbatch_runtime::model::{Job, JobStatus, ListJobs, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{decode, describe, environment, guests, module_and_definition};

/// A service with environment `local` of `vcpus`, fair-share queue `shared` under a policy
/// with `policy` as its fairsharePolicy, and definition `sleep` (1 vCPU, `sleep MILLIS`).
async fn service(dir: &Path, vcpus: u32, policy: serde_json::Value) -> Batch {
    let batch = Batch::open(BatchConfig::new(dir)).await.unwrap();
    environment(&batch, "local", vcpus, "ENABLED").await;
    let policy = batch
        .create_scheduling_policy(decode(json!({"name": "teams", "fairsharePolicy": policy})))
        .await
        .unwrap();
    batch
        .create_job_queue(decode(json!({
            "jobQueueName": "shared", "priority": 1, "schedulingPolicyArn": policy.arn,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}]
        })))
        .await
        .unwrap();
    module_and_definition(&batch, "sleep", guests::wasip1::SLEEP, &[], 16, json!({})).await;
    batch
}

/// Submits `sleep millis` for `share`: an array of `size` children, or one job.
async fn submit(batch: &Batch, share: &str, size: Option<u32>, millis: u32) -> String {
    let mut request = json!({
        "jobName": share, "jobQueue": "shared", "jobDefinition": "sleep",
        "shareIdentifier": share,
        "containerOverrides": {"command": [millis.to_string()]}
    });
    if let Some(size) = size {
        request["arrayProperties"] = json!({"size": size});
    }
    batch
        .submit_job(decode::<SubmitJob>(request))
        .await
        .unwrap()
        .job_id
}

/// Every child of array `parent` that has ended, whole.
fn ended_children(batch: &Batch, parent: &str) -> Vec<Job> {
    let mut all = Vec::new();
    for status in [JobStatus::Succeeded, JobStatus::Failed] {
        let mut token = None;
        loop {
            let page = batch
                .list_jobs(&ListJobs {
                    array_job_id: Some(parent.into()),
                    job_status: Some(status),
                    max_results: Some(1000),
                    next_token: token,
                    ..Default::default()
                })
                .unwrap();
            all.extend(page.jobs);
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
    }
    all
}

/// Runs an array per tenant (`share`, weight) on 4 vCPUs for a few seconds, then cancels them;
/// returns the fraction of the vCPU-seconds used in the busy window each got.
async fn capacity_fractions(tenants: &[(&str, f64)]) -> HashMap<String, f64> {
    let dir = tempfile::tempdir().unwrap();
    let distribution: Vec<_> = tenants
        .iter()
        .map(|(share, weight)| json!({"shareIdentifier": share, "weightFactor": weight}))
        .collect();
    let batch = service(dir.path(), 4, json!({"shareDistribution": distribution})).await;
    // Held while all are submitted, so that nobody starts ahead by being first.
    batch
        .update_compute_environment(decode(
            json!({"computeEnvironment": "local", "state": "DISABLED"}),
        ))
        .await
        .unwrap();
    let mut arrays = Vec::new();
    for (share, _) in tenants {
        arrays.push((
            share.to_string(),
            submit(&batch, share, Some(3000), 40).await,
        ));
    }
    batch
        .update_compute_environment(decode(
            json!({"computeEnvironment": "local", "state": "ENABLED"}),
        ))
        .await
        .unwrap();
    let start = now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stop = now();
    for (_, parent) in &arrays {
        batch.cancel_job(parent, "measured").await.unwrap();
    }
    // Both tenants had work queued throughout: none ran out before the window closed.
    for (share, parent) in &arrays {
        let summary = batch.array_summary(parent).unwrap();
        assert!(
            summary.get(&JobStatus::Failed).copied().unwrap_or(0) > 0,
            "{share} ran out of queued work: {summary:?}"
        );
    }
    // The busy window: a second after the start (the first placements are a burst), to the
    // cancel.
    let (from, to) = (start + 1000, stop);
    let mut used: HashMap<String, f64> = HashMap::new();
    for (share, parent) in &arrays {
        for child in ended_children(&batch, parent) {
            for attempt in &child.attempts {
                if let (Some(a), Some(b)) = (attempt.started_at, attempt.stopped_at) {
                    let overlap = (b.min(to) - a.max(from)).max(0);
                    *used.entry(share.clone()).or_default() += overlap as f64;
                }
            }
        }
    }
    let total: f64 = used.values().sum();
    assert!(total > 0.0, "nothing ran in the window");
    batch.close("test").await.unwrap();
    used.into_iter().map(|(k, v)| (k, v / total)).collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Each tenant's fraction is within 10 % (relative) of 1/weight over the sum of 1/weights.
fn assert_fractions(tenants: &[(&str, f64)], got: &HashMap<String, f64>) {
    let sum: f64 = tenants.iter().map(|(_, w)| 1.0 / w).sum();
    eprintln!("capacity fractions: {got:?}");
    for (share, weight) in tenants {
        let target = (1.0 / weight) / sum;
        let fraction = got.get(*share).copied().unwrap_or(0.0);
        assert!(
            (fraction - target).abs() <= 0.10 * target,
            "{share} (weight {weight}) got {fraction:.3} of the capacity, target {target:.3}: {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_of_equal_weight_get_half_each() {
    let tenants = [("red", 1.0), ("blue", 1.0)];
    assert_fractions(&tenants, &capacity_fractions(&tenants).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_of_weight_one_eighth_gets_eight_times_the_capacity() {
    let tenants = [("red", 1.0), ("blue", 0.125)];
    assert_fractions(&tenants, &capacity_fractions(&tenants).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tenants_share_one_to_one_to_eight() {
    let tenants = [("red", 1.0), ("green", 1.0), ("blue", 0.125)];
    assert_fractions(&tenants, &capacity_fractions(&tenants).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_tenant_starts_at_the_next_free_slot_behind_ten_thousand_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path(), 2, json!({})).await;
    let early = submit(&batch, "early", Some(10_000), 50).await;
    tokio::time::timeout(Duration::from_secs(30), async {
        while !batch
            .array_summary(&early)
            .unwrap()
            .contains_key(&JobStatus::Succeeded)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the early tenant's jobs run");
    let late = submit(&batch, "late", None, 1).await;
    let job = wasmbatch_tests::finished(&batch, &late).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    let (submitted, started) = (job.created_at, job.started_at.unwrap());
    batch.cancel_job(&early, "done").await.unwrap();
    // Of the 10,000 ahead of it in submission order, at most one slot's worth was placed
    // between its submit and its start.
    let overtaking = ended_children(&batch, &early)
        .iter()
        .chain(
            batch
                .list_jobs(&ListJobs {
                    array_job_id: Some(early.clone()),
                    job_status: Some(JobStatus::Running),
                    ..Default::default()
                })
                .unwrap()
                .jobs
                .iter(),
        )
        .filter_map(|child| {
            child
                .attempts
                .first()
                .and_then(|a| a.started_at)
                .or(child.started_at)
        })
        .filter(|&at| at > submitted && at < started)
        .count();
    assert!(
        overtaking <= 1,
        "{overtaking} jobs of the early tenant started between the late one's submit and its start"
    );
    assert!(
        started - submitted < 2_000,
        "the late tenant waited {} ms",
        started - submitted
    );
    batch.close("test").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_keeps_capacity_for_a_tenant_that_arrives_later() {
    let dir = tempfile::tempdir().unwrap();
    // 50 %: one active share may use half of the 4 vCPUs; with two, three quarters.
    let batch = service(dir.path(), 4, json!({"computeReservation": 50})).await;
    let first = submit(&batch, "first", Some(20), 5_000).await;
    tokio::time::timeout(Duration::from_secs(30), async {
        while batch.job_queue_snapshot("shared").unwrap().vcpus_in_use < 2.0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the first tenant's jobs start");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snapshot = batch.job_queue_snapshot("shared").unwrap();
    assert_eq!(snapshot.vcpus_in_use, 2.0, "half is kept: {snapshot:?}");
    assert_eq!(snapshot.active_shares, 1);
    // The late tenant finds room at once, though every running job of the first has seconds
    // left: no job had to end for it.
    let late = submit(&batch, "second", None, 1).await;
    let job = wasmbatch_tests::finished(&batch, &late).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    let waited = job.started_at.unwrap() - job.created_at;
    assert!(waited < 2_000, "the second tenant waited {waited} ms");
    let running_first = batch
        .list_jobs(&ListJobs {
            array_job_id: Some(first.clone()),
            job_status: Some(JobStatus::Running),
            ..Default::default()
        })
        .unwrap()
        .jobs;
    // With two shares active a quarter is kept: the first may grow to 3, never to 4.
    assert!(
        running_first.len() <= 3,
        "the first tenant holds {} vCPUs of 4",
        running_first.len()
    );
    batch.terminate_job(&first, "done").await.unwrap();
    batch.close("test").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_a_share_priority_goes_first_and_the_snapshot_shows_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path(), 1, json!({})).await;
    batch
        .update_compute_environment(decode(
            json!({"computeEnvironment": "local", "state": "DISABLED"}),
        ))
        .await
        .unwrap();
    let mut ids = HashMap::new();
    for (name, share, priority) in [
        ("low", "red", 1),
        ("high", "red", 9),
        ("other-share", "blue", 0),
        ("middle", "red", 5),
    ] {
        let request = json!({
            "jobName": name, "jobQueue": "shared", "jobDefinition": "sleep",
            "shareIdentifier": share, "schedulingPriorityOverride": priority,
            "containerOverrides": {"command": ["1"]}
        });
        let id = batch
            .submit_job(decode::<SubmitJob>(request))
            .await
            .unwrap()
            .job_id;
        ids.insert(id, name);
    }
    let snapshot = batch.job_queue_snapshot("shared").unwrap();
    let order: Vec<&str> = snapshot
        .front_of_queue
        .iter()
        .map(|j| ids[j.job_arn.rsplit('/').next().unwrap()])
        .collect();
    // Two idle shares of equal weight alternate, blue (first by name) first; red's jobs go by
    // priority.
    assert_eq!(order, ["other-share", "high", "middle", "low"]);
    let high = ids.iter().find(|(_, n)| **n == "high").unwrap().0;
    let job = describe(&batch, high);
    assert_eq!(job.share_identifier.as_deref(), Some("red"));
    assert_eq!(job.scheduling_priority, Some(9));
    let listed = batch
        .list_jobs(&ListJobs {
            job_queue: Some("shared".into()),
            filters: vec![decode(
                json!({"name": "SHARE_IDENTIFIER", "values": ["blu*"]}),
            )],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.jobs.len(), 1);
    assert_eq!(listed.jobs[0].job_name, "other-share");
    batch.close("test").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fair_share_queue_needs_a_share_and_a_fifo_queue_takes_none() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path(), 1, json!({})).await;
    wasmbatch_tests::job_queue(&batch, "fifo", 1, "local").await;
    let refused = |queue: &str, share: Option<&str>| {
        let mut request = json!({"jobName": "j", "jobQueue": queue, "jobDefinition": "sleep"});
        if let Some(share) = share {
            request["shareIdentifier"] = json!(share);
        }
        decode::<SubmitJob>(request)
    };
    let error = batch.submit_job(refused("shared", None)).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("shareIdentifier: is required"),
        "{error}"
    );
    let error = batch
        .submit_job(refused("fifo", Some("red")))
        .await
        .unwrap_err();
    assert!(
        error.to_string().starts_with("shareIdentifier:")
            && error
                .to_string()
                .contains("no fair-share scheduling policy"),
        "{error}"
    );
    assert!(batch.job_counts("shared").unwrap().is_empty());
    assert!(batch.job_counts("fifo").unwrap().is_empty());
    batch.close("test").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_usage_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path(), 2, json!({})).await;
    let heavy = submit(&batch, "heavy", Some(4), 300).await;
    wasmbatch_tests::finished(&batch, &heavy).await;
    let before = batch.job_queue_snapshot("shared").unwrap();
    let usage = |s: &wasmbatch_runtime::QueueSnapshot| {
        s.shares
            .iter()
            .find(|u| u.share_identifier == "heavy")
            .map(|u| u.usage_vcpu_seconds)
    };
    let used = usage(&before).expect("the share is known");
    assert!(used > 1.0, "4 × 0.3 vCPU-seconds and more: {used}");
    let batch = wasmbatch_tests::reopen(batch, BatchConfig::new(dir.path())).await;
    let after = usage(&batch.job_queue_snapshot("shared").unwrap()).expect("still known");
    assert!(
        (after - used).abs() < 0.25 * used,
        "usage before the restart {used}, after {after}"
    );
    batch.close("test").await.unwrap();
}
