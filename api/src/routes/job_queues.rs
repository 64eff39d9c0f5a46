//! CreateJobQueue, DescribeJobQueues, UpdateJobQueue, DeleteJobQueue, GetJobQueueSnapshot.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::model::JobStatus;
use wasmbatch_runtime::{Batch, ResourceKind};

use super::{MAX_BODY, Payload, Reply, Who, decode, resource_arn};

pub(crate) async fn create(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: wasmbatch_runtime::model::CreateJobQueue =
        decode(&body, MAX_BODY, "CreateJobQueue")?;
    let arn = resource_arn(
        &batch,
        ResourceKind::JobQueue,
        "jobQueueName",
        &request.job_queue_name,
    )?;
    caller.authorize("batch:CreateJobQueue", &[&arn])?;
    authorize_uses(
        &batch,
        &caller,
        "batch:CreateJobQueue",
        &request.compute_environment_order,
        request.scheduling_policy_arn.as_deref(),
    )?;
    let queue = batch.create_job_queue(request).await?;
    Ok(Json(
        json!({ "jobQueueName": queue.job_queue_name, "jobQueueArn": queue.job_queue_arn }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Describe {
    #[serde(default)]
    job_queues: Vec<String>,
}

pub(crate) async fn describe(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: Describe = decode(&body, MAX_BODY, "DescribeJobQueues")?;
    caller.authorize("batch:DescribeJobQueues", &["*"])?;
    Ok(Json(
        json!({ "jobQueues": batch.describe_job_queues(&request.job_queues) }),
    ))
}

pub(crate) async fn update(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: wasmbatch_runtime::model::UpdateJobQueue =
        decode(&body, MAX_BODY, "UpdateJobQueue")?;
    let arn = resource_arn(
        &batch,
        ResourceKind::JobQueue,
        "jobQueue",
        &request.job_queue,
    )?;
    caller.authorize("batch:UpdateJobQueue", &[&arn])?;
    authorize_uses(
        &batch,
        &caller,
        "batch:UpdateJobQueue",
        request
            .compute_environment_order
            .as_deref()
            .unwrap_or_default(),
        request.scheduling_policy_arn.as_deref(),
    )?;
    let queue = batch.update_job_queue(request).await?;
    Ok(Json(
        json!({ "jobQueueName": queue.job_queue_name, "jobQueueArn": queue.job_queue_arn }),
    ))
}

/// A request that names one queue: DeleteJobQueue, GetJobQueueSnapshot.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueNamed {
    job_queue: String,
}

pub(crate) async fn delete(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: QueueNamed = decode(&body, MAX_BODY, "DeleteJobQueue")?;
    let arn = resource_arn(
        &batch,
        ResourceKind::JobQueue,
        "jobQueue",
        &request.job_queue,
    )?;
    caller.authorize("batch:DeleteJobQueue", &[&arn])?;
    batch.delete_job_queue(&request.job_queue).await?;
    Ok(Json(json!({})))
}

/// A queue spends the capacity of the environments it names and follows the policy it names,
/// so, as in IAM, creating or changing one needs the action on each of them too: else a team
/// could point its queue at another team's environment and take its capacity.
fn authorize_uses(
    batch: &Batch,
    caller: &crate::access::Caller,
    action: &str,
    order: &[wasmbatch_runtime::model::ComputeEnvironmentOrder],
    policy: Option<&str>,
) -> Result<(), crate::error::ApiError> {
    for (i, entry) in order.iter().enumerate() {
        let arn = resource_arn(
            batch,
            ResourceKind::ComputeEnvironment,
            &format!("computeEnvironmentOrder[{i}].computeEnvironment"),
            &entry.compute_environment,
        )?;
        caller.authorize(action, &[&arn])?;
    }
    if let Some(policy) = policy.filter(|p| !p.is_empty()) {
        let arn = resource_arn(
            batch,
            ResourceKind::SchedulingPolicy,
            "schedulingPolicyArn",
            policy,
        )?;
        caller.authorize(action, &[&arn])?;
    }
    Ok(())
}

/// Authorised on the queue's canonical ARN, as ListJobs is: the snapshot names its jobs.
pub(crate) async fn snapshot(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: QueueNamed = decode(&body, MAX_BODY, "GetJobQueueSnapshot")?;
    let arn = resource_arn(
        &batch,
        ResourceKind::JobQueue,
        "jobQueue",
        &request.job_queue,
    )?;
    caller.authorize("batch:GetJobQueueSnapshot", &[&arn])?;
    let snapshot = batch.job_queue_snapshot(&request.job_queue)?;
    Ok(Json(crate::shapes::queue_snapshot(&snapshot)))
}

/// `GET /v1/jobcounts` (ours; the console's queue table): each job queue the caller may
/// ListJobs on, with its jobs by status (array parents left out, their children counted). No
/// AWS operation reports counts; ListJobs would page through every job. Authorised per queue
/// as ListJobs is; a caller allowed it on no queue is refused.
pub(crate) async fn counts(State(batch): State<Batch>, Extension(caller): Who) -> Reply {
    caller.authorize_listing("batch:ListJobs", "*")?;
    let mut queues = Vec::new();
    for queue in batch.describe_job_queues(&[]) {
        if !caller.allows("batch:ListJobs", &[&queue.job_queue_arn]) {
            continue;
        }
        // A queue deleted since it was listed has no counts; it is left out.
        let Ok(counts) = batch.job_counts(&queue.job_queue_arn) else {
            continue;
        };
        let by_status: serde_json::Map<String, serde_json::Value> = JobStatus::ALL
            .iter()
            .map(|status| {
                (
                    status.to_string(),
                    counts.get(status).copied().unwrap_or(0).into(),
                )
            })
            .collect();
        queues.push(json!({"jobQueueName": queue.job_queue_name, "jobQueueArn": queue.job_queue_arn, "jobCounts": by_status}));
    }
    Ok(Json(json!({ "jobQueues": queues })))
}
