//! Cluster mode end to end: a real `wasmbatch serve --cluster`, real `wasmbatch worker`
//! processes and real nats-server processes (scripts/test installs nats-server 2.15.1), each
//! started by its test on free loopback ports and stopped by it. Workers are killed (-9),
//! paused (SIGSTOP), cut off in their own network namespace; the control plane is killed and
//! restarted; a JetStream stream leader is killed mid-burst; a module object is tampered with.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmbatch_tests::guests::wasip1;
use wasmbatch_tests::nats::{NatsCluster, NatsServer, Netns};

const WASMBATCH: &str = env!("CARGO_BIN_EXE_wasmbatch");
/// Short, so the tests that lose a worker wait seconds, not the default 10 s.
const LEASE: &str = "3s";
const HEARTBEAT: &str = "250ms";

/// A child process whose stderr is kept, so a test can wait for a line and show it all.
struct Process {
    child: Child,
    said: Arc<Mutex<String>>,
}

impl Process {
    fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // What the control plane does on its own (recovery) it says at info.
            .env(
                "WASMBATCH_LOG",
                "warn,wasmbatch_runtime::cluster::control=info",
            )
            .env("NO_COLOR", "1")
            .spawn()
            .expect("starting wasmbatch");
        let stderr = BufReader::new(child.stderr.take().expect("piped"));
        let said = Arc::new(Mutex::new(String::new()));
        let keep = said.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut said = keep.lock().unwrap();
                said.push_str(&line);
                said.push('\n');
            }
        });
        Self { child, said }
    }

    fn said(&self) -> String {
        self.said.lock().unwrap().clone()
    }

    /// Waits until it has said something containing `what`; returns that line.
    fn wait_for(&self, what: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.said().lines().find(|l| l.contains(what)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for {what:?}; it said:\n{}",
                self.said()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal}");
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `wasmbatch serve --cluster` over a data dir.
struct ControlPlane {
    process: Process,
    endpoint: String,
}

impl ControlPlane {
    fn start(dir: &Path, nats: &str, flags: &[&str]) -> Self {
        let process = Process::spawn(
            Command::new(WASMBATCH)
                .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir)
                .args(["--cluster", nats])
                .args(if flags.contains(&"--lease") {
                    &[][..]
                } else {
                    &["--lease", LEASE][..]
                })
                .args(flags),
        );
        let line = process.wait_for("serving on", Duration::from_secs(60));
        let endpoint = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("an endpoint")
            .to_string();
        Self { process, endpoint }
    }

    fn post(&self, operation: &str, body: &Value) -> Value {
        let (status, reply) = http(
            &self.endpoint,
            "POST",
            &format!("/v1/{operation}"),
            Some(body),
        );
        assert_eq!(status, 200, "{operation} {body}: {reply}");
        reply
    }

    fn push(&self, name: &str, path: &str) {
        let output = Command::new(WASMBATCH)
            .args(["push", path, "--name", name, "--endpoint", &self.endpoint])
            .output()
            .expect("wasmbatch push");
        assert!(output.status.success(), "{output:?}");
    }

    /// A farm: UNMANAGED environment `farm`, queue `farmq`, definitions `sleep` (1 vCPU,
    /// `attempts` attempts) and `hello`.
    fn farm(&self, attempts: u32) {
        self.push("sleep", wasip1::SLEEP);
        self.push("hello", wasip1::HELLO);
        self.post(
            "createcomputeenvironment",
            &json!({"computeEnvironmentName": "farm", "type": "UNMANAGED"}),
        );
        self.post(
            "createjobqueue",
            &json!({"jobQueueName": "farmq", "priority": 1,
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "farm"}]}),
        );
        for (name, image) in [("sleep", "sleep"), ("hello", "hello")] {
            self.post(
                "registerjobdefinition",
                &json!({"jobDefinitionName": name, "type": "container",
                    "retryStrategy": {"attempts": attempts},
                    "containerProperties": {"image": image, "resourceRequirements": [
                        {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]}}),
            );
        }
    }

    fn submit(&self, definition: &str, command: &[&str], extra: Value) -> String {
        let mut body = json!({"jobName": definition, "jobQueue": "farmq",
            "jobDefinition": definition, "containerOverrides": {"command": command}});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.post("submitjob", &body)["jobId"]
            .as_str()
            .expect("a job id")
            .to_string()
    }

    fn job(&self, id: &str) -> Value {
        self.post("describejobs", &json!({"jobs": [id]}))["jobs"][0].clone()
    }

    /// Waits until the job's status is one of `statuses`.
    fn wait(&self, id: &str, statuses: &[&str], timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(id);
            if statuses.iter().any(|s| job["status"] == *s) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} is not {statuses:?} after {timeout:?}: {job:#}\nthe server said:\n{}",
                self.process.said()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn workers(&self) -> Vec<Value> {
        let (status, reply) = http(&self.endpoint, "GET", "/v1/workers", None);
        assert_eq!(status, 200, "{reply}");
        reply["workers"].as_array().cloned().unwrap_or_default()
    }

    fn wait_workers(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.workers().len() < n {
            assert!(Instant::now() < deadline, "{:?}", self.workers());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `wasmbatch worker` named `name` with `vcpus` for environment `farm`.
fn worker(nats: &str, name: &str, vcpus: u32, dir: &Path) -> Process {
    worker_with(Command::new(WASMBATCH), nats, name, vcpus, dir, &[])
}

/// A worker started by `command` (the binary, or `ip netns exec … binary`), with `flags`.
fn worker_with(
    mut command: Command,
    nats: &str,
    name: &str,
    vcpus: u32,
    dir: &Path,
    flags: &[&str],
) -> Process {
    let process = Process::spawn(
        command
            .args(["worker", "--cluster", nats, "--compute-environment", "farm"])
            .args([
                "--vcpus",
                &vcpus.to_string(),
                "--memory",
                "4096",
                "--name",
                name,
            ])
            .args(["--heartbeat", HEARTBEAT, "--data-dir"])
            .arg(dir.join(name))
            .args(flags),
    );
    process.wait_for("serving compute environment", Duration::from_secs(60));
    process
}

/// The session a worker said it started with.
fn session_of(worker: &Process) -> String {
    worker
        .wait_for("(session ", Duration::from_secs(5))
        .rsplit_once("(session ")
        .expect("a session")
        .1
        .trim_end_matches(')')
        .to_string()
}

/// A request to the server in local mode (no signature needed), over a fresh connection.
fn http(endpoint: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    request(
        endpoint,
        method,
        path,
        "Content-Type: application/json",
        body,
    )
}

/// One HTTP/1.1 request with `headers` (CRLF-separated), its JSON reply.
fn request(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connecting");
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{headers}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn attempts(job: &Value) -> Vec<Value> {
    job["attempts"].as_array().cloned().unwrap_or_default()
}

fn worker_of(attempt: &Value) -> &str {
    attempt["container"]["worker"].as_str().unwrap_or("")
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn jobs_on_an_unmanaged_environment_run_on_workers_like_local_ones() {
    let nats = NatsServer::start_single();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), &nats.url(), &[]);
    cp.farm(1);
    let _w1 = worker(&nats.url(), "w1", 2, dir.path());
    let _w2 = worker(&nats.url(), "w2", 2, dir.path());
    cp.wait_workers(2);

    // The environment shows the workers' capacity; `wasmbatch workers` lists them.
    let envs = cp.post(
        "describecomputeenvironments",
        &json!({"computeEnvironments": ["farm"]}),
    );
    let live = &envs["computeEnvironments"][0]["liveCapacity"];
    assert_eq!(
        (live["workers"].as_u64(), live["vcpus"].as_f64()),
        (Some(2), Some(4.0)),
        "{envs}"
    );
    let listed = Command::new(WASMBATCH)
        .args(["workers", "--endpoint", &cp.endpoint])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("w1") && listed.contains("w2") && listed.contains("farm"),
        "{listed}"
    );

    // An array of four spreads over both workers; a job that depends on it runs after.
    let array = cp.submit(
        "hello",
        &["from", "afar"],
        json!({"arrayProperties": {"size": 4}}),
    );
    let after = cp.submit(
        "hello",
        &["after"],
        json!({"dependsOn": [{"jobId": array}]}),
    );
    let done = cp.wait(&after, &["SUCCEEDED", "FAILED"], MINUTE);
    assert_eq!(done["status"], "SUCCEEDED", "{done:#}");
    let mut ran_on = std::collections::BTreeSet::new();
    for index in 0..4 {
        let child = cp.job(&format!("{array}:{index}"));
        assert_eq!(child["status"], "SUCCEEDED", "{child:#}");
        let child_attempts = attempts(&child);
        assert_eq!(child_attempts.len(), 1, "{child:#}");
        ran_on.insert(worker_of(&child_attempts[0]).to_string());
        assert!(child["startedAt"].as_i64() <= done["startedAt"].as_i64());
    }
    assert_eq!(ran_on.into_iter().collect::<Vec<_>>(), ["w1", "w2"]);

    // Its log reached the control plane: GetLogEvents (CloudWatch Logs' API) reads it.
    let stream = attempts(&done)[0]["container"]["logStreamName"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, events) = http_logs(&cp.endpoint, &stream);
    assert_eq!(status, 200, "{events}");
    let messages: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("\"after\"")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("AWS_BATCH_CE_NAME=farm")),
        "{messages:?}"
    );

    // A chatty guest's lines come in several batches and its end's own report, complete and
    // in order.
    cp.push("write-lot", wasip1::WRITE_LOT);
    cp.post(
        "registerjobdefinition",
        &json!({"jobDefinitionName": "write-lot", "type": "container",
            "containerProperties": {"image": "write-lot"}}),
    );
    let chatty = cp.submit("write-lot", &["50000"], json!({}));
    assert_eq!(
        cp.wait(&chatty, &["SUCCEEDED", "FAILED"], MINUTE)["status"],
        "SUCCEEDED"
    );
    let printed = Command::new(WASMBATCH)
        .args(["logs", &chatty, "--endpoint", &cp.endpoint])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout).to_string();
    let lines: Vec<&str> = printed.lines().filter(|l| l.contains("out line")).collect();
    assert_eq!(
        lines.len(),
        50_000,
        "{}",
        &printed[..printed.len().min(500)]
    );
    for (i, line) in lines.iter().enumerate() {
        assert!(line.ends_with(&format!("out line {i}")), "line {i}: {line}");
    }

    // A timeout is the worker's to enforce; a terminate reaches it within a heartbeat.
    let slow = cp.submit(
        "sleep",
        &["60000"],
        json!({"timeout": {"attemptDurationSeconds": 1}}),
    );
    let timed_out = cp.wait(&slow, &["SUCCEEDED", "FAILED"], MINUTE);
    assert_eq!(
        attempts(&timed_out)[0]["container"]["reason"],
        "Timeout",
        "{timed_out:#}"
    );
    let long = cp.submit("sleep", &["60000"], json!({}));
    cp.wait(&long, &["RUNNING"], MINUTE);
    let asked = Instant::now();
    cp.post("terminatejob", &json!({"jobId": long, "reason": "enough"}));
    let stopped = cp.wait(&long, &["FAILED"], Duration::from_secs(10));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "terminate took {:?}",
        asked.elapsed()
    );
    assert_eq!(stopped["statusReason"], "enough", "{stopped:#}");
    assert_eq!(
        attempts(&stopped)[0]["container"]["reason"],
        "Killed",
        "{stopped:#}"
    );
}

/// CloudWatch Logs' GetLogEvents for `stream`, from its start.
fn http_logs(endpoint: &str, stream: &str) -> (u16, Value) {
    let body =
        json!({"logGroupName": "/aws/batch/job", "logStreamName": stream, "startFromHead": true});
    request(
        endpoint,
        "POST",
        "/",
        "Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Logs_20140328.GetLogEvents",
        Some(&body),
    )
}

/// Jobs placed on `w1` only: it is the one worker until they run.
fn running_on_w1(cp: &ControlPlane, jobs: &[String]) {
    for id in jobs {
        cp.wait(id, &["RUNNING"], MINUTE);
    }
}

/// Each job lost one attempt on w1 ("Host lost") and succeeded on w2, which started only
/// after w1's attempt was given up.
fn retried_once_on_w2(cp: &ControlPlane, jobs: &[String]) {
    for id in jobs {
        let job = cp.wait(id, &["SUCCEEDED", "FAILED"], MINUTE);
        assert_eq!(job["status"], "SUCCEEDED", "{job:#}");
        let tries = attempts(&job);
        assert_eq!(tries.len(), 2, "one lost attempt, one retry: {job:#}");
        assert_eq!(worker_of(&tries[0]), "w1");
        assert_eq!(tries[0]["container"]["reason"], "HostLost", "{job:#}");
        assert!(
            tries[0]["statusReason"]
                .as_str()
                .unwrap()
                .starts_with("Host lost"),
            "{job:#}"
        );
        assert_eq!(worker_of(&tries[1]), "w2");
        assert!(
            tries[1]["startedAt"].as_i64() >= tries[0]["stoppedAt"].as_i64(),
            "never at the same time: {job:#}"
        );
    }
}

#[test]
fn a_worker_killed_mid_attempt_costs_each_of_its_jobs_exactly_one_attempt() {
    let nats = NatsServer::start_single();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), &nats.url(), &[]);
    cp.farm(2);
    let mut w1 = worker(&nats.url(), "w1", 3, dir.path());
    cp.wait_workers(1);
    let jobs: Vec<String> = (0..2)
        .map(|_| cp.submit("sleep", &["1500"], json!({})))
        .collect();
    // One with no attempt to spare: FAILED, as its retry strategy says.
    let last_chance = cp.submit(
        "sleep",
        &["1500"],
        json!({"retryStrategy": {"attempts": 1}}),
    );
    running_on_w1(&cp, &jobs);
    cp.wait(&last_chance, &["RUNNING"], MINUTE);
    let _w2 = worker(&nats.url(), "w2", 3, dir.path());
    w1.kill9();
    retried_once_on_w2(&cp, &jobs);
    let failed = cp.wait(&last_chance, &["SUCCEEDED", "FAILED"], MINUTE);
    assert_eq!(failed["status"], "FAILED", "{failed:#}");
    assert_eq!(attempts(&failed).len(), 1);
    assert!(
        failed["statusReason"]
            .as_str()
            .unwrap()
            .starts_with("Host lost: worker w1"),
        "{failed:#}"
    );
    assert!(cp.workers().iter().all(|w| w["name"] != "w1"), "w1 is gone");
}

#[test]
fn a_worker_paused_past_its_lease_has_its_late_results_discarded_and_stops_its_attempts() {
    let nats = NatsServer::start_single();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), &nats.url(), &[]);
    cp.farm(2);
    let w1 = worker(&nats.url(), "w1", 2, dir.path());
    cp.wait_workers(1);
    let jobs: Vec<String> = (0..2)
        .map(|_| cp.submit("sleep", &["2500"], json!({})))
        .collect();
    running_on_w1(&cp, &jobs);
    let _w2 = worker(&nats.url(), "w2", 2, dir.path());
    w1.signal("-STOP");
    retried_once_on_w2(&cp, &jobs);
    w1.signal("-CONT");
    // It finds its lease lapsed and stops what it ran; its reports of them are dropped.
    w1.wait_for("Host lost:", Duration::from_secs(10));
    cp.process
        .wait_for("dropped a report", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    for id in &jobs {
        let job = cp.job(id);
        assert_eq!(
            job["status"], "SUCCEEDED",
            "a late report changed nothing: {job:#}"
        );
        assert_eq!(attempts(&job).len(), 2, "{job:#}");
    }
}

#[test]
fn a_worker_cut_off_from_nats_kills_its_attempts_itself_and_each_is_retried_once_elsewhere() {
    let netns = match Netns::create("cut") {
        Ok(netns) => netns,
        Err(why) => {
            eprintln!("SKIPPED: this test needs a network namespace, and {why}");
            return;
        }
    };
    // Listening on every address: the namespace reaches it through its veth's host side.
    let nats = NatsServer::start_single_on("0.0.0.0");
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), &nats.url(), &[]);
    cp.farm(2);
    let w1 = worker_with(
        netns.command(WASMBATCH),
        &nats.url_at(netns.host_ip()),
        "w1",
        2,
        dir.path(),
        &[],
    );
    cp.wait_workers(1);
    let jobs: Vec<String> = (0..2)
        .map(|_| cp.submit("sleep", &["5000"], json!({})))
        .collect();
    running_on_w1(&cp, &jobs);
    let _w2 = worker(&nats.url(), "w2", 2, dir.path());
    netns.cut();
    let cut = Instant::now();
    // It stops its attempts before the control plane gives them to w2.
    w1.wait_for("could not renew its lease", Duration::from_secs(10));
    retried_once_on_w2(&cp, &jobs);
    std::thread::sleep(Duration::from_secs(10).saturating_sub(cut.elapsed()));
    netns.restore();
    std::thread::sleep(Duration::from_secs(2));
    for id in &jobs {
        assert_eq!(
            attempts(&cp.job(id)).len(),
            2,
            "nothing more after w1 came back"
        );
    }
}

#[test]
fn a_module_tampered_with_in_the_object_store_is_refused_by_the_worker() {
    let nats = NatsServer::start_single();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), &nats.url(), &[]);
    cp.farm(1);
    let digest = wasmbatch_runtime::Digest::of(&std::fs::read(wasip1::HELLO).unwrap());
    // Other bytes under the module's name, before any worker fetched it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let bucket = js.get_object_store("wb-modules").await.unwrap();
        let forged = std::fs::read(wasip1::EXIT_CODE).unwrap();
        bucket
            .put(digest.hex().as_str(), &mut forged.as_slice())
            .await
            .unwrap();
    });
    let _w1 = worker(&nats.url(), "w1", 2, dir.path());
    cp.wait_workers(1);
    let id = cp.submit("hello", &["x"], json!({}));
    let job = cp.wait(&id, &["SUCCEEDED", "FAILED"], MINUTE);
    assert_eq!(job["status"], "FAILED", "{job:#}");
    let reason = job["statusReason"].as_str().unwrap();
    assert!(reason.starts_with("CannotPullContainerError:"), "{reason}");
    assert!(
        reason.contains(&digest.to_string()) && reason.contains("refused"),
        "{reason}"
    );
    assert_eq!(job["attempts"][0]["startedAt"], Value::Null, "it never ran");
}

/// A registry image runs on a remote worker: the control plane pulls it (with its login) and
/// hands it on through the object store, as it does a pushed module, so workers need neither the
/// registry's login nor a way to it.
#[test]
fn a_registry_image_runs_on_a_worker_that_never_reaches_the_registry() {
    let registry = wasmbatch_tests::registry::Registry::start();
    let image = format!("{}/farm/hello:1", registry.host());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pushed = runtime
        .block_on(wasmbatch_runtime::registry::push(
            &image,
            std::fs::read(wasip1::HELLO).unwrap(),
            None,
            false,
        ))
        .unwrap();
    let nats = NatsServer::start_single();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), &nats.url(), &[]);
    cp.farm(1);
    cp.post(
        "registerjobdefinition",
        &json!({"jobDefinitionName": "pulled", "type": "container",
            "containerProperties": {"image": image, "resourceRequirements": [
                {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]}}),
    );
    let _w1 = worker(&nats.url(), "w1", 2, dir.path());
    cp.wait_workers(1);
    let id = cp.submit("pulled", &["remote"], json!({}));
    let job = cp.wait(&id, &["SUCCEEDED", "FAILED"], MINUTE);
    assert_eq!(job["status"], "SUCCEEDED", "{job:#}");
    assert_eq!(worker_of(&attempts(&job)[0]), "w1");
    assert_eq!(
        job["container"]["imageDigest"],
        pushed.manifest_digest.as_str()
    );
}

/// The README's NATS accounts: the control plane may do everything, worker `w1` only speak for
/// itself (its reports, heartbeats, consumer and replies) and read modules.
const ACCOUNTS: &str = r#"
accounts {
  WASMBATCH {
    jetstream: enabled
    users: [
      { user: wasmbatch, password: "control-secret" }
      { user: w1, password: "w1-secret", permissions: {
          publish: { allow: [
            "wb.report.w1", "wb.hb.w1"
            "$JS.API.STREAM.INFO.WB_WORK", "$JS.API.CONSUMER.INFO.WB_WORK.w1"
            "$JS.API.CONSUMER.CREATE.WB_WORK.w1.wb.work.w1"
            "$JS.API.CONSUMER.MSG.NEXT.WB_WORK.w1"
            "$JS.ACK.WB_WORK.w1.>"
            "$JS.API.STREAM.INFO.OBJ_wb-modules"
            "$JS.API.DIRECT.GET.OBJ_wb-modules.>", "$JS.API.STREAM.MSG.GET.OBJ_wb-modules"
            "$JS.API.CONSUMER.CREATE.OBJ_wb-modules", "$JS.FC.OBJ_wb-modules.>"
          ] }
          subscribe: { allow: [ "_INBOX.w1.>" ] }
      } }
    ]
  }
}
"#;

#[test]
fn workers_authenticate_to_nats_and_their_credentials_speak_only_for_them() {
    let nats = NatsServer::start_single_with("127.0.0.1", ACCOUNTS);
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(
        &dir.path().join("cp"),
        &nats.url(),
        &[
            "--nats-user",
            "wasmbatch",
            "--nats-password",
            "control-secret",
        ],
    );
    cp.farm(1);
    // A wrong password is a clear error at once, not a worker that waits forever.
    let refused = Command::new(WASMBATCH)
        .args([
            "worker",
            "--cluster",
            &nats.url(),
            "--compute-environment",
            "farm",
        ])
        .args([
            "--name",
            "w1",
            "--nats-user",
            "w1",
            "--nats-password",
            "guess",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("refused"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(said.contains("authorization"), "{said}");

    // With its own user and only the README's permissions, it runs jobs.
    let mut command = Command::new(WASMBATCH);
    command.env("WASMBATCH_NATS_PASSWORD", "w1-secret");
    let w1 = worker_with(
        command,
        &nats.url(),
        "w1",
        2,
        dir.path(),
        &["--nats-user", "w1"],
    );
    cp.wait_workers(1);
    let id = cp.submit("hello", &["with", "permissions"], json!({}));
    let job = cp.wait(&id, &["SUCCEEDED", "FAILED"], MINUTE);
    assert_eq!(
        job["status"],
        "SUCCEEDED",
        "{job:#}
w1 said:
{}",
        w1.said()
    );

    // w1's credentials cannot report as w2, nor read the control plane's replies.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client =
            async_nats::ConnectOptions::with_user_and_password("w1".into(), "w1-secret".into())
                .custom_inbox_prefix("_INBOX.w1")
                .connect(nats.url())
                .await
                .unwrap();
        let js = async_nats::jetstream::new(client.clone());
        let forged = js.publish("wb.report.w2", "{}".into()).await;
        let acked = match forged {
            Ok(ack) => tokio::time::timeout(Duration::from_secs(3), ack)
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        assert!(acked.is_none(), "w1 published a report as w2: {acked:?}");
        // Replies to others are not for it: the server refuses the subscription.
        let _others = client.subscribe("_INBOX.>").await;
        let _ = client.flush().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let log = std::fs::read_to_string(nats.log_path()).unwrap();
    assert!(
        log.contains("Publish Violation") && log.contains("wb.report.w2"),
        "{log}"
    );
    assert!(
        log.contains("Subscription Violation") && log.contains("_INBOX.>"),
        "{log}"
    );
    assert!(
        !log.lines().any(|l| l.contains("Violation")
            && l.contains("w1")
            && !l.contains("wb.report.w2")
            && !l.contains("_INBOX.>")),
        "the worker itself needed nothing it was not given:
{log}"
    );
}

#[test]
fn a_report_forged_by_another_worker_is_dropped() {
    let nats = NatsServer::start_single();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), &nats.url(), &[]);
    cp.farm(1);
    let w1 = worker(&nats.url(), "w1", 2, dir.path());
    cp.wait_workers(1);
    let session = session_of(&w1);
    let id = cp.submit("sleep", &["2000"], json!({}));
    cp.wait(&id, &["RUNNING"], MINUTE);
    // w2's credentials publish only on w2's subject: a claim that w1's attempt failed.
    let forged = json!([{"type": "ended", "job": id, "attempt": 1, "session": session,
        "startedAt": null, "outcome": {"exitCode": 1, "peakMemoryBytes": 0, "wallMs": 0}}]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.publish("wb.report.w2", forged.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    cp.process
        .wait_for("dropped a report", Duration::from_secs(10));
    let job = cp.wait(&id, &["SUCCEEDED", "FAILED"], MINUTE);
    assert_eq!(job["status"], "SUCCEEDED", "{job:#}");
    assert_eq!(attempts(&job)[0]["container"]["exitCode"], 0);
}

#[test]
fn the_control_plane_killed_while_workers_run_applies_their_outcomes_after_its_restart() {
    let nats = NatsServer::start_single();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cp");
    let mut cp = ControlPlane::start(&data, &nats.url(), &[]);
    cp.farm(1);
    let _w1 = worker(&nats.url(), "w1", 2, dir.path());
    let _w2 = worker(&nats.url(), "w2", 2, dir.path());
    cp.wait_workers(2);
    let jobs: Vec<String> = (0..4)
        .map(|_| cp.submit("sleep", &["1500"], json!({})))
        .collect();
    for id in &jobs {
        cp.wait(id, &["RUNNING"], MINUTE);
    }
    cp.process.kill9();
    // They end while it is down; their reports wait in JetStream.
    std::thread::sleep(Duration::from_secs(2));
    let cp = ControlPlane::start(&data, &nats.url(), &[]);
    for id in &jobs {
        let job = cp.wait(id, &["SUCCEEDED", "FAILED"], MINUTE);
        assert_eq!(job["status"], "SUCCEEDED", "{job:#}");
        assert_eq!(
            attempts(&job).len(),
            1,
            "applied once, not retried: {job:#}"
        );
        assert_eq!(attempts(&job)[0]["container"]["exitCode"], 0);
    }
}

#[test]
fn an_attempt_journaled_but_not_started_when_the_control_plane_died_is_published_again_and_runs_once()
 {
    let nats = NatsServer::start_single();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cp");
    // A lease long enough that the paused worker is not lost while the control plane restarts.
    let flags = ["--lease", "20s"];
    let mut cp = ControlPlane::start(&data, &nats.url(), &flags);
    cp.farm(1);
    let w1 = worker(&nats.url(), "w1", 4, dir.path());
    cp.wait_workers(1);
    // Paused, w1 cannot start what it is given: the attempts stay journaled and published
    // (STARTING) but never reported started.
    w1.signal("-STOP");
    let jobs: Vec<String> = (0..3)
        .map(|_| cp.submit("sleep", &["200"], json!({})))
        .collect();
    for id in &jobs {
        cp.wait(id, &["STARTING"], MINUTE);
    }
    // A placement is journaled milliseconds after it is made (once the module is in the
    // object store): given a second, all three are, and published.
    std::thread::sleep(Duration::from_secs(1));
    cp.process.kill9();
    let cp = ControlPlane::start(&data, &nats.url(), &flags);
    cp.process
        .wait_for("publishing again 3 attempt(s)", Duration::from_secs(30));
    // w1 now has each attempt twice: the first publication and the restarted one's.
    w1.signal("-CONT");
    for id in &jobs {
        let job = cp.wait(id, &["SUCCEEDED", "FAILED"], MINUTE);
        assert_eq!(job["status"], "SUCCEEDED", "{job:#}");
        assert_eq!(attempts(&job).len(), 1, "one attempt: {job:#}");
        let stream = attempts(&job)[0]["container"]["logStreamName"]
            .as_str()
            .expect("a log stream")
            .to_string();
        let (status, logs) = http_logs(&cp.endpoint, &stream);
        assert_eq!(status, 200, "{logs}");
        let lines: Vec<&str> = logs["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["message"].as_str())
            .collect();
        assert_eq!(lines, ["sleeping", "woke up"], "run once: {job:#}");
    }
    // A second run after the first ended would report on an attempt no longer held, and the
    // control plane would say it dropped those reports.
    std::thread::sleep(Duration::from_secs(1));
    let said = cp.process.said();
    assert!(
        !said.contains("dropped a report"),
        "an attempt ran twice:\n{said}"
    );
}

#[test]
fn killing_the_stream_leader_during_a_burst_of_submits_loses_no_acknowledged_job() {
    let mut cluster = NatsCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(
        &dir.path().join("cp"),
        &cluster.urls(),
        &["--cluster-replicas", "3", "--lease", "20s"],
    );
    cp.farm(2);
    let _w1 = worker(&cluster.urls(), "w1", 4, dir.path());
    let _w2 = worker(&cluster.urls(), "w2", 4, dir.path());
    cp.wait_workers(2);
    let leader = cluster.wait_stream_leader("WB_WORK", MINUTE);
    let mut acknowledged = Vec::new();
    for i in 0..150 {
        if i == 50 {
            cluster.kill(leader);
        }
        acknowledged.push(cp.submit("hello", &[&i.to_string()], json!({})));
    }
    for id in &acknowledged {
        let job = cp.wait(id, &["SUCCEEDED", "FAILED"], Duration::from_secs(120));
        assert_eq!(job["status"], "SUCCEEDED", "{job:#}");
        assert_eq!(attempts(&job).len(), 1, "ran once: {job:#}");
    }
    let listed = cp.post(
        "listjobs",
        &json!({"jobQueue": "farmq", "jobStatus": "SUCCEEDED", "maxResults": 1000}),
    );
    let mut ids: Vec<&str> = listed["jobSummaryList"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["jobId"].as_str())
        .collect();
    ids.sort_unstable();
    let mut expected: Vec<&str> = acknowledged.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "every acknowledged job exactly once");

    // Every NATS server restarted, with work in flight (within the lease, 20 s here, which
    // a whole restart takes a few seconds of): nothing acknowledged is lost.
    cluster.restart(leader);
    let in_flight: Vec<String> = (0..8)
        .map(|_| cp.submit("sleep", &["1000"], json!({})))
        .collect();
    cluster.restart_all();
    for id in &in_flight {
        let job = cp.wait(id, &["SUCCEEDED", "FAILED"], Duration::from_secs(120));
        assert_eq!(job["status"], "SUCCEEDED", "{job:#}");
    }
}

#[test]
fn fair_share_and_following_a_log_work_on_a_farm_as_on_local_capacity() {
    let nats = NatsServer::start_single();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), &nats.url(), &[]);
    cp.farm(1);
    let policy = cp.post(
        "createschedulingpolicy",
        &json!({"name": "even", "fairsharePolicy": {"shareDecaySeconds": 600,
            "shareDistribution": [{"shareIdentifier": "a", "weightFactor": 1},
                                  {"shareIdentifier": "b", "weightFactor": 1}]}}),
    );
    cp.post(
        "createjobqueue",
        &json!({"jobQueueName": "fair", "priority": 1, "schedulingPolicyArn": policy["arn"],
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "farm"}]}),
    );
    let _w1 = worker(&nats.url(), "w1", 1, dir.path());
    cp.wait_workers(1);
    let submit = |share: &str| {
        cp.post(
            "submitjob",
            &json!({"jobName": share, "jobQueue": "fair", "jobDefinition": "sleep",
                "shareIdentifier": share, "containerOverrides": {"command": ["300"]}}),
        )["jobId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let a: Vec<String> = (0..4).map(|_| submit("a")).collect();
    let b: Vec<String> = (0..2).map(|_| submit("b")).collect();
    let started = |id: &String| {
        cp.wait(id, &["SUCCEEDED"], MINUTE)["startedAt"]
            .as_i64()
            .unwrap()
    };
    let a_started: Vec<i64> = a.iter().map(started).collect();
    let b_started: Vec<i64> = b.iter().map(started).collect();
    // FIFO would run all of a first; the one vCPU of w1 goes to the share used least.
    assert!(
        b_started[0] < a_started[2],
        "b waited behind a: a {a_started:?}, b {b_started:?}"
    );

    // `submit --follow` and `logs -f` read a remote attempt's lines as they arrive.
    let followed = Command::new(WASMBATCH)
        .args(["submit", "--queue", "farmq", "--image", "sleep", "--follow"])
        .args(["--endpoint", &cp.endpoint, "--", "500"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&followed.stdout);
    assert!(followed.status.success(), "{followed:?}");
    assert!(out.contains("sleeping") && out.contains("woke up"), "{out}");
    let id = cp.submit("sleep", &["800"], json!({}));
    cp.wait(&id, &["RUNNING"], MINUTE);
    let logs = Command::new(WASMBATCH)
        .args(["logs", "-f", &id, "--endpoint", &cp.endpoint])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.status.success(), "{logs:?}");
    assert!(out.contains("sleeping") && out.contains("woke up"), "{out}");
}

#[test]
fn the_control_plane_and_workers_speak_tls_to_nats_trusting_the_ca_they_are_given() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = wasmbatch_tests::tls::certificates(dir.path());
    let tls = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\n",
        cert.display(),
        key.display()
    );
    let nats = NatsServer::start_single_with("127.0.0.1", &tls);
    let url = nats.url().replace("nats://", "tls://");
    let ca = ca.display().to_string();
    let cp = ControlPlane::start(&dir.path().join("cp"), &url, &["--nats-tls-ca", &ca]);
    cp.farm(1);
    // Without the CA it does not trust the server, and says so.
    let untrusting = Command::new(WASMBATCH)
        .args([
            "worker",
            "--cluster",
            &url,
            "--compute-environment",
            "farm",
            "--name",
            "x",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!untrusting.status.success());
    let said = String::from_utf8_lossy(&untrusting.stderr).to_lowercase();
    assert!(
        said.contains("certificate") || said.contains("tls"),
        "{said}"
    );
    let _w1 = worker_with(
        Command::new(WASMBATCH),
        &url,
        "w1",
        1,
        dir.path(),
        &["--nats-tls-ca", &ca, "--nats-tls-required"],
    );
    cp.wait_workers(1);
    let id = cp.submit("hello", &["over", "tls"], json!({}));
    let job = cp.wait(&id, &["SUCCEEDED", "FAILED"], MINUTE);
    assert_eq!(job["status"], "SUCCEEDED", "{job:#}");
}

#[test]
fn a_worker_flooding_log_reports_is_held_to_the_attempts_output_caps() {
    let nats = NatsServer::start_single();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), &nats.url(), &[]);
    cp.farm(1);
    let w1 = worker(&nats.url(), "w1", 2, dir.path());
    cp.wait_workers(1);
    let session = session_of(&w1);
    let id = cp.submit("sleep", &["3000"], json!({}));
    cp.wait(&id, &["RUNNING"], MINUTE);
    // A compromised w1 sends far more than the executor would ever keep of an attempt:
    // 300,000 lines, where the caps keep 100,000 a stream.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        for batch in 0..30 {
            let lines: Vec<(&str, String)> = (0..10_000)
                .map(|i| ("stdout", format!("flood {batch} {i}")))
                .collect();
            let report = json!([{"type": "log", "job": id, "attempt": 1, "session": session,
                "lines": lines}]);
            js.publish("wb.report.w1", report.to_string().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });
    cp.process
        .wait_for("past the attempt's output caps", Duration::from_secs(20));
    let job = cp.wait(&id, &["SUCCEEDED", "FAILED"], MINUTE);
    assert_eq!(job["status"], "SUCCEEDED", "{job:#}");
    let printed = Command::new(WASMBATCH)
        .args(["logs", &id, "--endpoint", &cp.endpoint])
        .output()
        .unwrap();
    let kept = String::from_utf8_lossy(&printed.stdout)
        .lines()
        .filter(|l| l.contains("flood"))
        .count();
    assert!((100_000..=200_002).contains(&kept), "kept {kept} lines");
}

#[test]
fn the_console_lists_a_farms_workers_and_shows_a_remote_jobs_log() {
    let nats = NatsServer::start_single();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("cp"), &nats.url(), &[]);
    cp.farm(1);
    let _w1 = worker(&nats.url(), "w1", 2, dir.path());
    let _w2 = worker(&nats.url(), "w2", 1, dir.path());
    cp.wait_workers(2);
    let id = cp.submit("sleep", &[], json!({}));
    cp.wait(&id, &["RUNNING"], MINUTE);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = wasmbatch_tests::browser::Browser::start().await;
        let page = &browser.client;
        page.goto(&format!("{}/console#/environments", cp.endpoint))
            .await
            .unwrap();
        let farm = browser
            .shown(
                "tr[data-environment='farm'] td[data-field='capacity']",
                |t| t.starts_with("2 workers: "),
            )
            .await;
        assert!(farm.contains("of 3 vCPUs in use"), "{farm}");
        browser
            .shown("#workers tbody", |t| t.contains("w1") && t.contains("w2"))
            .await;
        // The remote attempt's line, followed from the worker through the control plane.
        page.goto(&format!("{}/console#/job/{id}", cp.endpoint))
            .await
            .unwrap();
        browser.shown("#log", |t| t.contains("sleeping")).await;
        browser.close().await;
    });
}
