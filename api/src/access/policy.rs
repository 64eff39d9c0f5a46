//! IAM-style policies: which actions a caller may take on which resources. Statements allow or
//! deny actions (`batch:SubmitJob`, `batch:Describe*`, `batch:*`) on resources named by ARN
//! patterns with `*` and `?`; an explicit Deny wins over any Allow, and what no statement allows
//! is denied. A statement may also have a `Condition` on the request's context, as IAM's does:
//! the one key wasmbatch knows is `batch:ShareIdentifier` (the share a SubmitJob names), so a
//! team's key can be kept to its own share of a fair-share queue.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A policy document, in IAM's JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Policy {
    /// IAM's policy language version; only `2012-10-17` is understood.
    #[serde(default = "version")]
    pub version: String,
    /// What is allowed and denied.
    #[serde(deserialize_with = "one_or_many")]
    pub statement: Vec<Statement>,
}

fn version() -> String {
    "2012-10-17".into()
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Statement {
    /// A label, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    /// Action patterns: `service:Operation`, `*` and `?` allowed, compared ignoring case.
    #[serde(deserialize_with = "one_or_many")]
    pub action: Vec<String>,
    /// Resource ARN patterns, `*` and `?` allowed.
    #[serde(deserialize_with = "one_or_many")]
    pub resource: Vec<String>,
    /// Conditions on the request: operator → key → values; all must hold for the statement to
    /// apply.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub condition: BTreeMap<String, BTreeMap<String, Values>>,
}

/// A condition's values: one or a list, as IAM takes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Values(#[serde(deserialize_with = "one_or_many")] pub Vec<String>);

/// The condition keys a policy may use, with what a request gives for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context<'a> {
    /// `batch:ShareIdentifier`: the share a SubmitJob names, if any.
    pub share_identifier: Option<&'a str>,
}

/// The condition keys understood; any other is refused when the policy is loaded (a Deny on a
/// key that is never checked would protect nothing).
const CONDITION_KEYS: &[&str] = &["batch:shareidentifier"];

/// The condition operators understood.
const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringNotLike",
];

impl Context<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key.to_ascii_lowercase().as_str() {
            "batch:shareidentifier" => self.share_identifier,
            _ => None,
        }
    }
}

impl Statement {
    /// Whether one of its actions matches `action` (lower case), as IAM matches them.
    fn names(&self, action: &str) -> bool {
        self.action
            .iter()
            .any(|pattern| wildcard(&pattern.to_ascii_lowercase(), action))
    }

    /// Whether every condition holds for `context`. As in IAM, a positive operator on a key the
    /// request does not have fails, a negated one holds.
    fn conditions_hold(&self, context: &Context) -> bool {
        self.condition.iter().all(|(operator, keys)| {
            keys.iter().all(|(key, Values(values))| {
                let value = context.get(key);
                match operator.as_str() {
                    "StringEquals" => value.is_some_and(|v| values.iter().any(|x| x == v)),
                    "StringNotEquals" => value.is_none_or(|v| values.iter().all(|x| x != v)),
                    "StringLike" => value.is_some_and(|v| values.iter().any(|x| wildcard(x, v))),
                    "StringNotLike" => value.is_none_or(|v| values.iter().all(|x| !wildcard(x, v))),
                    _ => false,
                }
            })
        })
    }
}

/// What a matching statement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Permits, unless a Deny also matches.
    Allow,
    /// Refuses, whatever else matches.
    Deny,
}

/// IAM accepts a single value wherever a list is expected. Decoded through a list so that a
/// mistake inside keeps its own message (an untagged enum would only say "no variant matched").
fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    let list = match value {
        serde_json::Value::Array(_) => value,
        one => serde_json::Value::Array(vec![one]),
    };
    serde_json::from_value(list).map_err(serde::de::Error::custom)
}

/// The outcome of evaluating a policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it and none denies it.
    Allowed,
    /// A statement denies it.
    ExplicitlyDenied,
    /// No statement allows it.
    NotAllowed,
}

impl Policy {
    /// A policy that allows everything: the local-development mode's.
    pub fn allow_all() -> Self {
        Policy {
            version: version(),
            statement: vec![Statement {
                sid: None,
                effect: Effect::Allow,
                action: vec!["*".into()],
                resource: vec!["*".into()],
                condition: BTreeMap::new(),
            }],
        }
    }

    /// Checks what the document says beyond its shape: the version, and that no statement is
    /// empty. `what` names the document in messages.
    pub fn validate(&self, what: &str) -> Result<(), String> {
        if self.version != "2012-10-17" {
            return Err(format!(
                "{what}: Version {:?} is not understood; use \"2012-10-17\"",
                self.version
            ));
        }
        for (i, statement) in self.statement.iter().enumerate() {
            if statement.action.is_empty() {
                return Err(format!("{what}: Statement[{i}].Action is empty"));
            }
            if statement.resource.is_empty() {
                return Err(format!("{what}: Statement[{i}].Resource is empty"));
            }
            for (operator, keys) in &statement.condition {
                if !OPERATORS.contains(&operator.as_str()) {
                    return Err(format!(
                        "{what}: Statement[{i}].Condition operator {operator:?} is not understood; use one of {}",
                        OPERATORS.join(", ")
                    ));
                }
                for key in keys.keys() {
                    if !CONDITION_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
                        return Err(format!(
                            "{what}: Statement[{i}].Condition key {key:?} is not understood; the one key is batch:ShareIdentifier"
                        ));
                    }
                }
            }
            for action in statement.action.iter() {
                if action != "*" && !action.contains(':') {
                    return Err(format!(
                        "{what}: Statement[{i}].Action {action:?} is not `service:Operation` (e.g. batch:SubmitJob)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether `action` may be taken on `resources`. A statement applies when its action
    /// matches and one of its resource patterns matches any of `resources` (a job is named by
    /// its own ARN and its queue's, so a policy can grant either). Operations that act on no
    /// particular resource are asked with `*`, which only a `*` pattern matches, as in IAM.
    pub fn decide(&self, action: &str, resources: &[&str]) -> Decision {
        self.decide_in(action, resources, &Context::default())
    }

    /// Whether some Allow statement names `action`, on whatever resources: a listing that
    /// leaves out what the caller may not see still refuses a caller who may see nothing.
    pub fn grants_any(&self, action: &str) -> bool {
        let action = action.to_ascii_lowercase();
        self.statement
            .iter()
            .any(|statement| statement.effect == Effect::Allow && statement.names(&action))
    }

    /// [`Policy::decide`] for a request with `context` (the values of its condition keys).
    pub fn decide_in(&self, action: &str, resources: &[&str], context: &Context) -> Decision {
        let mut allowed = false;
        let action = action.to_ascii_lowercase();
        for statement in self.statement.iter() {
            let action_matches = statement.names(&action);
            let resource_matches = statement
                .resource
                .iter()
                .any(|pattern| resources.iter().any(|resource| wildcard(pattern, resource)));
            if action_matches && resource_matches && statement.conditions_hold(context) {
                match statement.effect {
                    Effect::Deny => return Decision::ExplicitlyDenied,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allowed
        } else {
            Decision::NotAllowed
        }
    }
}

/// IAM's pattern match: `*` any run of characters (also none), `?` any one character.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    // Greedy match with backtracking to the last star: linear in practice, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: serde_json::Value) -> Policy {
        let policy: Policy = serde_json::from_value(json).unwrap();
        policy.validate("test").unwrap();
        policy
    }

    const QUEUE_A: &str = "arn:aws:batch:us-east-1:000000000000:job-queue/team-a";
    const QUEUE_B: &str = "arn:aws:batch:us-east-1:000000000000:job-queue/team-b";

    #[test]
    fn patterns_match_as_iam_does() {
        assert!(wildcard("arn:aws:batch:*:*:job-queue/team-*", QUEUE_A));
        assert!(!wildcard("arn:aws:batch:*:*:job-queue/team-a", QUEUE_B));
        assert!(wildcard("*", ""));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("*a*b*", "xxaxxbxx"));
        assert!(!wildcard("*a*b", "xxbxxa"));
        // Case matters in resources (ARNs), and is ignored in actions by `decide`.
        assert!(!wildcard("arn:aws:batch:*:*:job-queue/Team-*", QUEUE_A));
    }

    #[test]
    fn allow_needs_a_statement_and_an_explicit_deny_wins() {
        let p = policy(serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["batch:SubmitJob", "batch:Describe*"], "Resource": "arn:aws:batch:*:*:job-queue/team-*"},
                {"Effect": "Deny", "Action": "batch:*", "Resource": QUEUE_B}
            ]
        }));
        assert_eq!(p.decide("batch:SubmitJob", &[QUEUE_A]), Decision::Allowed);
        assert_eq!(
            p.decide("batch:describejobs", &[QUEUE_A]),
            Decision::Allowed
        );
        assert_eq!(
            p.decide("batch:SubmitJob", &[QUEUE_B]),
            Decision::ExplicitlyDenied
        );
        assert_eq!(
            p.decide("batch:CancelJob", &[QUEUE_A]),
            Decision::NotAllowed
        );
        assert_eq!(
            p.decide("batch:DescribeJobQueues", &["*"]),
            Decision::NotAllowed
        );
        assert_eq!(
            Policy::allow_all().decide("logs:GetLogEvents", &["*"]),
            Decision::Allowed
        );
    }

    #[test]
    fn a_share_condition_keeps_a_key_to_its_own_share() {
        let p = policy(serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "batch:SubmitJob", "Resource": QUEUE_A,
                 "Condition": {"StringLike": {"batch:ShareIdentifier": ["red", "red-*"]}}},
                {"Effect": "Deny", "Action": "batch:SubmitJob", "Resource": QUEUE_A,
                 "Condition": {"StringEquals": {"batch:ShareIdentifier": "red-frozen"}}}
            ]
        }));
        let share = |s| Context {
            share_identifier: Some(s),
        };
        let submit = |c: &Context| p.decide_in("batch:SubmitJob", &[QUEUE_A], c);
        assert_eq!(submit(&share("red")), Decision::Allowed);
        assert_eq!(submit(&share("red-7")), Decision::Allowed);
        assert_eq!(submit(&share("blue")), Decision::NotAllowed);
        assert_eq!(submit(&share("red-frozen")), Decision::ExplicitlyDenied);
        assert_eq!(
            submit(&Context::default()),
            Decision::NotAllowed,
            "no share: no match"
        );
        let unknown: Policy = serde_json::from_value(serde_json::json!({
            "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                           "Condition": {"StringEquals": {"aws:SourceIp": "1.2.3.4"}}}]
        }))
        .unwrap();
        assert!(unknown.validate("p").unwrap_err().contains("aws:SourceIp"));
    }

    #[test]
    fn documents_with_mistakes_are_refused_by_field() {
        let typo: Result<Policy, _> = serde_json::from_value(serde_json::json!({
            "Statement": [{"Effect": "Allow", "Actions": "batch:*", "Resource": "*"}]
        }));
        assert!(typo.unwrap_err().to_string().contains("Actions"));
        let effect: Result<Policy, _> = serde_json::from_value(serde_json::json!({
            "Statement": [{"Effect": "allow", "Action": "batch:*", "Resource": "*"}]
        }));
        assert!(effect.is_err());
        let p: Policy = serde_json::from_value(serde_json::json!({
            "Statement": [{"Effect": "Allow", "Action": "SubmitJob", "Resource": "*"}]
        }))
        .unwrap();
        assert!(
            p.validate("alice's policy")
                .unwrap_err()
                .contains("Statement[0].Action")
        );
        let p: Policy = serde_json::from_value(serde_json::json!({
            "Version": "2008-10-17", "Statement": []
        }))
        .unwrap();
        assert!(p.validate("p").unwrap_err().contains("Version"));
    }
}
