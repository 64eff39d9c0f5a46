//! RegisterJobDefinition, DescribeJobDefinitions, DeregisterJobDefinition.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::Batch;

use super::{MAX_BODY, Payload, Reply, Who, arn_of, decode, definition_arn};

/// AWS's limit on a job definition's payload.
const MAX_DEFINITION: usize = 24 * 1024;

pub(crate) async fn register(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: wasmbatch_runtime::model::RegisterJobDefinition =
        decode(&body, MAX_DEFINITION, "RegisterJobDefinition")?;
    let arn = arn_of(&batch, "job-definition", &request.job_definition_name);
    caller.authorize("batch:RegisterJobDefinition", &[&arn])?;
    let definition = batch.register_job_definition(request).await?;
    Ok(Json(json!({
        "jobDefinitionName": definition.job_definition_name,
        "jobDefinitionArn": definition.job_definition_arn,
        "revision": definition.revision,
    })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Describe {
    #[serde(default)]
    job_definitions: Vec<String>,
    #[serde(default)]
    job_definition_name: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

pub(crate) async fn describe(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: Describe = decode(&body, MAX_BODY, "DescribeJobDefinitions")?;
    caller.authorize("batch:DescribeJobDefinitions", &["*"])?;
    let definitions = batch.describe_job_definitions(
        &request.job_definitions,
        request.job_definition_name.as_deref(),
        request.status.as_deref(),
    );
    Ok(Json(json!({ "jobDefinitions": definitions })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Deregister {
    job_definition: String,
}

pub(crate) async fn deregister(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: Deregister = decode(&body, MAX_BODY, "DeregisterJobDefinition")?;
    let arn = definition_arn(&batch, &request.job_definition);
    caller.authorize("batch:DeregisterJobDefinition", &[&arn])?;
    batch
        .deregister_job_definition(&request.job_definition)
        .await?;
    Ok(Json(json!({})))
}
