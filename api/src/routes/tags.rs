//! TagResource (`POST /v1/tags/{resourceArn}`), UntagResource (`DELETE …?tagKeys=…`) and
//! ListTagsForResource (`GET …`), for environments, queues, scheduling policies, definitions
//! and jobs.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::{Batch, ResourceKind};

use super::{MAX_BODY, Payload, Reply, Who, decode, job_resources};
use crate::access::Caller;
use crate::error::ApiError;

#[derive(Deserialize)]
struct Tag {
    tags: BTreeMap<String, String>,
}

pub(crate) async fn tag(
    State(batch): State<Batch>,
    Extension(caller): Who,
    Path(arn): Path<String>,
    body: Payload,
) -> Reply {
    let request: Tag = decode(&body, MAX_BODY, "TagResource")?;
    authorize(&caller, &batch, "batch:TagResource", &arn)?;
    batch.tag_resource(&arn, request.tags, &[]).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn untag(
    State(batch): State<Batch>,
    Extension(caller): Who,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    authorize(&caller, &batch, "batch:UntagResource", &arn)?;
    // `tagKeys` repeats, once per key, as the AWS clients send it.
    let keys: Vec<String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "tagKeys")
        .map(|(_, value)| value.into_owned())
        .collect();
    batch.tag_resource(&arn, BTreeMap::new(), &keys).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn list(
    State(batch): State<Batch>,
    Extension(caller): Who,
    Path(arn): Path<String>,
) -> Reply {
    authorize(&caller, &batch, "batch:ListTagsForResource", &arn)?;
    Ok(Json(json!({ "tags": batch.list_tags(&arn)? })))
}

/// Whether the caller may take `action` on the resource `arn` names: the ARN must be one of ours
/// (a look-alike is refused, not resolved by its last part), and a job is judged as DescribeJobs
/// judges it, by its own ARN and its queue's.
fn authorize(caller: &Caller, batch: &Batch, action: &str, arn: &str) -> Result<(), ApiError> {
    let (kind, name) = batch.config().parse_arn("resourceArn", arn)?;
    let resources = match kind {
        ResourceKind::Job => job_resources(batch, name),
        _ => vec![batch.config().arn(kind, name)],
    };
    let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
    caller.authorize(action, &resources)
}
