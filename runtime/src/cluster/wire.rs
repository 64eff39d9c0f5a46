//! What crosses NATS between the control plane and the workers: the names of the streams,
//! subjects and buckets, and the messages (JSON). A worker's identity is the last token of the
//! subject it publishes on (`wb.report.<worker>`, `wb.hb.<worker>`), never a field in the body,
//! so NATS subject permissions bind a worker's credentials to its name.

use serde::{Deserialize, Serialize};

use crate::engine::{ExitStatus, Failure, FailureKind, Outcome, StreamKind};
use crate::model::EpochMillis;

/// The work-queue stream of placed attempts, one subject per worker.
pub const WORK_STREAM: &str = "WB_WORK";
/// The stream of workers' reports (started, log lines, ended, lost), one subject per worker.
pub const REPORT_STREAM: &str = "WB_REPORTS";
/// The object store bucket of module bytes, one object per sha256 digest.
pub const MODULE_BUCKET: &str = "wb-modules";
/// The control plane's durable consumer of [`REPORT_STREAM`].
pub const CONTROL_CONSUMER: &str = "control";

/// Where attempts for `worker` are published.
pub fn work_subject(worker: &str) -> String {
    format!("wb.work.{worker}")
}

/// Where `worker` publishes its reports.
pub fn report_subject(worker: &str) -> String {
    format!("wb.report.{worker}")
}

/// Where `worker` sends its heartbeats (requests the control plane answers).
pub fn heartbeat_subject(worker: &str) -> String {
    format!("wb.hb.{worker}")
}

/// The durable consumer a worker pulls its attempts from: named as the worker, so a NATS
/// permission on `$JS.API.CONSUMER.CREATE.WB_WORK.<worker>.wb.work.<worker>` lets a worker
/// make its own and no other.
pub fn worker_consumer(worker: &str) -> String {
    worker.to_string()
}

/// Most bytes one message gathers from several attempts or reports (NATS refuses more than
/// 1 MiB by default); one item larger than this goes alone.
pub const BATCH_BYTES: usize = 256 << 10;

/// A sender whose last message carried at least this many items is busy: it waits
/// [`BUSY_LINGER`] before it gathers the next, so each stored message carries more (every one
/// costs NATS a write, an fsync and, once acknowledged, a removal with another). An idle
/// sender never waits, so a lone job's latency does not pay for it.
pub const BUSY_BATCH: usize = 8;
/// How long a busy sender waits for more items.
pub const BUSY_LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// The message id of a work message: the digest of its body. Publishing the same attempts
/// again (a retry after a lost ack) is then dropped as a duplicate within the stream's window,
/// and two different messages never share an id, whichever control plane process sent them.
pub fn work_message_id(body: &[u8]) -> String {
    crate::engine::Digest::of(body).hex()
}

/// The message id of batch `seq` of a worker's reports in `session`: a retry is dropped as a
/// duplicate, and two batches never share an id (the same lines twice are two batches).
pub fn report_message_id(session: &str, seq: u64) -> String {
    format!("{session}:{seq}")
}

/// Items already serialised as JSON, as one JSON array: a work message is an array of
/// [`Work`], a report message an array of [`Report`], so one stored message (one write, one
/// acknowledgement) carries whatever accumulated while the previous one was being stored.
pub fn json_array<T: AsRef<[u8]>>(items: &[T]) -> Vec<u8> {
    let len = items.iter().map(|i| i.as_ref().len() + 1).sum::<usize>() + 2;
    let mut body = Vec::with_capacity(len);
    body.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item.as_ref());
    }
    body.push(b']');
    body
}

/// Whether `name` can be a worker's name: one subject token, and a consumer name.
pub fn valid_worker_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One placed attempt, for the worker that holds it. A work message is a JSON array of them,
/// all for the worker whose subject it is published on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Work {
    /// The job's id.
    pub job: String,
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The worker's session the attempt was given to.
    pub session: String,
    /// The module's sha256 digest (hex): its object's name in [`MODULE_BUCKET`].
    pub digest: String,
    /// Its size in bytes, so a worker refuses a larger object before reading it.
    pub module_bytes: u64,
    /// The guest's argv.
    pub args: Vec<String>,
    /// The guest's environment.
    pub env: Vec<(String, String)>,
    /// The vCPUs it holds (the worker starts it once they are free).
    #[serde(default = "one_vcpu")]
    pub vcpus: f64,
    /// Linear-memory cap in bytes.
    pub memory_bytes: u64,
    /// Fuel budget.
    pub fuel: Option<u64>,
    /// Wall-clock limit in milliseconds.
    pub timeout_ms: u64,
    /// Volumes: (path under the worker's volume root, guest path, read-only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<(String, String, bool)>,
}

fn one_vcpu() -> f64 {
    1.0
}

/// What a worker reports, in order, on its report subject; a report message is a JSON array
/// of them, applied in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Report {
    /// The attempt's module is loaded and the guest starts now.
    Started {
        /// The job's id.
        job: String,
        /// The attempt's number.
        attempt: u32,
        /// The worker's session.
        session: String,
        /// When it started (the worker's clock).
        at: EpochMillis,
    },
    /// Lines the guest wrote, in order.
    Log {
        /// The job's id.
        job: String,
        /// The attempt's number.
        attempt: u32,
        /// The worker's session.
        session: String,
        /// (stream, line) pairs.
        lines: Vec<(StreamKind, String)>,
    },
    /// The attempt ended.
    Ended {
        /// The job's id.
        job: String,
        /// The attempt's number.
        attempt: u32,
        /// The worker's session.
        session: String,
        /// When the guest started, if it did.
        started_at: Option<EpochMillis>,
        /// How it ended.
        outcome: WireOutcome,
        /// The guest's last lines, not sent in a `Log` yet (most short attempts' only ones):
        /// one message, one stored write, for its output and its end.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lines: Vec<(StreamKind, String)>,
    },
}

impl Report {
    /// The attempt it is about: (job, attempt, session).
    pub fn attempt(&self) -> (&str, u32, &str) {
        match self {
            Report::Started {
                job,
                attempt,
                session,
                ..
            }
            | Report::Log {
                job,
                attempt,
                session,
                ..
            }
            | Report::Ended {
                job,
                attempt,
                session,
                ..
            } => (job, *attempt, session),
        }
    }
}

/// An [`Outcome`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireOutcome {
    /// The exit code, if the guest exited by itself.
    pub exit_code: Option<i32>,
    /// The failure's kind (`FailureKind`'s name), if it did not.
    pub failure: Option<String>,
    /// The failure's sentence.
    pub reason: Option<String>,
    /// Fuel burned.
    pub fuel_consumed: Option<u64>,
    /// Peak linear memory.
    pub peak_memory_bytes: u64,
    /// Wall time in milliseconds.
    pub wall_ms: u64,
}

const KINDS: [FailureKind; 11] = [
    FailureKind::OutOfFuel,
    FailureKind::Timeout,
    FailureKind::MemoryLimit,
    FailureKind::StackOverflow,
    FailureKind::Unreachable,
    FailureKind::Trap,
    FailureKind::Killed,
    FailureKind::ModuleInvalid,
    FailureKind::InvalidSpec,
    FailureKind::HostError,
    FailureKind::HostLost,
];

impl From<&Outcome> for WireOutcome {
    fn from(outcome: &Outcome) -> Self {
        let (exit_code, failure, reason) = match &outcome.status {
            ExitStatus::Exited(code) => (Some(*code), None, None),
            ExitStatus::Failed(f) => (None, Some(format!("{:?}", f.kind)), Some(f.reason.clone())),
        };
        Self {
            exit_code,
            failure,
            reason,
            fuel_consumed: outcome.fuel_consumed,
            peak_memory_bytes: outcome.peak_memory_bytes,
            wall_ms: outcome.wall_time.as_millis() as u64,
        }
    }
}

impl WireOutcome {
    /// The outcome it carries. A kind this side does not know (a newer worker) is a host error
    /// with the worker's sentence.
    pub fn outcome(&self) -> Outcome {
        let status = match (self.exit_code, &self.failure) {
            (Some(code), _) => ExitStatus::Exited(code),
            (None, kind) => {
                let kind = kind
                    .as_deref()
                    .and_then(|k| KINDS.iter().find(|known| format!("{known:?}") == k))
                    .copied()
                    .unwrap_or(FailureKind::HostError);
                ExitStatus::Failed(Failure {
                    kind,
                    reason: self
                        .reason
                        .clone()
                        .unwrap_or_else(|| "the worker gave no reason".into()),
                })
            }
        };
        Outcome {
            status,
            wall_time: std::time::Duration::from_millis(self.wall_ms),
            fuel_consumed: self.fuel_consumed,
            peak_memory_bytes: self.peak_memory_bytes,
            stdout: Default::default(),
            stderr: Default::default(),
        }
    }
}

/// A worker's heartbeat: who it is and what it runs. Sent as a request; answered with a
/// [`Lease`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// A fresh id for each start of the worker process: attempts given to an earlier session
    /// died with it.
    pub session: String,
    /// The UNMANAGED compute environment it gives capacity to.
    pub compute_environment: String,
    /// Its host name, for people.
    pub host: String,
    /// Its capacity.
    pub vcpus: f64,
    /// Its memory, in MiB.
    pub memory_mib: u64,
    /// The attempts it runs now: (job, attempt).
    pub running: Vec<(String, u32)>,
}

/// The control plane's answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// Why the worker is refused (an unknown or MANAGED environment, another live session of
    /// the same name); it should stop.
    pub refused: Option<String>,
    /// The attempts it holds: any other it runs is no longer its own and must be stopped.
    pub hold: Vec<(String, u32)>,
    /// Attempts to stop now (TerminateJob), with the reason.
    pub stop: Vec<(String, u32, String)>,
    /// The lease, in milliseconds: how long the control plane waits for the next heartbeat
    /// before it counts the worker lost.
    pub lease_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_survives_the_wire() {
        for kind in KINDS {
            let outcome = Outcome::not_started(kind, "why");
            let back = WireOutcome::from(&outcome).outcome();
            assert_eq!(back.status, outcome.status);
        }
        let exited = Outcome {
            status: ExitStatus::Exited(3),
            ..Outcome::not_started(FailureKind::Trap, "")
        };
        assert_eq!(
            WireOutcome::from(&exited).outcome().status,
            ExitStatus::Exited(3)
        );
    }

    #[test]
    fn a_batch_is_a_json_array_of_its_items() {
        let reports = [
            Report::Started {
                job: "j1".into(),
                attempt: 1,
                session: "s".into(),
                at: 5,
            },
            Report::Log {
                job: "j2".into(),
                attempt: 2,
                session: "s".into(),
                lines: vec![(StreamKind::Stdout, "a,]\"".into())],
            },
        ];
        let items: Vec<Vec<u8>> = reports
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap())
            .collect();
        let back: Vec<Report> = serde_json::from_slice(&json_array(&items)).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].attempt(), ("j2", 2, "s"));
        let empty: Vec<Report> = serde_json::from_slice(&json_array::<Vec<u8>>(&[])).unwrap();
        assert!(empty.is_empty());
        assert_ne!(work_message_id(b"[1]"), work_message_id(b"[2]"));
        assert_eq!(work_message_id(b"[1]"), work_message_id(b"[1]"));
    }

    #[test]
    fn worker_names_are_single_subject_tokens() {
        assert!(valid_worker_name("node-1_a"));
        for bad in ["", "a.b", "a*", "a>", "a b", &"x".repeat(65)] {
            assert!(!valid_worker_name(bad), "{bad}");
        }
    }
}
