//! IAM-style policies: which actions a caller may take on which resources. Statements allow or
//! deny actions (`batch:SubmitJob`, `batch:Describe*`, `batch:*`) on resources named by ARN
//! patterns with `*` and `?`; an explicit Deny wins over any Allow, and what no statement allows
//! is denied.

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
        let mut allowed = false;
        for statement in self.statement.iter() {
            let action_matches = statement.action.iter().any(|pattern| {
                wildcard(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
            });
            let resource_matches = statement
                .resource
                .iter()
                .any(|pattern| resources.iter().any(|resource| wildcard(pattern, resource)));
            if action_matches && resource_matches {
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
