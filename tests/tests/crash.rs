//! Guards against losing or misreporting jobs when the process running the control plane is
//! killed (SIGKILL) mid-flight: after a restart on the same data dir every acknowledged job is
//! there, attempts that were running are recorded as interrupted by the restart, the jobs are
//! retried and end in a truthful state, and no attempt is reported as succeeding twice.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmbatch_runtime::model::{Job, JobStatus};
use wasmbatch_tests::guests;

const WORKER: &str = env!("CARGO_BIN_EXE_crash-worker");

#[test]
fn a_killed_control_plane_loses_nothing_and_reports_the_truth() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut worker = Command::new(WORKER)
        .arg(data_dir.path())
        .args(["submit", guests::wasip2::SLEEP, "6", "1500"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 6 {
        let line = lines.next().expect("the worker ended early").unwrap();
        acknowledged.push(line.strip_prefix("SUBMITTED ").unwrap().to_string());
    }
    // Two jobs are now running (2 vCPUs); kill the process in the middle of their attempts.
    std::thread::sleep(Duration::from_millis(700));
    worker.kill().unwrap();
    worker.wait().unwrap();

    let started = Instant::now();
    let drained = Command::new(WORKER)
        .arg(data_dir.path())
        .arg("drain")
        .output()
        .unwrap();
    assert!(
        drained.status.success(),
        "{}",
        String::from_utf8_lossy(&drained.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    let jobs: Vec<Job> = String::from_utf8(drained.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    for id in &acknowledged {
        assert!(
            jobs.iter().any(|j| &j.job_id == id),
            "acknowledged job {id} was lost"
        );
    }
    let interrupted: Vec<&Job> = jobs
        .iter()
        .filter(|j| {
            j.attempts
                .iter()
                .any(|a| a.reason.as_deref() == Some("HostRestarted"))
        })
        .collect();
    assert!(
        !interrupted.is_empty(),
        "no attempt was running at the kill: {jobs:#?}"
    );
    for job in &jobs {
        // Two attempts each: one lost to the restart leaves one, which succeeds.
        assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
        let successes = job
            .attempts
            .iter()
            .filter(|a| a.exit_code == Some(0))
            .count();
        assert_eq!(successes, 1, "{job:#?}");
    }
    for job in interrupted {
        let lost = &job.attempts[0];
        assert!(
            lost.status_reason
                .as_deref()
                .unwrap()
                .starts_with("Host restarted")
        );
        assert!(lost.started_at.is_some() && lost.stopped_at.is_some());
    }
}
