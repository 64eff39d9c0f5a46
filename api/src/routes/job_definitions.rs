//! RegisterJobDefinition, DescribeJobDefinitions, DeregisterJobDefinition.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::{Batch, ResourceKind};

use super::{MAX_BODY, Payload, Reply, Who, decode, resource_arn};

/// AWS's limit on a job definition's payload.
const MAX_DEFINITION: usize = 24 * 1024;

pub(crate) async fn register(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: wasmbatch_runtime::model::RegisterJobDefinition =
        decode(&body, MAX_DEFINITION, "RegisterJobDefinition")?;
    let name = batch.config().resource_name(
        ResourceKind::JobDefinition,
        "jobDefinitionName",
        &request.job_definition_name,
    )?;
    let arn = batch.config().arn(ResourceKind::JobDefinition, name);
    caller.authorize("batch:RegisterJobDefinition", &[&arn])?;
    // A host directory is a resource of its own: one team's key must not mount another's.
    for volume in batch.volume_arns(&request)? {
        caller.authorize("batch:UseVolume", &[&volume])?;
    }
    // So is the image, a module here or a registry repository: the server runs it (and pulls
    // it) with its own rights.
    if let Some(image) = batch.image_arn(&request)? {
        caller.authorize("batch:PullImage", &[&image])?;
    }
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
    let mut definitions = json!(definitions);
    for definition in definitions.as_array_mut().into_iter().flatten() {
        crate::shapes::with_tags(definition);
    }
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
    let arn = resource_arn(
        &batch,
        ResourceKind::JobDefinition,
        "jobDefinition",
        &request.job_definition,
    )?;
    caller.authorize("batch:DeregisterJobDefinition", &[&arn])?;
    batch
        .deregister_job_definition(&request.job_definition)
        .await?;
    Ok(Json(json!({})))
}
