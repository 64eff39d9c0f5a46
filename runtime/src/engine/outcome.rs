//! How an attempt ended: its exit code or a typed failure, and what it used. Also the one place
//! that reads a wasmtime error and decides which failure it was.

use std::time::Duration;

use wasmtime::Trap;
use wasmtime_wasi::I32Exit;

use super::limits::{LimitExceeded, Refusal};
use super::output::StreamStats;

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Exit code, or why the attempt failed without one.
    pub status: ExitStatus,
    /// Time from the start of the attempt (instantiation included) to its end.
    pub wall_time: Duration,
    /// Fuel the guest burned; `None` when the executor does not meter fuel.
    pub fuel_consumed: Option<u64>,
    /// Highest total linear memory the guest held, in bytes.
    pub peak_memory_bytes: u64,
    /// What the guest wrote to stdout.
    pub stdout: StreamStats,
    /// What the guest wrote to stderr.
    pub stderr: StreamStats,
}

impl Outcome {
    /// Whether the guest exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.status == ExitStatus::Exited(0)
    }

    /// The exit code, if the guest exited by itself.
    pub fn exit_code(&self) -> Option<i32> {
        match self.status {
            ExitStatus::Exited(code) => Some(code),
            ExitStatus::Failed(_) => None,
        }
    }

    /// The failure, if the guest did not exit by itself.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.status {
            ExitStatus::Exited(_) => None,
            ExitStatus::Failed(failure) => Some(failure),
        }
    }

    /// An outcome for an attempt that never started (its module did not load, its spec was
    /// refused, its scratch directory could not be made).
    pub fn not_started(kind: FailureKind, reason: impl Into<String>) -> Self {
        Self {
            status: ExitStatus::Failed(Failure {
                kind,
                reason: reason.into(),
            }),
            wall_time: Duration::ZERO,
            fuel_consumed: None,
            peak_memory_bytes: 0,
            stdout: StreamStats::default(),
            stderr: StreamStats::default(),
        }
    }
}

/// How the guest stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// The guest exited with this code (`proc_exit`, the component's `exit`, or returning from
    /// `_start`/`run`, which is 0).
    Exited(i32),
    /// The guest was stopped or trapped before it could exit.
    Failed(Failure),
}

/// Why an attempt failed without an exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The kind, for programs.
    pub kind: FailureKind,
    /// A sentence for people, naming the limit and the numbers where there are some.
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The kinds of failure, each with its own cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The fuel budget ran out.
    OutOfFuel,
    /// The wall-clock limit passed.
    Timeout,
    /// Linear memory or a table would have grown past the attempt's cap.
    MemoryLimit,
    /// The wasm call stack overflowed.
    StackOverflow,
    /// The guest executed `unreachable` (how Rust guests panic and abort).
    Unreachable,
    /// Another trap: out-of-bounds access, division by zero, bad indirect call, …
    Trap,
    /// Killed from outside through its [`KillSwitch`](super::KillSwitch).
    Killed,
    /// The module could not be loaded: not WebAssembly, invalid, not a WASI command, or it
    /// imports something the host does not provide.
    ModuleInvalid,
    /// The attempt's spec asked for something the executor will not give (e.g. more memory than
    /// its largest, or fuel when it does not meter fuel).
    InvalidSpec,
    /// The host failed (e.g. could not make the scratch directory); not the guest's fault.
    HostError,
    /// The remote worker that ran it was lost (stopped heartbeating, restarted, cut off): AWS's
    /// lost host, which costs one attempt.
    HostLost,
}

/// Why the epoch callback or the executor's watch stopped a running guest.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Interruption {
    #[error("attempt timed out")]
    Timeout,
    #[error("attempt killed")]
    Killed,
}

/// What the executor knows at the end of an attempt, besides the wasmtime result.
pub(crate) struct AttemptEnd<'a> {
    pub refusal: Option<Refusal>,
    pub fuel_budget: Option<u64>,
    pub fuel_consumed: Option<u64>,
    pub timeout: Duration,
    pub kill_reason: &'a dyn Fn() -> String,
}

/// Turns the result of running a guest into its exit status.
pub(crate) fn classify(result: Result<(), wasmtime::Error>, end: &AttemptEnd<'_>) -> ExitStatus {
    let error = match result {
        Ok(()) => return ExitStatus::Exited(0),
        Err(error) => error,
    };
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return ExitStatus::Exited(exit.0);
    }
    let failed = |kind, reason: String| ExitStatus::Failed(Failure { kind, reason });
    if let Some(interruption) = error.downcast_ref::<Interruption>() {
        return match interruption {
            Interruption::Timeout => timeout(end.timeout),
            Interruption::Killed => failed(FailureKind::Killed, (end.kill_reason)()),
        };
    }
    if let (Some(refusal), true) = (end.refusal, error.is::<LimitExceeded>()) {
        return failed(FailureKind::MemoryLimit, memory_reason(refusal));
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => {
            let budget = end.fuel_budget.unwrap_or_default();
            let used = end.fuel_consumed.unwrap_or(budget);
            failed(
                FailureKind::OutOfFuel,
                format!("fuel budget of {budget} exhausted (used {used})"),
            )
        }
        Some(Trap::StackOverflow) => failed(
            FailureKind::StackOverflow,
            "wasm call stack exhausted (stack overflow)".into(),
        ),
        Some(Trap::UnreachableCodeReached) => failed(
            FailureKind::Unreachable,
            "wasm trap: `unreachable` executed (the guest panicked or aborted)".into(),
        ),
        // A trap's Display already reads "wasm trap: …".
        Some(trap) => failed(FailureKind::Trap, trap.to_string()),
        // The root cause is the host's own message; the wasm backtrace around it is noise.
        None => failed(
            FailureKind::HostError,
            format!("host error: {}", error.root_cause()),
        ),
    }
}

/// The failure for an attempt stopped by its wall-clock limit.
pub(crate) fn timeout(limit: Duration) -> ExitStatus {
    ExitStatus::Failed(Failure {
        kind: FailureKind::Timeout,
        reason: format!(
            "Job attempt duration exceeded timeout of {}",
            humanize(limit)
        ),
    })
}

fn memory_reason(refusal: Refusal) -> String {
    match refusal {
        Refusal::Memory { cap, requested } => format!(
            "memory limit of {} exceeded: the guest tried to grow its linear memory to {requested} bytes",
            bytes(cap)
        ),
        Refusal::Table { cap, requested } => format!(
            "table limit of {cap} elements exceeded: the guest tried to grow a table to {requested}"
        ),
    }
}

/// `512 MiB (536870912 bytes)`: exact, and readable when it is a whole number of MiB.
pub(crate) fn bytes(n: u64) -> String {
    if n > 0 && n.is_multiple_of(1 << 20) {
        format!("{} MiB ({n} bytes)", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(refusal: Option<Refusal>) -> AttemptEnd<'static> {
        AttemptEnd {
            refusal,
            fuel_budget: Some(1000),
            fuel_consumed: Some(1000),
            timeout: Duration::from_secs(5),
            kill_reason: &|| "terminated by operator".to_string(),
        }
    }

    #[test]
    fn exit_codes_come_from_i32_exit() {
        let error = wasmtime::Error::new(I32Exit(-7));
        assert_eq!(classify(Err(error), &end(None)), ExitStatus::Exited(-7));
        assert_eq!(classify(Ok(()), &end(None)), ExitStatus::Exited(0));
    }

    #[test]
    fn each_trap_has_its_kind_and_numbers() {
        let kind_of = |error: wasmtime::Error, refusal| match classify(Err(error), &end(refusal)) {
            ExitStatus::Failed(f) => (f.kind, f.reason),
            other => panic!("expected a failure, got {other:?}"),
        };
        let (kind, reason) = kind_of(wasmtime::Error::new(Trap::OutOfFuel), None);
        assert_eq!(kind, FailureKind::OutOfFuel);
        assert!(reason.contains("1000"), "{reason}");
        let (kind, reason) = kind_of(wasmtime::Error::new(Interruption::Timeout), None);
        assert_eq!(kind, FailureKind::Timeout);
        assert!(reason.contains("timeout of 5s"), "{reason}");
        let (kind, reason) = kind_of(wasmtime::Error::new(Interruption::Killed), None);
        assert_eq!(
            (kind, reason.as_str()),
            (FailureKind::Killed, "terminated by operator")
        );
        let refusal = Refusal::Memory {
            cap: 64 << 20,
            requested: (64 << 20) + 65536,
        };
        let (kind, reason) = kind_of(wasmtime::Error::new(LimitExceeded), Some(refusal));
        assert_eq!(kind, FailureKind::MemoryLimit);
        assert!(reason.contains("memory limit of 64 MiB"), "{reason}");
        let (kind, _) = kind_of(wasmtime::Error::new(Trap::StackOverflow), None);
        assert_eq!(kind, FailureKind::StackOverflow);
        let (kind, _) = kind_of(wasmtime::Error::new(Trap::UnreachableCodeReached), None);
        assert_eq!(kind, FailureKind::Unreachable);
        let (kind, reason) = kind_of(wasmtime::Error::new(Trap::IntegerDivisionByZero), None);
        assert_eq!(kind, FailureKind::Trap);
        assert!(reason.contains("divide by zero"), "{reason}");
        let (kind, _) = kind_of(wasmtime::Error::msg("disk on fire"), None);
        assert_eq!(kind, FailureKind::HostError);
    }
}
