//! Scheduling policies: CreateSchedulingPolicy, DescribeSchedulingPolicies,
//! ListSchedulingPolicies, UpdateSchedulingPolicy and DeleteSchedulingPolicy, each change made
//! through the one write path ([`Batch::change`]). A queue names its policy by
//! `schedulingPolicyArn` (`queues`); what the weights mean for dispatch is the scheduler's, told
//! of every change through [`State::scheduling_changed`](super::state::State::scheduling_changed).

use crate::model::arn::ResourceKind;
use crate::model::scheduling::SchedulingPolicy;
use crate::model::validate;
use crate::model::{CreateSchedulingPolicy, UpdateSchedulingPolicy};

use super::{Batch, BatchError};

/// Most scheduling policies. AWS documents no quota; this is one for each of the 50 queues
/// there can be.
const MAX_POLICIES: usize = 50;

/// Most ARNs one DescribeSchedulingPolicies takes (AWS's limit).
const MAX_DESCRIBE: usize = 100;

/// Largest page of ListSchedulingPolicies, and its size when none is asked for (AWS's).
const MAX_PAGE: u32 = 100;

/// One page of ListSchedulingPolicies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulingPolicyPage {
    /// The policies' ARNs, in name order.
    pub arns: Vec<String>,
    /// Pass back to get the next page; `None` on the last.
    pub next_token: Option<String>,
}

impl Batch {
    /// CreateSchedulingPolicy.
    pub async fn create_scheduling_policy(
        &self,
        request: CreateSchedulingPolicy,
    ) -> Result<SchedulingPolicy, BatchError> {
        validate::scheduling_policy(&request)?;
        let config = &self.shared.config;
        self.change(|state| {
            let name = request.name;
            if state.policies.contains_key(&name) {
                return Err(BatchError::Conflict(format!(
                    "Object already exists: scheduling policy {name}"
                )));
            }
            if state.policies.len() >= MAX_POLICIES {
                return Err(BatchError::Conflict(format!(
                    "at most {MAX_POLICIES} scheduling policies"
                )));
            }
            let policy = SchedulingPolicy {
                arn: config.arn(ResourceKind::SchedulingPolicy, &name),
                name: name.clone(),
                fairshare_policy: request.fairshare_policy,
                tags: request.tags,
                extra: Default::default(),
            };
            state.policies.insert(name.clone(), policy.clone());
            state.touch_policy(&name);
            Ok(policy)
        })
        .await
    }

    /// DescribeSchedulingPolicies: the policies these ARNs (or names) name, in the order given;
    /// unknown ones are left out, as AWS does. An ARN that is not one of ours is refused.
    pub fn describe_scheduling_policies(
        &self,
        arns: &[String],
    ) -> Result<Vec<SchedulingPolicy>, BatchError> {
        if arns.len() > MAX_DESCRIBE {
            return Err(BatchError::invalid(
                "arns",
                format!("at most {MAX_DESCRIBE} ARNs, got {}", arns.len()),
            ));
        }
        let config = &self.shared.config;
        let names = arns
            .iter()
            .enumerate()
            .map(|(i, arn)| {
                config.resource_name(ResourceKind::SchedulingPolicy, &format!("arns[{i}]"), arn)
            })
            .collect::<Result<Vec<&str>, _>>()?;
        let state = self.shared.lock();
        Ok(names
            .into_iter()
            .filter_map(|name| state.policies.get(name).cloned())
            .collect())
    }

    /// ListSchedulingPolicies: up to `max_results` (1 to 100, default 100) policies in name
    /// order, after the one `next_token` (a previous page's) ended at.
    pub fn list_scheduling_policies(
        &self,
        max_results: Option<u32>,
        next_token: Option<&str>,
    ) -> Result<SchedulingPolicyPage, BatchError> {
        let limit = max_results.unwrap_or(MAX_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(BatchError::invalid(
                "maxResults",
                format!("must be between 1 and {MAX_PAGE}, got {limit}"),
            ));
        }
        // The token is the last name of the previous page, so a policy created or deleted
        // between pages neither repeats nor hides another.
        if let Some(token) = next_token
            && validate::name("nextToken", token).is_err()
        {
            return Err(BatchError::invalid(
                "nextToken",
                format!("{token:?} is not a token this service gave"),
            ));
        }
        let state = self.shared.lock();
        let after = match next_token {
            Some(token) => std::ops::Bound::Excluded(token),
            None => std::ops::Bound::Unbounded,
        };
        let mut policies = state
            .policies
            .range::<str, _>((after, std::ops::Bound::Unbounded))
            .map(|(_, policy)| policy);
        let page: Vec<&SchedulingPolicy> = policies.by_ref().take(limit as usize).collect();
        let next_token = match (policies.next(), page.last()) {
            (Some(_), Some(last)) => Some(last.name.clone()),
            _ => None,
        };
        Ok(SchedulingPolicyPage {
            arns: page.into_iter().map(|p| p.arn.clone()).collect(),
            next_token,
        })
    }

    /// UpdateSchedulingPolicy: a `fairsharePolicy` given replaces the policy's whole, as on
    /// AWS; the queues that name the policy dispatch by the new one from then on.
    pub async fn update_scheduling_policy(
        &self,
        request: UpdateSchedulingPolicy,
    ) -> Result<SchedulingPolicy, BatchError> {
        let name = self
            .shared
            .config
            .resource_name(ResourceKind::SchedulingPolicy, "arn", &request.arn)?
            .to_string();
        validate::scheduling_policy_update(&request)?;
        self.change(|state| {
            let policy = state
                .policies
                .get_mut(&name)
                .ok_or_else(|| BatchError::NotFound {
                    what: "scheduling policy",
                    name: name.clone(),
                })?;
            if let Some(fairshare) = request.fairshare_policy {
                policy.fairshare_policy = Some(fairshare);
            }
            let updated = policy.clone();
            state.touch_policy(&name);
            state.scheduling_changed();
            Ok(updated)
        })
        .await
    }

    /// DeleteSchedulingPolicy: refused while a job queue names it, as AWS does (a fair-share
    /// queue's policy can be replaced, never removed, so such a queue must go first).
    pub async fn delete_scheduling_policy(&self, arn: &str) -> Result<(), BatchError> {
        let name = self
            .shared
            .config
            .resource_name(ResourceKind::SchedulingPolicy, "arn", arn)?
            .to_string();
        self.change(|state| {
            let policy = state
                .policies
                .get(&name)
                .ok_or_else(|| BatchError::NotFound {
                    what: "scheduling policy",
                    name: name.clone(),
                })?;
            let users: Vec<&str> = state
                .queues
                .values()
                .filter(|q| q.queue.scheduling_policy_arn.as_deref() == Some(policy.arn.as_str()))
                .map(|q| q.queue.job_queue_name.as_str())
                .collect();
            if !users.is_empty() {
                return Err(BatchError::Conflict(format!(
                    "scheduling policy {name} is used by job queues {}; delete them first",
                    users.join(", ")
                )));
            }
            state.policies.remove(&name);
            state.touch_policy(&name);
            Ok(())
        })
        .await
    }
}
