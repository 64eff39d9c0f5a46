//! The retry decision for a failed attempt, as AWS Batch documents `retryStrategy`: the first
//! `evaluateOnExit` entry whose every given condition matches decides RETRY or EXIT; when none
//! matches, the job is retried while attempts remain.

use super::{EvaluateOnExit, RetryStrategy};

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Back to RUNNABLE for another attempt.
    Retry,
    /// The job is FAILED.
    Exit,
}

/// How a failed attempt ended, as the conditions see it.
#[derive(Debug, Clone, Copy)]
pub struct FailedAttempt<'a> {
    /// The exit code, if the guest exited by itself.
    pub exit_code: Option<i32>,
    /// The failure kind (e.g. `OutOfFuel`), if it did not.
    pub reason: Option<&'a str>,
    /// The attempt's statusReason.
    pub status_reason: &'a str,
}

/// Decides whether a job whose attempt number `attempts_made` (from 1) just failed is tried again.
pub fn decide(
    strategy: Option<&RetryStrategy>,
    attempts_made: u32,
    failed: FailedAttempt<'_>,
) -> RetryDecision {
    let allowed = strategy.and_then(|s| s.attempts).unwrap_or(1);
    if attempts_made >= allowed {
        return RetryDecision::Exit;
    }
    let entries = strategy.map_or(&[][..], |s| &s.evaluate_on_exit[..]);
    match entries.iter().find(|entry| matches(entry, failed)) {
        Some(entry) if entry.action.eq_ignore_ascii_case("EXIT") => RetryDecision::Exit,
        _ => RetryDecision::Retry,
    }
}

fn matches(entry: &EvaluateOnExit, failed: FailedAttempt<'_>) -> bool {
    let exit_code = failed.exit_code.map(|c| c.to_string());
    condition(entry.on_exit_code.as_deref(), exit_code.as_deref())
        && condition(entry.on_reason.as_deref(), failed.reason)
        && condition(
            entry.on_status_reason.as_deref(),
            Some(failed.status_reason),
        )
}

/// An absent condition matches anything; a given one needs a value that matches its glob.
fn condition(pattern: Option<&str>, value: Option<&str>) -> bool {
    match (pattern, value) {
        (None, _) => true,
        (Some(pattern), Some(value)) => glob(pattern, value),
        (Some(pattern), None) => pattern == "*",
    }
}

/// Exact match, or a prefix match when the pattern ends in `*`.
pub fn glob(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => value == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        code: Option<&str>,
        reason: Option<&str>,
        status: Option<&str>,
        action: &str,
    ) -> EvaluateOnExit {
        EvaluateOnExit {
            on_exit_code: code.map(Into::into),
            on_reason: reason.map(Into::into),
            on_status_reason: status.map(Into::into),
            action: action.into(),
        }
    }

    fn strategy(attempts: u32, entries: Vec<EvaluateOnExit>) -> RetryStrategy {
        RetryStrategy {
            attempts: Some(attempts),
            evaluate_on_exit: entries,
        }
    }

    fn exited(code: i32) -> FailedAttempt<'static> {
        FailedAttempt {
            exit_code: Some(code),
            reason: None,
            status_reason: "Essential container in task exited",
        }
    }

    #[test]
    fn without_a_strategy_a_job_is_tried_once() {
        assert_eq!(decide(None, 1, exited(1)), RetryDecision::Exit);
    }

    #[test]
    fn without_conditions_a_job_is_retried_until_attempts_run_out() {
        let s = strategy(3, vec![]);
        assert_eq!(decide(Some(&s), 1, exited(1)), RetryDecision::Retry);
        assert_eq!(decide(Some(&s), 2, exited(1)), RetryDecision::Retry);
        assert_eq!(decide(Some(&s), 3, exited(1)), RetryDecision::Exit);
    }

    #[test]
    fn the_first_matching_entry_decides_and_actions_ignore_case() {
        let s = strategy(
            5,
            vec![
                entry(Some("4*"), None, None, "exit"),
                entry(Some("*"), None, None, "RETRY"),
            ],
        );
        assert_eq!(decide(Some(&s), 1, exited(42)), RetryDecision::Exit);
        assert_eq!(decide(Some(&s), 1, exited(3)), RetryDecision::Retry);
        // A RETRY match does not grant attempts beyond the strategy's.
        assert_eq!(decide(Some(&s), 5, exited(3)), RetryDecision::Exit);
    }

    #[test]
    fn every_given_field_of_an_entry_must_match() {
        let s = strategy(
            3,
            vec![
                entry(Some("1"), None, Some("Essential*"), "EXIT"),
                entry(None, Some("OutOfFuel"), None, "EXIT"),
            ],
        );
        assert_eq!(decide(Some(&s), 1, exited(1)), RetryDecision::Exit);
        let other_reason = FailedAttempt {
            status_reason: "Host restarted",
            ..exited(1)
        };
        assert_eq!(decide(Some(&s), 1, other_reason), RetryDecision::Retry);
        let fuel = FailedAttempt {
            exit_code: None,
            reason: Some("OutOfFuel"),
            status_reason: "fuel budget of 10 exhausted",
        };
        assert_eq!(decide(Some(&s), 1, fuel), RetryDecision::Exit);
        // An exit-code condition does not match an attempt that has no exit code.
        let only_code = strategy(3, vec![entry(Some("1*"), None, None, "EXIT")]);
        assert_eq!(decide(Some(&only_code), 1, fuel), RetryDecision::Retry);
    }

    #[test]
    fn globs_are_exact_or_prefix() {
        assert!(glob("137", "137"));
        assert!(!glob("13", "137"));
        assert!(glob("13*", "137"));
        assert!(glob("*", ""));
        assert!(!glob("Host*", "host restarted"));
    }
}
