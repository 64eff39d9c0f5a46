//! Response shapes of the AWS model that are not the domain's own: a job as DescribeJobs
//! (`JobDetail`) and ListJobs (`JobSummary`) report it, with its container and attempts nested,
//! and a queue as GetJobQueueSnapshot reports it.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use wasmbatch_runtime::QueueSnapshot;
use wasmbatch_runtime::model::container::JobContainer;
use wasmbatch_runtime::model::{Job, JobStatus};

/// `JobDetail`: the job, its container (what it runs, and its latest attempt's end), its
/// attempts, its array summary.
pub(crate) fn job_detail(
    job: &Job,
    resolved: Option<JobContainer>,
    summary: Option<BTreeMap<JobStatus, u32>>,
) -> Value {
    let mut detail = serde_json::to_value(job).unwrap_or_else(|_| json!({}));
    let object = detail.as_object_mut().expect("a job is an object");
    object.remove("sequence");
    object.remove("remote");
    let attempts: Vec<Value> = job
        .attempts
        .iter()
        .map(|a| {
            json!({
                "startedAt": a.started_at,
                "stoppedAt": a.stopped_at,
                "statusReason": a.status_reason,
                "container": {"exitCode": a.exit_code, "reason": a.reason, "logStreamName": a.log_stream_name,
                    "fuelConsumed": a.fuel_consumed, "peakMemoryBytes": a.peak_memory_bytes, "worker": a.worker,
                    "imageDigest": a.image_digest},
            })
        })
        .collect();
    object.insert("attempts".into(), Value::Array(attempts));
    let last = job.attempts.last();
    let mut container = json!({
        "exitCode": last.and_then(|a| a.exit_code),
        "reason": last.and_then(|a| a.reason.clone()),
        "logStreamName": last.and_then(|a| a.log_stream_name.clone()),
        "fuelConsumed": last.and_then(|a| a.fuel_consumed),
        "peakMemoryBytes": last.and_then(|a| a.peak_memory_bytes),
        "imageDigest": last.and_then(|a| a.image_digest.clone()),
    });
    if let Some(resolved) = resolved {
        let environment: Vec<Value> = resolved
            .environment
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        container["image"] = json!(resolved.image);
        container["command"] = json!(resolved.command);
        container["environment"] = json!(environment);
        container["resourceRequirements"] = json!(resolved.resource_requirements);
        // The effective values, as AWS reports them: ContainerDetail's `vcpus` is an integer,
        // so a fractional share (0.25, as on Fargate) is in resourceRequirements only.
        let vcpus = resolved.vcpus();
        if vcpus.fract() == 0.0 {
            container["vcpus"] = json!(vcpus as u64);
        }
        container["memory"] = json!(resolved.memory_mib());
    }
    object.insert("container".into(), container);
    if let Some(array) = job.array_properties {
        let mut properties = json!({"size": array.size, "index": array.index});
        if let Some(summary) = summary {
            let counts: BTreeMap<String, u32> = summary
                .into_iter()
                .map(|(s, n)| (s.to_string(), n))
                .collect();
            properties["statusSummary"] = json!(counts);
        }
        object.insert("arrayProperties".into(), properties);
    }
    strip_nulls(&mut detail);
    with_tags(&mut detail);
    detail
}

/// Puts `tags: {}` on a job or definition that has none: AWS reports the member either way.
pub(crate) fn with_tags(resource: &mut Value) {
    if let Some(object) = resource.as_object_mut() {
        object.entry("tags").or_insert_with(|| json!({}));
    }
}

/// `JobSummary`, as ListJobs reports each job. AWS's shape has the job's `shareIdentifier` but
/// not its `schedulingPriority` (DescribeJobs reports both).
pub(crate) fn job_summary(job: &Job) -> Value {
    let last = job.attempts.last();
    let mut summary = json!({
        "jobArn": job.job_arn,
        "jobId": job.job_id,
        "jobName": job.job_name,
        "createdAt": job.created_at,
        "status": job.status,
        "statusReason": job.status_reason,
        "startedAt": job.started_at,
        "stoppedAt": job.stopped_at,
        "jobDefinition": job.job_definition,
        "isCancelled": job.is_cancelled,
        "isTerminated": job.is_terminated,
        "shareIdentifier": job.share_identifier,
        "container": {"exitCode": last.and_then(|a| a.exit_code), "reason": last.and_then(|a| a.reason.clone())},
        "arrayProperties": job.array_properties.map(|a| json!({"size": a.size, "index": a.index})),
    });
    strip_nulls(&mut summary);
    summary
}

/// Most shares `fairshareUtilization.topCapacityUtilization` lists (AWS's number).
const TOP_SHARES: usize = 20;

/// `GetJobQueueSnapshotResponse`: the front of the queue and its capacity use, per share on a
/// fair-share queue. Capacity is counted in vCPUs, the unit AWS uses for EC2. Each share also
/// carries members of ours, which AWS does not report and the SDKs pass over: its
/// `weightFactor`, its decayed `usageVcpuSeconds` (what the scheduler orders shares by) and its
/// `runnableJobs`, so that `wasmbatch queues` can show why a share waits.
pub(crate) fn queue_snapshot(snapshot: &QueueSnapshot) -> Value {
    let vcpus = |quantity: f64| json!([{"capacityUnit": "VCPU", "quantity": quantity}]);
    let jobs: Vec<Value> = snapshot
        .front_of_queue
        .iter()
        .map(|job| json!({"jobArn": job.job_arn, "earliestTimeAtPosition": job.earliest_time_at_position}))
        .collect();
    let mut utilization = json!({
        "totalCapacityUsage": vcpus(snapshot.vcpus_in_use),
        "lastUpdatedAt": snapshot.last_updated_at,
    });
    // A FIFO queue has no shares, and AWS leaves the member out for it.
    if snapshot.active_shares > 0 || !snapshot.shares.is_empty() {
        let top: Vec<Value> = snapshot
            .shares
            .iter()
            .take(TOP_SHARES)
            .map(|share| {
                json!({"shareIdentifier": share.share_identifier,
                    "capacityUsage": vcpus(share.vcpus_in_use),
                    "weightFactor": share.weight_factor,
                    "usageVcpuSeconds": share.usage_vcpu_seconds,
                    "runnableJobs": share.runnable_jobs})
            })
            .collect();
        utilization["fairshareUtilization"] = json!({
            "activeShareCount": snapshot.active_shares,
            "topCapacityUtilization": top,
        });
    }
    json!({
        "frontOfQueue": {"jobs": jobs, "lastUpdatedAt": snapshot.last_updated_at},
        "queueUtilization": utilization,
    })
}

/// The AWS services leave out members they have no value for, rather than sending null.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
            map.retain(|_, v| !matches!(v, Value::Object(m) if m.is_empty()));
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use wasmbatch_runtime::{FrontOfQueueJob, ShareUsage};

    use super::*;

    fn share(name: &str, vcpus: f64) -> ShareUsage {
        ShareUsage {
            share_identifier: name.into(),
            weight_factor: 1.0,
            vcpus_in_use: vcpus,
            usage_vcpu_seconds: 0.0,
            runnable_jobs: 0,
        }
    }

    #[test]
    fn a_jobs_share_and_priority_are_reported_as_the_model_has_them() {
        let job: Job = serde_json::from_value(json!({
            "jobId": "a", "jobArn": "arn:aws:batch:us-east-1:000000000000:job/a", "jobName": "a",
            "jobQueue": "arn:aws:batch:us-east-1:000000000000:job-queue/q",
            "jobDefinition": "arn:aws:batch:us-east-1:000000000000:job-definition/d:1",
            "status": "RUNNABLE", "createdAt": 1, "shareIdentifier": "teamA",
            "schedulingPriority": 7
        }))
        .unwrap();
        let detail = job_detail(&job, None, None);
        assert_eq!(detail["shareIdentifier"], "teamA");
        assert_eq!(detail["schedulingPriority"], 7);
        // JobSummary has a share but no priority in the AWS model.
        let summary = job_summary(&job);
        assert_eq!(summary["shareIdentifier"], "teamA");
        assert!(summary.get("schedulingPriority").is_none(), "{summary}");
        let fifo = Job {
            share_identifier: None,
            scheduling_priority: None,
            ..job
        };
        assert!(
            job_detail(&fifo, None, None)
                .get("shareIdentifier")
                .is_none()
        );
        assert!(job_summary(&fifo).get("shareIdentifier").is_none());
    }

    #[test]
    fn a_fifo_queue_snapshot_has_no_fairshare_utilization() {
        let snapshot = QueueSnapshot {
            front_of_queue: vec![FrontOfQueueJob {
                job_arn: "arn:aws:batch:us-east-1:000000000000:job/a".into(),
                earliest_time_at_position: 5,
            }],
            last_updated_at: 7,
            vcpus_in_use: 2.0,
            active_shares: 0,
            shares: Vec::new(),
        };
        assert_eq!(
            queue_snapshot(&snapshot),
            json!({
                "frontOfQueue": {"jobs": [{"jobArn": "arn:aws:batch:us-east-1:000000000000:job/a",
                    "earliestTimeAtPosition": 5}], "lastUpdatedAt": 7},
                "queueUtilization": {"totalCapacityUsage": [{"capacityUnit": "VCPU", "quantity": 2.0}],
                    "lastUpdatedAt": 7},
            })
        );
    }

    #[test]
    fn a_fair_share_queue_snapshot_lists_its_top_twenty_shares_in_order() {
        let shares: Vec<ShareUsage> = (0..25)
            .map(|i| share(&format!("s{i}"), f64::from(25 - i)))
            .collect();
        let snapshot = QueueSnapshot {
            front_of_queue: Vec::new(),
            last_updated_at: 7,
            vcpus_in_use: 325.0,
            active_shares: 25,
            shares,
        };
        let reply = queue_snapshot(&snapshot);
        let fair = &reply["queueUtilization"]["fairshareUtilization"];
        assert_eq!(fair["activeShareCount"], 25);
        let top = fair["topCapacityUtilization"].as_array().unwrap();
        assert_eq!(top.len(), 20);
        assert_eq!(
            top[0],
            json!({"shareIdentifier": "s0", "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 25.0}],
                "weightFactor": 1.0, "usageVcpuSeconds": 0.0, "runnableJobs": 0})
        );
        assert_eq!(top[19]["shareIdentifier"], "s19");
        assert_eq!(reply["frontOfQueue"]["jobs"], json!([]));
    }
}
