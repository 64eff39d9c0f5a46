//! Fair-share scheduling as AWS Batch models it: scheduling policies (their share weights,
//! decay and reservation) and the time limits a queue puts on jobs stuck at its head. The rules
//! that follow from them live with the scheduler (`batch::line`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Extra;

/// A scheduling policy: a queue that names one dispatches by fair share, not FIFO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingPolicy {
    /// Unique name, `[A-Za-z0-9_-]{1,128}`.
    pub name: String,
    /// `arn:aws:batch:<region>:<account>:scheduling-policy/<name>`.
    pub arn: String,
    /// The fair-share parameters (a policy without them shares equally, with no decay window
    /// beyond the default and no reservation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairshare_policy: Option<FairsharePolicy>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Accepted and echoed, not used.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How a fair-share queue divides its capacity between share identifiers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FairsharePolicy {
    /// The window, in seconds, over which past usage counts (0..604800; 0 means AWS's default
    /// of 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_decay_seconds: Option<i32>,
    /// Percent (0..99) of the queue's vCPUs kept for share identifiers not active yet, as
    /// `(computeReservation/100)^activeShares`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_reservation: Option<i32>,
    /// Weights of share identifiers (or of prefixes ending in `*`); others weigh 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub share_distribution: Vec<ShareAttributes>,
}

/// The weight of one share identifier, or of every identifier with a prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareAttributes {
    /// An identifier, or a prefix followed by `*`.
    pub share_identifier: String,
    /// 0.0001..999.9999, default 1: **lower gets more** (0.125 gets 8 times what 1 gets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_factor: Option<f64>,
}

/// AWS's default decay window, used when `shareDecaySeconds` is absent or 0.
pub const DEFAULT_SHARE_DECAY_SECONDS: u32 = 600;

impl FairsharePolicy {
    /// The decay window in seconds.
    pub fn decay_seconds(&self) -> u32 {
        match self.share_decay_seconds {
            Some(s) if s > 0 => s as u32,
            _ => DEFAULT_SHARE_DECAY_SECONDS,
        }
    }

    /// The weight of share `share`: its own entry, else the longest prefix entry that covers
    /// it, else 1.
    pub fn weight(&self, share: &str) -> f64 {
        let mut best: Option<(usize, f64)> = None;
        for entry in &self.share_distribution {
            let weight = entry.weight_factor.unwrap_or(1.0);
            match entry.share_identifier.strip_suffix('*') {
                None if entry.share_identifier == share => return weight,
                Some(prefix)
                    if share.starts_with(prefix) && best.is_none_or(|(l, _)| prefix.len() > l) =>
                {
                    best = Some((prefix.len(), weight))
                }
                _ => {}
            }
        }
        best.map_or(1.0, |(_, w)| w)
    }

    /// The fraction of the queue's vCPUs kept free for shares not yet active, with `active`
    /// shares active.
    pub fn reserved_fraction(&self, active: u32) -> f64 {
        let reservation = f64::from(self.compute_reservation.unwrap_or(0).clamp(0, 99)) / 100.0;
        if reservation == 0.0 {
            return 0.0;
        }
        reservation.powi(active as i32)
    }
}

/// What a queue does with a job that has sat at its head in `state` for `maxTimeSeconds`
/// because of `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStateTimeLimitAction {
    /// The blocking reason this action is for, e.g. `MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT`.
    pub reason: String,
    /// `RUNNABLE`.
    pub state: String,
    /// How long the job may be stuck (AWS: 600..86400; wasmbatch takes 1..86400).
    pub max_time_seconds: i32,
    /// `CANCEL`.
    pub action: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[(&str, f64)], reservation: i32) -> FairsharePolicy {
        FairsharePolicy {
            share_decay_seconds: None,
            compute_reservation: Some(reservation),
            share_distribution: entries
                .iter()
                .map(|(id, w)| ShareAttributes {
                    share_identifier: id.to_string(),
                    weight_factor: Some(*w),
                })
                .collect(),
        }
    }

    #[test]
    fn a_share_weighs_its_own_entry_else_its_longest_prefix_else_one() {
        let p = policy(&[("team*", 0.5), ("teamred*", 0.25), ("teamblue", 4.0)], 0);
        assert_eq!(p.weight("teamblue"), 4.0);
        assert_eq!(p.weight("teamred7"), 0.25);
        assert_eq!(p.weight("teamgreen"), 0.5);
        assert_eq!(p.weight("other"), 1.0);
    }

    #[test]
    fn reservation_shrinks_with_each_active_share_as_aws_documents() {
        let p = policy(&[], 50);
        assert_eq!(p.reserved_fraction(1), 0.5);
        assert_eq!(p.reserved_fraction(2), 0.25);
        assert_eq!(p.reserved_fraction(3), 0.125);
        assert_eq!(policy(&[], 0).reserved_fraction(1), 0.0);
    }
}
