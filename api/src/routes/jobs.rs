//! SubmitJob, DescribeJobs, ListJobs, CancelJob, TerminateJob.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::Batch;
use wasmbatch_runtime::model::ListJobs;

use super::{MAX_BODY, Reply, decode};
use crate::shapes::{job_detail, job_summary};

/// AWS's limit on a SubmitJob payload.
const MAX_SUBMIT: usize = 30 * 1024;

pub(crate) async fn submit(State(batch): State<Batch>, body: Bytes) -> Reply {
    let request = decode(&body, MAX_SUBMIT, "SubmitJob")?;
    let job = batch.submit_job(request).await?;
    Ok(Json(
        json!({ "jobArn": job.job_arn, "jobName": job.job_name, "jobId": job.job_id }),
    ))
}

#[derive(Deserialize)]
struct Describe {
    jobs: Vec<String>,
}

pub(crate) async fn describe(State(batch): State<Batch>, body: Bytes) -> Reply {
    let request: Describe = decode(&body, MAX_BODY, "DescribeJobs")?;
    let jobs = batch.describe_jobs(&request.jobs)?;
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

pub(crate) async fn list(State(batch): State<Batch>, body: Bytes) -> Reply {
    let request: ListJobs = decode(&body, MAX_BODY, "ListJobs")?;
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

pub(crate) async fn cancel(State(batch): State<Batch>, body: Bytes) -> Reply {
    let request: Stop = decode(&body, MAX_BODY, "CancelJob")?;
    batch.cancel_job(&request.job_id, &request.reason).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn terminate(State(batch): State<Batch>, body: Bytes) -> Reply {
    let request: Stop = decode(&body, MAX_BODY, "TerminateJob")?;
    batch
        .terminate_job(&request.job_id, &request.reason)
        .await?;
    Ok(Json(json!({})))
}
