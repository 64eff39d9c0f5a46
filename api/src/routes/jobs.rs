//! SubmitJob, DescribeJobs, ListJobs, CancelJob, TerminateJob, and their bulk forms CancelJobs
//! and TerminateJobs.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::model::validate::ValidationError;
use wasmbatch_runtime::model::{ListJobs, SubmitJob};
use wasmbatch_runtime::{Batch, ResourceKind};

use super::{MAX_BODY, Payload, Reply, Who, authorize_job, decode, resource_arn};
use crate::error::ApiError;
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

#[derive(Deserialize)]
struct StopMany {
    jobs: Vec<String>,
    reason: String,
}

/// Most jobs CancelJobs and TerminateJobs take, and the longest reason (AWS's limits).
const MAX_BULK: usize = 50;
const MAX_REASON: usize = 1024;

/// CancelJobs: CancelJob for each job, authorised one by one as `batch:CancelJob` (AWS has no
/// bulk action); the jobs the caller may not cancel are reported in `errors` and left alone.
pub(crate) async fn cancel_many(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: StopMany = decode(&body, MAX_BODY, "CancelJobs")?;
    let (allowed, errors) = authorize_each(&caller, &batch, "batch:CancelJob", &request)?;
    if !allowed.is_empty() {
        batch.cancel_jobs(&allowed, &request.reason).await?;
    }
    Ok(Json(json!({ "successful": allowed, "errors": errors })))
}

/// TerminateJobs: TerminateJob for each job, authorised one by one as `batch:TerminateJob`.
pub(crate) async fn terminate_many(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: StopMany = decode(&body, MAX_BODY, "TerminateJobs")?;
    let (allowed, errors) = authorize_each(&caller, &batch, "batch:TerminateJob", &request)?;
    if !allowed.is_empty() {
        batch.terminate_jobs(&allowed, &request.reason).await?;
    }
    Ok(Json(json!({ "successful": allowed, "errors": errors })))
}

/// The jobs of `request` the caller may take `action` on, in the order given, and an `errors`
/// entry (`{job, code, message}`) for each of the others. An id that names no job is judged by
/// the ARN its job would have, as CancelJob judges it, and, if allowed, counts as successful
/// (AWS). The request is checked whole first: a bad one is refused before any job is looked
/// at, whatever the caller may do. The runtime checks the same again, but it only sees the
/// allowed jobs, and none when every one is denied.
fn authorize_each(
    caller: &crate::access::Caller,
    batch: &Batch,
    action: &str,
    request: &StopMany,
) -> Result<(Vec<String>, Vec<serde_json::Value>), ApiError> {
    let invalid =
        |field: String, problem: String| ApiError::from(ValidationError { field, problem });
    if request.jobs.is_empty() || request.jobs.len() > MAX_BULK {
        return Err(invalid(
            "jobs".into(),
            format!("must name 1 to {MAX_BULK} jobs, got {}", request.jobs.len()),
        ));
    }
    if let Some(i) = request.jobs.iter().position(|id| id.is_empty()) {
        return Err(invalid(format!("jobs[{i}]"), "is empty".into()));
    }
    let reason = request.reason.chars().count();
    if reason == 0 || reason > MAX_REASON {
        return Err(invalid(
            "reason".into(),
            format!("must be 1 to {MAX_REASON} characters, got {reason}"),
        ));
    }
    let mut allowed = Vec::new();
    let mut errors = Vec::new();
    for id in &request.jobs {
        match authorize_job(caller, batch, action, id) {
            Ok(()) => allowed.push(id.clone()),
            Err(refused) => {
                let (code, message) = refused.code_and_message();
                errors.push(json!({ "job": id, "code": code, "message": message }));
            }
        }
    }
    Ok((allowed, errors))
}
