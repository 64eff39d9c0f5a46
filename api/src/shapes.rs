//! Response shapes of the AWS model that are not the domain's own: a job as DescribeJobs
//! (`JobDetail`) and ListJobs (`JobSummary`) report it, with its container and attempts nested.

use std::collections::BTreeMap;

use serde_json::{Value, json};
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
    let attempts: Vec<Value> = job
        .attempts
        .iter()
        .map(|a| {
            json!({
                "startedAt": a.started_at,
                "stoppedAt": a.stopped_at,
                "statusReason": a.status_reason,
                "container": {"exitCode": a.exit_code, "reason": a.reason, "logStreamName": a.log_stream_name,
                    "fuelConsumed": a.fuel_consumed, "peakMemoryBytes": a.peak_memory_bytes},
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
    detail
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
