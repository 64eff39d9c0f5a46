//! SubmitJob, DescribeJobs, ListJobs, CancelJob, TerminateJob.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::model::{ListJobs, SubmitJob};
use wasmbatch_runtime::{Batch, ResourceKind};

use super::{MAX_BODY, Payload, Reply, Who, authorize_job, decode, resource_arn};
use crate::shapes::{job_detail, job_summary};

/// AWS's limit on a SubmitJob payload.
const MAX_SUBMIT: usize = 30 * 1024;

/// SubmitJob needs the action on both the queue and the definition, as in IAM, and the caller
/// must be allowed to describe every job it names in `dependsOn`.
pub(crate) async fn submit(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let mut request: SubmitJob = decode(&body, MAX_SUBMIT, "SubmitJob")?;
    let queue = resource_arn(
        &batch,
        ResourceKind::JobQueue,
        "jobQueue",
        &request.job_queue,
    )?;
    // The share a job names is charged for its capacity: a policy can keep a key to its own
    // (`batch:ShareIdentifier`), as IAM does, or a team could spend another's share.
    let context = crate::access::policy::Context {
        share_identifier: request.share_identifier.as_deref(),
    };
    caller.authorize_in("batch:SubmitJob", &[&queue], &context)?;
    let definition = resource_arn(
        &batch,
        ResourceKind::JobDefinition,
        "jobDefinition",
        &request.job_definition,
    )?;
    caller.authorize_in("batch:SubmitJob", &[&definition], &context)?;
    // A dependency lets the new job learn how another ended ("Dependent Job failed"), and its
    // existence: so the caller must be allowed to see it, as DescribeJobs would judge it.
    for dependency in &request.depends_on {
        if let Some(id) = &dependency.job_id {
            authorize_job(&caller, &batch, "batch:DescribeJobs", id)?;
        }
    }
    request.submitted_by = Some(caller.name.clone());
    let job = batch.submit_job(request).await?;
    Ok(Json(
        json!({ "jobArn": job.job_arn, "jobName": job.job_name, "jobId": job.job_id }),
    ))
}

#[derive(Deserialize)]
struct Describe {
    jobs: Vec<String>,
}

/// Refused whole if any id named is one the caller may not see, as IAM does; ids that name no
/// job are left out, as AWS does. An id that names no job is judged by the ARN its job would
/// have, as CancelJob judges it, so that a caller kept to its own queue cannot tell another
/// queue's job ids from ids that name nothing.
pub(crate) async fn describe(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: Describe = decode(&body, MAX_BODY, "DescribeJobs")?;
    let jobs = batch.describe_jobs(&request.jobs)?;
    for id in &request.jobs {
        authorize_job(&caller, &batch, "batch:DescribeJobs", id)?;
    }
    let details: Vec<_> = jobs
        .iter()
        .map(|job| {
            job_detail(
                job,
                batch.job_container(job),
                batch.array_summary(&job.job_id),
            )
        })
        .collect();
    Ok(Json(json!({ "jobs": details })))
}

pub(crate) async fn list(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: ListJobs = decode(&body, MAX_BODY, "ListJobs")?;
    match (&request.job_queue, &request.array_job_id) {
        (Some(queue), _) => {
            let arn = resource_arn(&batch, ResourceKind::JobQueue, "jobQueue", queue)?;
            caller.authorize("batch:ListJobs", &[&arn])?;
        }
        (None, Some(parent)) => authorize_job(&caller, &batch, "batch:ListJobs", parent)?,
        (None, None) => caller.authorize("batch:ListJobs", &["*"])?,
    }
    let page = batch.list_jobs(&request)?;
    let summaries: Vec<_> = page.jobs.iter().map(job_summary).collect();
    let mut reply = json!({ "jobSummaryList": summaries });
    if let Some(token) = page.next_token {
        reply["nextToken"] = json!(token);
    }
    Ok(Json(reply))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stop {
    job_id: String,
    reason: String,
}

pub(crate) async fn cancel(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: Stop = decode(&body, MAX_BODY, "CancelJob")?;
    authorize_job(&caller, &batch, "batch:CancelJob", &request.job_id)?;
    batch.cancel_job(&request.job_id, &request.reason).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn terminate(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: Stop = decode(&body, MAX_BODY, "TerminateJob")?;
    authorize_job(&caller, &batch, "batch:TerminateJob", &request.job_id)?;
    batch
        .terminate_job(&request.job_id, &request.reason)
        .await?;
    Ok(Json(json!({})))
}
