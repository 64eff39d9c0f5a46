//! TagResource (`POST /v1/tags/{resourceArn}`), UntagResource (`DELETE …?tagKeys=…`) and
//! ListTagsForResource (`GET …`), for environments, queues, definitions and jobs.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::Batch;

use super::{MAX_BODY, Payload, Reply, Who, decode};

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
    caller.authorize("batch:TagResource", &[&arn])?;
    batch.tag_resource(&arn, request.tags, &[]).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn untag(
    State(batch): State<Batch>,
    Extension(caller): Who,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    caller.authorize("batch:UntagResource", &[&arn])?;
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
    caller.authorize("batch:ListTagsForResource", &[&arn])?;
    Ok(Json(json!({ "tags": batch.list_tags(&arn)? })))
}
