//! Guards against losing or misreporting jobs when the process running the control plane is
//! killed (SIGKILL) mid-flight: after a restart on the same data dir every acknowledged job is
//! there, attempts that were running are recorded as interrupted by the restart (once each), the
//! jobs are retried and end in a truthful state, and no attempt is reported as succeeding twice.
//! In particular:
//! - an array parent ends only once every child has, and its "N of M child jobs failed" counts
//!   each child once: an interrupted child that ran out of attempts had been counted twice
//!   (issue 14), which ended the parent while other children still had to run;
//! - a job that depends on an interrupted job waits for its retry, and fails if there is none;
//! - SEQUENTIAL children still run one after another across the restart;
//! - an interrupted retry keeps its attempts in order (the failed one, the interrupted one, the
//!   last one) and never gets more attempts than its retry strategy allows.
//!
//! Every scenario is a `crash-worker` (tests/src/bin/crash-worker.rs) that submits the jobs and
//! says READY once the kill point is reached and stored; no test waits on a clock.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use wasmbatch_runtime::model::{Job, JobStatus};

const WORKER: &str = env!("CARGO_BIN_EXE_crash-worker");

/// Runs the crash worker's `scenario` on `data_dir`, kills it with SIGKILL as soon as it says
/// READY, and returns the ids it acknowledged before that.
fn kill_when_ready(data_dir: &Path, scenario: &[&str]) -> Vec<String> {
    let mut worker = Command::new(WORKER)
        .arg(data_dir)
        .args(scenario)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    loop {
        let line = lines.next().expect("the worker ended early").unwrap();
        if line == "READY" {
            break;
        }
        acknowledged.push(line.strip_prefix("SUBMITTED ").unwrap().to_string());
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    acknowledged
}

/// Starts the control plane again on `data_dir` and returns every job (array children included)
/// once all have ended.
fn restart_and_drain(data_dir: &Path) -> Vec<Job> {
    let drained = Command::new(WORKER)
        .arg(data_dir)
        .arg("drain")
        .output()
        .unwrap();
    assert!(
        drained.status.success(),
        "{}",
        String::from_utf8_lossy(&drained.stderr)
    );
    String::from_utf8(drained.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn job<'a>(jobs: &'a [Job], id: &str) -> &'a Job {
    jobs.iter()
        .find(|j| j.job_id == id)
        .unwrap_or_else(|| panic!("job {id} was lost: {jobs:#?}"))
}

/// The children of array `parent`, by index.
fn children<'a>(jobs: &'a [Job], parent: &Job) -> Vec<&'a Job> {
    let size = parent.array_properties.and_then(|a| a.size).unwrap();
    (0..size)
        .map(|i| job(jobs, &format!("{}:{i}", parent.job_id)))
        .collect()
}

/// How many of `job`'s attempts the restart cut short.
fn interrupted(job: &Job) -> usize {
    job.attempts
        .iter()
        .filter(|a| a.reason.as_deref() == Some("HostRestarted"))
        .count()
}

/// The attempt the restart cut short is recorded as such, with when it ran.
fn assert_recorded_as_interrupted(job: &Job, attempt: usize) {
    let lost = &job.attempts[attempt];
    assert_eq!(lost.reason.as_deref(), Some("HostRestarted"), "{job:#?}");
    assert!(
        lost.status_reason
            .as_deref()
            .unwrap()
            .starts_with("Host restarted"),
        "{job:#?}"
    );
    assert!(
        lost.started_at.is_some() && lost.stopped_at.is_some(),
        "{job:#?}"
    );
    assert_eq!(lost.exit_code, None, "{job:#?}");
}

/// An array parent ends after the last of its children, never before.
fn assert_ended_after_its_children(parent: &Job, children: &[&Job]) {
    for child in children {
        assert!(
            child.status.is_terminal() && child.stopped_at <= parent.stopped_at,
            "the parent ended before child {}: {parent:#?} {child:#?}",
            child.job_id
        );
    }
}

#[test]
fn a_killed_control_plane_loses_nothing_and_reports_the_truth() {
    let data_dir = tempfile::tempdir().unwrap();
    // Six jobs on 2 vCPUs: two are running at the kill.
    let acknowledged = kill_when_ready(data_dir.path(), &["submit", "6", "1500"]);
    let jobs = restart_and_drain(data_dir.path());

    for id in &acknowledged {
        job(&jobs, id);
    }
    assert_eq!(jobs.iter().filter(|j| interrupted(j) > 0).count(), 2);
    for job in &jobs {
        // Two attempts each: one lost to the restart leaves one, which succeeds.
        assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
        let successes = job
            .attempts
            .iter()
            .filter(|a| a.exit_code == Some(0))
            .count();
        assert_eq!(successes, 1, "{job:#?}");
        if interrupted(job) > 0 {
            assert_eq!(job.attempts.len(), 2, "{job:#?}");
            assert_recorded_as_interrupted(job, 0);
        }
    }
}

/// Recovery's own moves are job state change events like any other: an attempt cut short by
/// the kill puts its job back to RUNNABLE, and the events before the kill are all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_of_a_killed_control_plane_go_on_with_what_recovery_did() {
    let data_dir = tempfile::tempdir().unwrap();
    let acknowledged = kill_when_ready(data_dir.path(), &["submit", "3", "1500"]);
    let jobs = restart_and_drain(data_dir.path());
    let batch =
        wasmbatch_runtime::Batch::open(wasmbatch_runtime::BatchConfig::new(data_dir.path()))
            .await
            .unwrap();
    let events = batch.job_events(0, 1000).await.unwrap();
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "no gap, none twice"
    );
    use JobStatus::*;
    for id in &acknowledged {
        let statuses: Vec<JobStatus> = events
            .iter()
            .filter(|e| e.job_id == *id)
            .map(|e| e.status)
            .collect();
        let expected: &[JobStatus] = if interrupted(job(&jobs, id)) > 0 {
            &[
                Runnable, Starting, Running, Runnable, Starting, Running, Succeeded,
            ]
        } else {
            &[Runnable, Starting, Running, Succeeded]
        };
        assert_eq!(statuses, expected, "job {id}");
    }
    batch.close("test over").await.unwrap();
}

#[test]
fn an_interrupted_array_child_with_no_attempts_left_is_counted_once() {
    let data_dir = tempfile::tempdir().unwrap();
    // Four children on 2 vCPUs, one attempt each: two are cut short, two have not started.
    let acknowledged = kill_when_ready(data_dir.path(), &["array", "4", "1000", "1"]);
    let jobs = restart_and_drain(data_dir.path());

    let parent = job(&jobs, &acknowledged[0]);
    let children = children(&jobs, parent);
    let lost: Vec<&&Job> = children.iter().filter(|c| interrupted(c) > 0).collect();
    assert_eq!(lost.len(), 2, "{children:#?}");
    for child in &children {
        if interrupted(child) > 0 {
            assert_eq!(child.status, JobStatus::Failed, "{child:#?}");
            assert_eq!(child.attempts.len(), 1, "{child:#?}");
            assert_recorded_as_interrupted(child, 0);
        } else {
            assert_eq!(child.status, JobStatus::Succeeded, "{child:#?}");
            assert_eq!(child.attempts.len(), 1, "{child:#?}");
        }
    }
    assert_eq!(parent.status, JobStatus::Failed, "{parent:#?}");
    assert_eq!(
        parent.status_reason.as_deref(),
        Some("2 of 4 child jobs failed"),
        "{parent:#?}"
    );
    assert_ended_after_its_children(parent, &children);
}

#[test]
fn an_interrupted_array_is_retried_and_succeeds_only_once_every_child_has() {
    let data_dir = tempfile::tempdir().unwrap();
    // Five children on 2 vCPUs, two attempts each: two are cut short and retried.
    let acknowledged = kill_when_ready(data_dir.path(), &["array", "5", "700", "2"]);
    let jobs = restart_and_drain(data_dir.path());

    let parent = job(&jobs, &acknowledged[0]);
    let children = children(&jobs, parent);
    assert_eq!(
        children.iter().filter(|c| interrupted(c) > 0).count(),
        2,
        "{children:#?}"
    );
    for child in &children {
        assert_eq!(child.status, JobStatus::Succeeded, "{child:#?}");
        assert!(interrupted(child) <= 1, "{child:#?}");
        assert_eq!(child.attempts.len(), 1 + interrupted(child), "{child:#?}");
        assert_eq!(child.attempts.last().unwrap().exit_code, Some(0));
        if interrupted(child) == 1 {
            assert_recorded_as_interrupted(child, 0);
        }
    }
    assert_eq!(parent.status, JobStatus::Succeeded, "{parent:#?}");
    assert_eq!(parent.status_reason, None, "{parent:#?}");
    assert!(parent.attempts.is_empty(), "{parent:#?}");
    assert_ended_after_its_children(parent, &children);
}

#[test]
fn a_sequential_array_interrupted_mid_way_still_runs_its_children_in_order() {
    let data_dir = tempfile::tempdir().unwrap();
    // Child 0 has succeeded and child 1 is running at the kill; child 2 waits for it.
    let acknowledged = kill_when_ready(data_dir.path(), &["sequential", "3", "500", "2"]);
    let jobs = restart_and_drain(data_dir.path());

    let parent = job(&jobs, &acknowledged[0]);
    let children = children(&jobs, parent);
    assert_eq!(
        children.iter().map(|c| interrupted(c)).collect::<Vec<_>>(),
        [0, 1, 0],
        "{children:#?}"
    );
    assert_recorded_as_interrupted(children[1], 0);
    for pair in children.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        assert_eq!(before.status, JobStatus::Succeeded, "{before:#?}");
        assert!(
            after.attempts[0].started_at >= before.stopped_at,
            "{} started before {} ended: {before:#?} {after:#?}",
            after.job_id,
            before.job_id
        );
    }
    assert_eq!(parent.status, JobStatus::Succeeded, "{parent:#?}");
    assert_ended_after_its_children(parent, &children);
}

#[test]
fn a_dependent_waits_for_its_interrupted_dependency_to_be_retried() {
    let data_dir = tempfile::tempdir().unwrap();
    let acknowledged = kill_when_ready(data_dir.path(), &["depends", "700", "2"]);
    let jobs = restart_and_drain(data_dir.path());

    let (a, b) = (job(&jobs, &acknowledged[0]), job(&jobs, &acknowledged[1]));
    assert_eq!(a.status, JobStatus::Succeeded, "{a:#?}");
    assert_eq!(a.attempts.len(), 2, "{a:#?}");
    assert_recorded_as_interrupted(a, 0);
    assert_eq!(b.status, JobStatus::Succeeded, "{b:#?}");
    assert_eq!(b.attempts.len(), 1, "{b:#?}");
    assert!(
        b.started_at >= a.stopped_at,
        "b ran before a succeeded: {a:#?} {b:#?}"
    );
}

#[test]
fn a_dependent_of_an_interrupted_job_with_no_attempts_left_fails() {
    let data_dir = tempfile::tempdir().unwrap();
    let acknowledged = kill_when_ready(data_dir.path(), &["depends", "700", "1"]);
    let jobs = restart_and_drain(data_dir.path());

    let (a, b) = (job(&jobs, &acknowledged[0]), job(&jobs, &acknowledged[1]));
    assert_eq!(a.status, JobStatus::Failed, "{a:#?}");
    assert_eq!(a.attempts.len(), 1, "{a:#?}");
    assert_recorded_as_interrupted(a, 0);
    assert!(
        a.status_reason
            .as_deref()
            .unwrap()
            .starts_with("Host restarted"),
        "{a:#?}"
    );
    assert_eq!(b.status, JobStatus::Failed, "{b:#?}");
    assert_eq!(
        b.status_reason,
        Some(format!("Dependent Job failed: {}", a.job_id)),
        "{b:#?}"
    );
    assert!(b.attempts.is_empty(), "b never ran: {b:#?}");
}

#[test]
fn a_retry_interrupted_by_a_restart_keeps_its_attempts_in_order() {
    let data_dir = tempfile::tempdir().unwrap();
    // Attempt 1 exits 1; attempt 2 is running at the kill; attempt 3 of 3 succeeds.
    let acknowledged = kill_when_ready(data_dir.path(), &["retry", "700", "3"]);
    let jobs = restart_and_drain(data_dir.path());

    let flaky = job(&jobs, &acknowledged[0]);
    assert_eq!(flaky.status, JobStatus::Succeeded, "{flaky:#?}");
    let exits: Vec<Option<i32>> = flaky.attempts.iter().map(|a| a.exit_code).collect();
    assert_eq!(exits, [Some(1), None, Some(0)], "{flaky:#?}");
    assert_recorded_as_interrupted(flaky, 1);
    for pair in flaky.attempts.windows(2) {
        assert!(pair[0].stopped_at <= pair[1].started_at, "{flaky:#?}");
    }
}

#[test]
fn a_restart_that_uses_a_jobs_last_attempt_fails_it_without_another() {
    let data_dir = tempfile::tempdir().unwrap();
    // Attempt 1 exits 1; attempt 2 of 2 is running at the kill: none is left after it.
    let acknowledged = kill_when_ready(data_dir.path(), &["retry", "700", "2"]);
    let jobs = restart_and_drain(data_dir.path());

    let flaky = job(&jobs, &acknowledged[0]);
    assert_eq!(flaky.status, JobStatus::Failed, "{flaky:#?}");
    let exits: Vec<Option<i32>> = flaky.attempts.iter().map(|a| a.exit_code).collect();
    assert_eq!(exits, [Some(1), None], "{flaky:#?}");
    assert_recorded_as_interrupted(flaky, 1);
    assert!(
        flaky
            .status_reason
            .as_deref()
            .unwrap()
            .starts_with("Host restarted"),
        "{flaky:#?}"
    );
}
