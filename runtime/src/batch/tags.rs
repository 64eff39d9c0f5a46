//! Tags: ListTagsForResource, TagResource and UntagResource on environments, queues,
//! scheduling policies, definition revisions and jobs, by ARN.

use std::collections::BTreeMap;

use crate::model::arn::ResourceKind;
use crate::model::validate;

use super::definitions::parse_revision;
use super::{Batch, BatchConfig, BatchError};

/// What an ARN of this service names.
enum Tagged {
    Environment(String),
    Queue(String),
    Policy(String),
    Definition(String, u32),
    Job(String),
}

fn tagged(config: &BatchConfig, arn: &str) -> Result<Tagged, BatchError> {
    let (kind, name) = config.parse_arn("resourceArn", arn)?;
    Ok(match kind {
        ResourceKind::ComputeEnvironment => Tagged::Environment(name.to_string()),
        ResourceKind::JobQueue => Tagged::Queue(name.to_string()),
        ResourceKind::SchedulingPolicy => Tagged::Policy(name.to_string()),
        ResourceKind::JobDefinition => parse_revision(name)
            .map(|(n, r)| Tagged::Definition(n, r))
            .ok_or_else(|| {
                BatchError::invalid(
                    "resourceArn",
                    format!("{arn:?}: a job definition's ARN names a revision (…/NAME:REVISION)"),
                )
            })?,
        ResourceKind::Job => Tagged::Job(name.to_string()),
        ResourceKind::Module | ResourceKind::Volume | ResourceKind::Registry => {
            return Err(BatchError::invalid(
                "resourceArn",
                format!("{arn:?}: modules, volumes and registries take no tags"),
            ));
        }
    })
}

impl Batch {
    /// The tags of a resource (by ARN).
    pub fn list_tags(&self, arn: &str) -> Result<BTreeMap<String, String>, BatchError> {
        let state = self.shared.lock();
        let not_found = || BatchError::NotFound {
            what: "resource",
            name: arn.to_string(),
        };
        match tagged(&self.shared.config, arn)? {
            Tagged::Environment(name) => state.envs.get(&name).map(|s| s.env.tags.clone()),
            Tagged::Queue(name) => state.queues.get(&name).map(|q| q.queue.tags.clone()),
            Tagged::Policy(name) => state.policies.get(&name).map(|p| p.tags.clone()),
            Tagged::Definition(name, revision) => {
                state.revision(&name, revision).map(|d| d.tags.clone())
            }
            Tagged::Job(id) => state
                .jobs
                .get(id.as_str())
                .map(|j| j.submission.details().tags.clone()),
        }
        .ok_or_else(not_found)
    }

    /// TagResource (`add`) and UntagResource (`remove`), applied and persisted together.
    pub async fn tag_resource(
        &self,
        arn: &str,
        add: BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), BatchError> {
        validate::tags("tags", &add)?;
        let target = tagged(&self.shared.config, arn)?;
        let not_found = || BatchError::NotFound {
            what: "resource",
            name: arn.to_string(),
        };
        let apply = |tags: &mut BTreeMap<String, String>| -> Result<(), BatchError> {
            let mut next = tags.clone();
            for key in remove {
                next.remove(key);
            }
            next.extend(add.clone());
            if next.len() > validate::MAX_TAGS {
                return Err(BatchError::invalid(
                    "tags",
                    format!(
                        "at most {} tags per resource, would be {}",
                        validate::MAX_TAGS,
                        next.len()
                    ),
                ));
            }
            *tags = next;
            Ok(())
        };
        self.change(|state| match target {
            Tagged::Environment(name) => {
                let slot = state.envs.get_mut(&name).ok_or_else(not_found)?;
                apply(&mut slot.env.tags)?;
                state.touch_environment(&name);
                Ok(())
            }
            Tagged::Queue(name) => {
                let slot = state.queues.get_mut(&name).ok_or_else(not_found)?;
                apply(&mut slot.queue.tags)?;
                state.touch_queue(&name);
                Ok(())
            }
            Tagged::Policy(name) => {
                let policy = state.policies.get_mut(&name).ok_or_else(not_found)?;
                apply(&mut policy.tags)?;
                state.touch_policy(&name);
                Ok(())
            }
            Tagged::Definition(name, revision) => {
                let definition = state.revision_mut(&name, revision).ok_or_else(not_found)?;
                apply(&mut definition.tags)
            }
            Tagged::Job(id) => {
                let job = state.jobs.get(id.as_str()).ok_or_else(not_found)?;
                if let Some(parent) = job.array_parent() {
                    // As in AWS: a child's tags are its array's.
                    return Err(BatchError::invalid(
                        "resourceArn",
                        format!("{id} is an array child; tag its array job {parent}"),
                    ));
                }
                let mut submission = (*job.submission).clone();
                apply(&mut submission.details_mut().tags)?;
                let submission = std::sync::Arc::new(submission);
                let size = job.array_properties.and_then(|a| a.size).unwrap_or(0);
                // The children share the parent's submission; only the parent's record holds it.
                for index in 0..size {
                    if let Some(child) = state.jobs.get_mut(format!("{id}:{index}").as_str()) {
                        child.submission = submission.clone();
                    }
                }
                state
                    .jobs
                    .get_mut(id.as_str())
                    .expect("found above")
                    .submission = submission;
                state.touch_job(&id);
                Ok(())
            }
        })
        .await
    }
}
