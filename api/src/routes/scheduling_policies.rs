//! CreateSchedulingPolicy, DescribeSchedulingPolicies, ListSchedulingPolicies,
//! UpdateSchedulingPolicy, DeleteSchedulingPolicy.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::model::{CreateSchedulingPolicy, UpdateSchedulingPolicy};
use wasmbatch_runtime::{Batch, ResourceKind};

use super::{MAX_BODY, Payload, Reply, Who, decode, resource_arn};

pub(crate) async fn create(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: CreateSchedulingPolicy = decode(&body, MAX_BODY, "CreateSchedulingPolicy")?;
    let arn = resource_arn(
        &batch,
        ResourceKind::SchedulingPolicy,
        "name",
        &request.name,
    )?;
    caller.authorize("batch:CreateSchedulingPolicy", &[&arn])?;
    let policy = batch.create_scheduling_policy(request).await?;
    Ok(Json(json!({ "name": policy.name, "arn": policy.arn })))
}

#[derive(Deserialize)]
struct Describe {
    arns: Vec<String>,
}

pub(crate) async fn describe(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: Describe = decode(&body, MAX_BODY, "DescribeSchedulingPolicies")?;
    // Each policy asked about is authorized by its canonical ARN, as a job is by its own:
    // the caller names them, so a policy can allow some and not others.
    for (i, reference) in request.arns.iter().enumerate() {
        let arn = resource_arn(
            &batch,
            ResourceKind::SchedulingPolicy,
            &format!("arns[{i}]"),
            reference,
        )?;
        caller.authorize("batch:DescribeSchedulingPolicies", &[&arn])?;
    }
    let policies = batch.describe_scheduling_policies(&request.arns)?;
    Ok(Json(json!({ "schedulingPolicies": policies })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct List {
    #[serde(default)]
    max_results: Option<u32>,
    #[serde(default)]
    next_token: Option<String>,
}

pub(crate) async fn list(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: List = decode(&body, MAX_BODY, "ListSchedulingPolicies")?;
    caller.authorize("batch:ListSchedulingPolicies", &["*"])?;
    let page =
        batch.list_scheduling_policies(request.max_results, request.next_token.as_deref())?;
    let listed: Vec<_> = page.arns.iter().map(|arn| json!({ "arn": arn })).collect();
    let mut reply = json!({ "schedulingPolicies": listed });
    if let Some(token) = page.next_token {
        reply["nextToken"] = json!(token);
    }
    Ok(Json(reply))
}

pub(crate) async fn update(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: UpdateSchedulingPolicy = decode(&body, MAX_BODY, "UpdateSchedulingPolicy")?;
    let arn = resource_arn(&batch, ResourceKind::SchedulingPolicy, "arn", &request.arn)?;
    caller.authorize("batch:UpdateSchedulingPolicy", &[&arn])?;
    batch.update_scheduling_policy(request).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct Delete {
    arn: String,
}

pub(crate) async fn delete(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: Delete = decode(&body, MAX_BODY, "DeleteSchedulingPolicy")?;
    let arn = resource_arn(&batch, ResourceKind::SchedulingPolicy, "arn", &request.arn)?;
    caller.authorize("batch:DeleteSchedulingPolicy", &[&arn])?;
    batch.delete_scheduling_policy(&request.arn).await?;
    Ok(Json(json!({})))
}
