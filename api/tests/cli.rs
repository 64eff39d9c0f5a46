//! The `wasmbatch` binary as a person uses it: `serve` in the background on a free port, the
//! client commands against it, `run` on its own; exit statuses and one-line errors included.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use wasmbatch_tests::guests;

const WASMBATCH: &str = env!("CARGO_BIN_EXE_wasmbatch");

/// `wasmbatch serve` on port 0 over a fresh data dir; stopped with SIGTERM when dropped.
struct Server {
    child: Child,
    endpoint: String,
    /// What it said on starting: where it listens, what it created.
    first_line: String,
    said: std::sync::mpsc::Receiver<String>,
    dir: Option<tempfile::TempDir>,
}

impl Server {
    fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap())
    }

    fn start_in(dir: tempfile::TempDir) -> Self {
        Self::start_with(dir, &[])
    }

    /// `serve` over `dir` with `flags` besides the listen address and the data dir.
    fn start_with(dir: tempfile::TempDir, flags: &[&std::ffi::OsStr]) -> Self {
        let mut child = Command::new(WASMBATCH)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(flags)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        // Warnings may come first (a data dir made private, say): the line that names the
        // endpoint is the one that says it is serving.
        let mut line = String::new();
        let mut before = String::new();
        while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("serving on") {
            before.push_str(&line);
            line.clear();
        }
        assert!(line.contains("serving on"), "serve said only: {before}");
        let endpoint = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("serve did not say where it listens: {line:?}"))
            .to_string();
        // Keep its later lines, and keep draining so it never blocks on a full pipe.
        let (lines, said) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        Self {
            child,
            endpoint,
            first_line: line,
            said,
            dir: Some(dir),
        }
    }

    /// SIGTERM; returns what it said on the way out and its data dir, once it has exited.
    fn stop(mut self) -> (String, tempfile::TempDir) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "serve exited with {status}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not stop on SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The reader thread sends the last lines as the pipe closes.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let said: Vec<String> = self.said.try_iter().collect();
        (said.join("\n"), self.dir.take().unwrap())
    }

    /// Waits (at most 10 s) for a line on its stderr that contains `text`, and returns it.
    fn says(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.said.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("serve did not say {text:?}"),
            }
        }
    }

    fn hang_up(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(WASMBATCH)
            .args(args)
            .env("WASMBATCH_ENDPOINT", &self.endpoint)
            .output()
            .unwrap()
    }

    fn push(&self, path: &str, name: &str) {
        let output = self.run(&["push", path, "--name", name]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failure a person reads: one line, naming `what`, with a non-zero exit and no panic.
fn fails_saying(output: &Output, what: &str) {
    let message = stderr(output);
    assert!(!output.status.success(), "expected a failure: {message}");
    assert!(message.contains(what), "{message:?} should say {what:?}");
    assert_eq!(
        message.trim_end().lines().count(),
        1,
        "one line: {message:?}"
    );
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn run_prints_the_output_and_exits_with_the_guests_status() {
    let output = Command::new(WASMBATCH)
        .args(["run", guests::wasip1::EXIT_CODE, "--", "3"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(stdout(&output), "exiting with 3\n");
    let output = Command::new(WASMBATCH)
        .args(["run", "/no/such/file.wasm"])
        .output()
        .unwrap();
    fails_saying(&output, "/no/such/file.wasm");
}

#[test]
fn push_submit_follow_logs_describe_and_list() {
    let server = Server::start();
    assert!(
        server
            .first_line
            .contains("created compute environment and job queue `default`"),
        "{}",
        server.first_line
    );
    let pushed = server.run(&["push", guests::wasip1::HELLO]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    assert!(
        stdout(&pushed).starts_with("pushed hello:latest sha256:"),
        "{}",
        stdout(&pushed)
    );
    let modules = server.run(&["modules", "--output", "json"]);
    let modules: serde_json::Value = serde_json::from_slice(&modules.stdout).unwrap();
    assert_eq!(modules["modules"][0]["name"], "hello");

    // --follow prints the id, then the job's output as it runs, and exits with its status.
    let followed = server.run(&[
        "submit", "--image", "hello", "--follow", "--", "ola", "mundo",
    ]);
    assert!(followed.status.success(), "{}", stderr(&followed));
    let text = stdout(&followed);
    let mut lines = text.lines();
    let id = lines.next().unwrap().to_string();
    assert_eq!(
        lines.next(),
        Some(r#"hello from wasmbatch: args=["hello", "ola", "mundo"]"#)
    );
    assert!(text.contains(&format!("AWS_BATCH_JOB_ID={id}")), "{text}");
    assert!(stderr(&followed).contains(&format!("job {id} SUCCEEDED")));

    let logs = server.run(&["logs", &id]);
    assert_eq!(
        stdout(&logs),
        text[id.len() + 1..],
        "logs prints the same output"
    );
    let described = server.run(&["describe", &id]);
    let described = stdout(&described);
    assert!(described.contains("SUCCEEDED"), "{described}");
    assert!(described.contains("command       ola mundo"), "{described}");
    let listed = stdout(&server.run(&["jobs", "--status", "succeeded"]));
    let row = listed
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains("hello") && row.contains("SUCCEEDED"), "{row}");
    let queues = stdout(&server.run(&["queues"]));
    assert!(
        queues.lines().nth(1).unwrap().starts_with("default"),
        "{queues}"
    );
    let envs = stdout(&server.run(&["envs"]));
    assert!(
        envs.contains("MANAGED") && envs.contains("ENABLED"),
        "{envs}"
    );
}

#[test]
fn a_followed_job_that_fails_exits_with_its_code_after_every_retry() {
    let server = Server::start();
    server.push(guests::wasip1::EXIT_CODE, "exit-code");
    let output = server.run(&[
        "submit",
        "--image",
        "exit-code",
        "--retries",
        "1",
        "--follow",
        "--",
        "7",
    ]);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(
        text.matches("exiting with 7").count(),
        2,
        "both attempts' output: {text}"
    );
    assert!(stderr(&output).contains("FAILED"), "{}", stderr(&output));

    // An array follows by counting its children.
    let output = server.run(&[
        "submit",
        "--image",
        "exit-code",
        "--array-size",
        "3",
        "--follow",
        "--",
        "0",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("succeeded 3"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn cancel_and_terminate_stop_jobs() {
    let server = Server::start();
    server.push(guests::wasip1::SLEEP, "sleep");
    let submit = |args: &[&str]| {
        let output = server.run(&[&["submit", "--image", "sleep"], args].concat());
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output).trim().to_string()
    };
    let sleeper = submit(&["--", "60000"]);
    // A PENDING job is cancelled once what it waits for has completed, as AWS does: long
    // enough to be waiting still when the cancel comes.
    let short = submit(&["--", "2000"]);
    let waiter = submit(&["--depends-on", &short, "--", "1"]);
    let cancelled = server.run(&["cancel", &waiter, "--reason", "not needed"]);
    assert!(cancelled.status.success(), "{}", stderr(&cancelled));
    let terminated = server.run(&["terminate", &sleeper]);
    assert!(terminated.status.success(), "{}", stderr(&terminated));
    for (id, reason) in [
        (&waiter, "not needed"),
        (&sleeper, "terminated from the wasmbatch command line"),
    ] {
        let mut described = String::new();
        for _ in 0..500 {
            described = stdout(&server.run(&["describe", id, "--output", "json"]));
            if described.contains("\"FAILED\"") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let job: serde_json::Value = serde_json::from_str(&described).unwrap();
        assert_eq!(job["status"], "FAILED", "{job}");
        assert_eq!(job["statusReason"], reason, "{job}");
    }
}

/// `cancel` and `terminate` take several ids and stop them in one request; an id that names
/// no job is said to, and fails the command, though the others are stopped.
#[test]
fn cancel_takes_several_ids_and_names_the_one_that_is_not_a_job() {
    let server = Server::start();
    server.push(guests::wasip1::SLEEP, "sleep");
    let submit = |args: &[&str]| {
        let output = server.run(&[&["submit", "--image", "sleep"], args].concat());
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output).trim().to_string()
    };
    let sleeper = submit(&[]);
    // Long enough for the waiters to be PENDING still when the cancel comes; they are
    // cancelled once it has succeeded, as AWS does.
    let short = submit(&["--", "2000"]);
    let waiters = [
        submit(&["--depends-on", &short]),
        submit(&["--depends-on", &short]),
    ];
    let cancelled = server.run(&[
        "cancel",
        &waiters[0],
        "no-such-job",
        &waiters[1],
        "--reason",
        "not needed",
    ]);
    fails_saying(&cancelled, "wasmbatch: job no-such-job does not exist");
    let terminated = server.run(&["terminate", &sleeper, "--output", "json"]);
    assert!(terminated.status.success(), "{}", stderr(&terminated));
    let reply: serde_json::Value = serde_json::from_slice(&terminated.stdout).unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"successful": [sleeper], "errors": []})
    );
    for id in &waiters {
        let mut job = serde_json::Value::Null;
        for _ in 0..500 {
            job = serde_json::from_slice(&server.run(&["describe", id, "--output", "json"]).stdout)
                .unwrap();
            if job["status"] == "FAILED" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(job["status"], "FAILED", "{job}");
        assert_eq!(job["statusReason"], "not needed", "{job}");
        assert_eq!(job["isCancelled"], true, "{job}");
    }
}

/// `submit --share` and `--priority` are SubmitJob's shareIdentifier and
/// schedulingPriorityOverride; a FIFO queue refuses a share, and the server's reason is shown.
#[test]
fn submit_share_on_a_fifo_queue_shows_the_servers_reason() {
    let server = Server::start();
    server.push(guests::wasip1::HELLO, "hello");
    fails_saying(
        &server.run(&[
            "submit",
            "--image",
            "hello",
            "--share",
            "teamA",
            "--priority",
            "5",
        ]),
        "shareIdentifier: job queue default has no fair-share scheduling policy",
    );
    fails_saying(
        &server.run(&["submit", "--image", "hello", "--priority", "10000"]),
        "schedulingPriorityOverride",
    );
}

/// `queue-snapshot` shows the RUNNABLE jobs in the order they will run, and what the queue
/// holds.
#[test]
fn queue_snapshot_shows_the_front_of_the_queue_in_order() {
    let server = Server::start();
    server.push(guests::wasip1::SLEEP, "sleep");
    // No command disables an environment; a DISABLED one holds the jobs RUNNABLE.
    let disabled = http(
        &server.endpoint,
        "POST /v1/updatecomputeenvironment",
        r#"{"computeEnvironment": "default", "state": "DISABLED"}"#,
    );
    assert!(disabled.starts_with("HTTP/1.1 200"), "{disabled}");
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let output = server.run(&["submit", "--image", "sleep"]);
            assert!(output.status.success(), "{}", stderr(&output));
            stdout(&output).trim().to_string()
        })
        .collect();

    let shown = server.run(&["queue-snapshot", "default"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let text = stdout(&shown);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("POSITION"), "{text}");
    for (i, id) in ids.iter().enumerate() {
        let row: Vec<&str> = lines[i + 1].split_whitespace().collect();
        assert_eq!(row[..2], [&(i + 1).to_string(), id.as_str()], "{text}");
        assert!(lines[i + 1].ends_with("s ago"), "{text}");
    }
    assert!(text.contains("vCPUs in use: 0"), "{text}");
    assert!(!text.contains("active shares"), "a FIFO queue: {text}");

    let json = server.run(&["queue-snapshot", "default", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["frontOfQueue"]["jobs"].as_array().unwrap().len(), 3);
    fails_saying(
        &server.run(&["queue-snapshot", "nope"]),
        "job queue nope does not exist",
    );
}

/// On a fair-share queue, `queues` and `queue-snapshot` show each share: its weight, the vCPUs
/// it holds, its decayed usage and its jobs waiting.
#[test]
fn queues_and_queue_snapshot_show_a_fair_share_queues_shares() {
    let server = Server::start();
    server.push(guests::wasip1::SLEEP, "sleep");
    // No command creates these; one vCPU, so that teamA's job runs and teamB's wait.
    for (operation, body) in [
        (
            "createschedulingpolicy",
            r#"{"name": "teams", "fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "teamB", "weightFactor": 0.5}]}}"#,
        ),
        (
            "createcomputeenvironment",
            r#"{"computeEnvironmentName": "one", "type": "MANAGED", "computeResources": {"type": "EC2", "maxvCpus": 1}}"#,
        ),
        (
            "createjobqueue",
            r#"{"jobQueueName": "shared", "priority": 1,
                "schedulingPolicyArn": "arn:aws:batch:us-east-1:000000000000:scheduling-policy/teams",
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "one"}]}"#,
        ),
    ] {
        let answer = http(&server.endpoint, &format!("POST /v1/{operation}"), body);
        assert!(answer.starts_with("HTTP/1.1 200"), "{operation}: {answer}");
    }
    let submit = |share: &str| {
        let output = server.run(&[
            "submit", "--queue", "shared", "--image", "sleep", "--share", share,
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output).trim().to_string()
    };
    let running = submit("teamA");
    for _ in 0..500 {
        let job = server.run(&["describe", &running, "--output", "json"]);
        let job: serde_json::Value = serde_json::from_slice(&job.stdout).unwrap();
        if job["status"] == "RUNNING" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let waiting = [submit("teamB"), submit("teamB")];

    let queues = server.run(&["queues"]);
    assert!(queues.status.success(), "{}", stderr(&queues));
    let text = stdout(&queues);
    assert!(
        text.contains("shared: fair share (teams), 2 active shares"),
        "{text}"
    );
    let row = |name: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in {text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert!(
        text.contains("SHARE  WEIGHT  VCPUS  USAGE (VCPU-S)  RUNNABLE"),
        "{text}"
    );
    assert_eq!(row("teamA")[1..3], ["1.0", "1"], "{text}");
    assert_eq!(row("teamA")[4], "0", "{text}");
    assert_eq!(row("teamB")[1..3], ["0.5", "0"], "{text}");
    assert_eq!(row("teamB")[4], "2", "{text}");

    let snapshot = server.run(&["queue-snapshot", "shared"]);
    assert!(snapshot.status.success(), "{}", stderr(&snapshot));
    let text = stdout(&snapshot);
    for id in &waiting {
        assert!(text.contains(id.as_str()), "{id} not in {text}");
    }
    assert!(
        !text.contains(running.as_str()),
        "a running job is not RUNNABLE: {text}"
    );
    assert!(text.contains("vCPUs in use: 1"), "{text}");
    assert!(text.contains("active shares: 2"), "{text}");
    assert!(text.contains("teamB  0.5"), "{text}");
}

#[test]
fn mistakes_are_one_line_and_a_non_zero_exit() {
    let server = Server::start();
    server.push(guests::wasip1::HELLO, "hello");
    fails_saying(
        &server.run(&["submit", "--queue", "nope", "--image", "hello"]),
        "job queue nope does not exist",
    );
    fails_saying(
        &server.run(&["push", "/no/such/module.wasm"]),
        "cannot open /no/such/module.wasm",
    );
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"not wasm at all").unwrap();
    fails_saying(
        &server.run(&["push", junk.path().to_str().unwrap(), "--name", "junk"]),
        "module:",
    );
    fails_saying(
        &server.run(&["logs", "no-such-job"]),
        "job no-such-job does not exist",
    );
    fails_saying(
        &server.run(&["cancel", "no-such-job"]),
        "job no-such-job does not exist",
    );
    fails_saying(
        &server.run(&["submit", "--image", "hello", "--depends-on", "x:SEQUENTIAL"]),
        "SEQUENTIAL takes no job id",
    );
    let down = Command::new(WASMBATCH)
        .args(["jobs", "--endpoint", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    fails_saying(&down, "cannot reach wasmbatch at http://127.0.0.1:9");
}

#[test]
fn every_command_has_help_with_an_example() {
    for command in [
        "run",
        "serve",
        "push",
        "modules",
        "submit",
        "jobs",
        "describe",
        "logs",
        "events",
        "cancel",
        "terminate",
        "queues",
        "queue-snapshot",
        "envs",
        "demo",
        "keys create",
        "registry login",
        "registry logout",
    ] {
        let output = Command::new(WASMBATCH)
            .args(command.split(' ').chain(["--help"]))
            .output()
            .unwrap();
        assert!(output.status.success(), "{command}");
        let help = stdout(&output);
        assert!(
            help.contains("Example"),
            "{command} --help has no example:\n{help}"
        );
        assert!(
            help.contains(&format!("wasmbatch {command}")),
            "{command}:\n{help}"
        );
    }
}

/// `wasmbatch` run with `args` and `input` on its standard input.
fn run_with_input(args: &[&str], input: &str, endpoint: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut command = Command::new(WASMBATCH);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(endpoint) = endpoint {
        command.env("WASMBATCH_ENDPOINT", endpoint);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A team pushes to its private registry once with `push --registry`; the operator saves the
/// server's login with `registry login`; jobs then run the image by reference. Tags pushed to
/// the server show in `modules`, and a password is never taken as an argument.
#[test]
fn push_to_a_registry_log_the_server_in_and_run_the_image() {
    let registry = wasmbatch_tests::registry::Registry::start_with_user("ci", "s3cret");
    let image = format!("{}/team/hello:1.0", registry.host());
    let pushed = run_with_input(
        &[
            "push",
            guests::wasip1::HELLO,
            "--registry",
            &image,
            "--username",
            "ci",
            "--password-stdin",
        ],
        "s3cret\n",
        None,
    );
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    assert!(
        stdout(&pushed).starts_with(&format!("pushed {image} sha256:")),
        "{}",
        stdout(&pushed)
    );
    fails_saying(
        &Command::new(WASMBATCH)
            .args([
                "push",
                guests::wasip1::HELLO,
                "--registry",
                &image,
                "--username",
                "ci",
            ])
            .output()
            .unwrap(),
        "--password-stdin",
    );
    let refused = run_with_input(
        &[
            "push",
            guests::wasip1::HELLO,
            "--registry",
            &image,
            "--username",
            "ci",
            "--password-stdin",
        ],
        "wrong\n",
        None,
    );
    fails_saying(&refused, "refused");

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let server = Server::start_in(dir);
    let logged_in = run_with_input(
        &[
            "registry",
            "login",
            &registry.host(),
            "--username",
            "ci",
            "--password-stdin",
            "--data-dir",
        ]
        .into_iter()
        .chain([data_dir.to_str().unwrap()])
        .collect::<Vec<_>>(),
        "s3cret\n",
        None,
    );
    assert!(logged_in.status.success(), "{}", stderr(&logged_in));
    let settings = data_dir.join("registries.json");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&settings).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the login is readable by its owner only: {mode:o}"
        );
    }
    let followed = server.run(&[
        "submit", "--image", &image, "--follow", "--", "from", "a", "registry",
    ]);
    assert!(followed.status.success(), "{}", stderr(&followed));
    assert!(
        stdout(&followed)
            .contains(r#"hello from wasmbatch: args=["hello", "from", "a", "registry"]"#),
        "{}",
        stdout(&followed)
    );

    let tagged = server.run(&["push", guests::wasip1::HELLO, "--tag", "2.0"]);
    assert!(
        stdout(&tagged).starts_with("pushed hello:2.0 sha256:"),
        "{}",
        stdout(&tagged)
    );
    let modules = stdout(&server.run(&["modules"]));
    assert!(
        modules.lines().next().unwrap().contains("TAGS"),
        "{modules}"
    );
    assert!(modules.contains("2.0=sha256:"), "{modules}");
    assert!(
        modules.contains(&format!("{}/team/hello", registry.host()))
            && modules.contains("1.0=sha256:"),
        "the pulled image is kept with its tag: {modules}"
    );

    let out = Command::new(WASMBATCH)
        .args(["registry", "logout", &registry.host(), "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("removed the login"),
        "{}",
        stdout(&out)
    );
    let left = std::fs::read_to_string(&settings).unwrap();
    assert!(!left.contains("s3cret"), "{left}");
}

/// SIGTERM stops the running attempts, records them, ends open log followers, and exits; the
/// next start finds the job as it was recorded.
#[test]
fn serve_stops_gracefully_and_records_what_was_running() {
    let server = Server::start();
    server.push(guests::wasip1::SLEEP, "sleep");
    let submitted = server.run(&["submit", "--image", "sleep", "--", "600000"]);
    let id = stdout(&submitted).trim().to_string();
    let mut follower = Command::new(WASMBATCH)
        .args(["logs", "-f", &id, "--endpoint", &server.endpoint])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The guest says "sleeping" once it runs.
    let mut first = String::new();
    BufReader::new(follower.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "sleeping\n");

    let (said, dir) = server.stop();
    assert!(
        said.contains("1 running attempt was stopped and recorded"),
        "{said}"
    );
    follower.wait().unwrap();

    let server = Server::start_in(dir);
    let described = server.run(&["describe", &id, "--output", "json"]);
    let job: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(job["status"], "FAILED", "{job}");
    let attempt = &job["attempts"][0];
    assert!(
        attempt["statusReason"]
            .as_str()
            .unwrap()
            .contains("wasmbatch serve was stopped"),
        "{job}"
    );
    assert!(attempt["stoppedAt"].as_i64().is_some(), "{job}");
}

/// The README's first command ends with this; it must work and show what it promises.
#[test]
fn the_demo_runs_the_array_the_reduce_and_the_retry_and_prints_a_summary() {
    let modules = std::path::Path::new(guests::wasip1::MAPREDUCE)
        .parent()
        .unwrap();
    let output = Command::new(WASMBATCH)
        .args(["demo", "--modules"])
        .arg(modules)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("The reduce job printed: 16 parts reduced: "),
        "{text}"
    );
    let row = |job: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(job))
            .unwrap_or_else(|| panic!("no {job} row in {text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("map")[1..3],
        ["SUCCEEDED", "16"],
        "16 children, one attempt each"
    );
    assert_eq!(row("reduce")[1..3], ["SUCCEEDED", "1"]);
    assert_eq!(
        row("flaky")[1..3],
        ["SUCCEEDED", "2"],
        "failed once, retried"
    );
    let missing = Command::new(WASMBATCH)
        .args(["demo", "--modules", "/nonexistent"])
        .output()
        .unwrap();
    fails_saying(&missing, "mapreduce.wasm is not there");
}

/// `wasmbatch keys create` in `dir` with `policy`; the key id and secret it printed.
fn create_key(dir: &std::path::Path, name: &str, policy: serde_json::Value) -> (String, String) {
    let file = dir.join(format!("{name}-policy.json"));
    std::fs::write(&file, policy.to_string()).unwrap();
    let output = Command::new(WASMBATCH)
        .args(["keys", "create", "--name", name, "--policy"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let value = |variable: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("export {variable}=")))
            .unwrap_or_else(|| panic!("no {variable} in {text}"))
            .to_string()
    };
    (value("AWS_ACCESS_KEY_ID"), value("AWS_SECRET_ACCESS_KEY"))
}

#[test]
fn with_keys_the_server_checks_signatures_and_policies_and_reloads_on_sighup() {
    // Without credentials, only loopback.
    let open = Command::new(WASMBATCH)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    fails_saying(&open, "wasmbatch keys create --name NAME --policy FILE");

    let dir = tempfile::tempdir().unwrap();
    let everything = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["batch:*", "logs:*"], "Resource": "*"}]});
    let (id, secret) = create_key(dir.path(), "ops", everything.clone());
    let server = Server::start_in(dir);
    let signed = |args: &[&str], id: &str, secret: &str| {
        Command::new(WASMBATCH)
            .args(args)
            .env("WASMBATCH_ENDPOINT", &server.endpoint)
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .output()
            .unwrap()
    };

    // Unsigned and wrongly signed requests are refused, in one line that says what to do.
    let unsigned = Command::new(WASMBATCH)
        .args(["queues"])
        .env("WASMBATCH_ENDPOINT", &server.endpoint)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    fails_saying(&unsigned, "Missing Authentication Token");
    fails_saying(&unsigned, "AWS_ACCESS_KEY_ID");
    fails_saying(
        &signed(&["queues"], &id, "wrong-secret-0123456789"),
        "signature we calculated does not match",
    );

    // Signed by the key: push streams the module (its hash checked), submit follows the log.
    let pushed = signed(&["push", guests::wasip1::HELLO], &id, &secret);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let followed = signed(
        &["submit", "--image", "hello", "--follow", "--", "signed"],
        &id,
        &secret,
    );
    assert!(followed.status.success(), "{}", stderr(&followed));
    assert!(stdout(&followed).contains(r#"args=["hello", "signed"]"#));
    let job = stdout(&followed).lines().next().unwrap().to_string();
    let described = signed(&["describe", &job, "--output", "json"], &id, &secret);
    let described: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(described["submittedBy"], "ops", "{described}");

    // A key made while it runs is unknown until SIGHUP, then allowed what its policy says.
    let submit_only = serde_json::json!({"Statement": [{"Effect": "Allow",
        "Action": ["batch:SubmitJob", "batch:Describe*"], "Resource": "*"}]});
    let (late, late_secret) = create_key(server.dir.as_ref().unwrap().path(), "late", submit_only);
    fails_saying(
        &signed(&["queues"], &late, &late_secret),
        "security token included in the request is invalid",
    );
    Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !signed(&["queues"], &late, &late_secret).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "the key was not reloaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    fails_saying(
        &signed(
            &["push", guests::wasip1::HELLO, "--name", "mine"],
            &late,
            &late_secret,
        ),
        "not authorized to perform: batch:PushModule",
    );
    // A job the key may not stop is named with the reason, and the exit says so.
    fails_saying(
        &signed(&["cancel", &job], &late, &late_secret),
        &format!("job {job}: User: late is not authorized to perform: batch:CancelJob"),
    );
    let (said, _) = server.stop();
    assert!(said.contains("credentials reloaded: 2 keys"), "{said}");
}

/// A SIGHUP (a closed terminal, a reload out of habit) ended a server in local-development mode
/// by its default action, without recording the attempts it was running. Now it reloads in every
/// mode, and a credentials file that appeared switches the server to checking signatures.
#[test]
fn a_hangup_in_local_mode_neither_kills_the_server_nor_leaves_a_new_key_unchecked() {
    let server = Server::start();
    server.hang_up();
    server.says("still in local-development mode");
    let unsigned = || {
        Command::new(WASMBATCH)
            .args(["queues"])
            .env("WASMBATCH_ENDPOINT", &server.endpoint)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .output()
            .unwrap()
    };
    let output = unsigned();
    assert!(
        output.status.success(),
        "still serving: {}",
        stderr(&output)
    );

    let everything = serde_json::json!({"Statement": [
        {"Effect": "Allow", "Action": "batch:*", "Resource": "*"}]});
    let (id, secret) = create_key(server.dir.as_ref().unwrap().path(), "ops", everything);
    server.hang_up();
    server.says("now verifying signatures (1 keys)");
    fails_saying(&unsigned(), "Missing Authentication Token");
    let signed = Command::new(WASMBATCH)
        .args(["queues"])
        .env("WASMBATCH_ENDPOINT", &server.endpoint)
        .env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .output()
        .unwrap();
    assert!(signed.status.success(), "{}", stderr(&signed));
    assert!(stdout(&signed).contains("default"), "{}", stdout(&signed));
    server.stop();
}

/// On a network, plain HTTP showed every job's command, environment and logs to anyone on the
/// path. `serve --tls-cert/--tls-key` speaks only HTTPS, and the client commands follow it,
/// trusting the CA given as `--ca-bundle` or `AWS_CA_BUNDLE` (as the AWS CLI does).
#[test]
fn the_client_commands_speak_tls_to_a_server_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pems = tempfile::tempdir().unwrap();
    let (ca, cert, key) = wasmbatch_tests::tls::certificates(pems.path());
    let server = Server::start_with(
        dir,
        &[
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ],
    );
    assert!(
        server.endpoint.starts_with("https://"),
        "{}",
        server.first_line
    );
    let trusting = |ca: &std::path::Path, args: &[&str]| {
        Command::new(WASMBATCH)
            .args(args)
            .env("WASMBATCH_ENDPOINT", &server.endpoint)
            .env("AWS_CA_BUNDLE", ca)
            .output()
            .unwrap()
    };
    let pushed = trusting(&ca, &["push", guests::wasip1::HELLO]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let followed = trusting(
        &ca,
        &["submit", "--image", "hello", "--follow", "--", "tls"],
    );
    assert!(followed.status.success(), "{}", stderr(&followed));
    assert!(stdout(&followed).contains(r#"args=["hello", "tls"]"#));

    // Trusting another CA, the client refuses the server, in one line.
    let others = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = wasmbatch_tests::tls::certificates(others.path());
    fails_saying(&trusting(&other_ca, &["queues"]), "certificate");
    server.stop();
}

/// A tmpfs of a few MiB on a new temporary directory, unmounted when dropped: a disk that can
/// really fill up. `None` where this process may not mount one (mounting needs root).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        mounted.then_some(Self { dir })
    }

    /// Writes a file until the disk is full.
    fn fill(&self) {
        use std::io::Write as _;
        let mut filler = std::fs::File::create(self.dir.path().join("filler")).unwrap();
        let block = vec![0u8; 64 << 10];
        while filler.write_all(&block).is_ok() {}
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// `GET /health` over a plain socket: the status line and the body.
fn health(endpoint: &str) -> String {
    http(endpoint, "GET /health", "")
}

/// A plain HTTP/1.1 request (`METHOD PATH`, a JSON body) to a server in local-development mode,
/// for what no command does; the whole answer.
fn http(endpoint: &str, request: &str, body: &str) -> String {
    use std::io::{Read as _, Write as _};
    let address = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "{request} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn a_server_whose_disk_fills_up_refuses_changes_and_exits_for_its_supervisor() {
    let Some(disk) = SmallDisk::mount(16) else {
        eprintln!(
            "skipped: this test mounts a 16 MiB tmpfs to fill it up, which needs root (CI runs as root)"
        );
        return;
    };
    let data_dir = tempfile::tempdir_in(disk.dir.path()).unwrap();
    let mut server = Server::start_with(
        data_dir,
        &["--storage-failure-grace".as_ref(), "2".as_ref()],
    );
    server.push(guests::wasip1::HELLO, "hello");
    assert!(health(&server.endpoint).starts_with("HTTP/1.1 200"));

    disk.fill();
    // Submits until one needs a page the disk has no room for.
    let refused = (0..50)
        .map(|_| server.run(&["submit", "--image", "hello", "--array-size", "2000"]))
        .find(|output| !output.status.success())
        .expect("every submit was stored on a full disk");
    assert!(
        stderr(&refused).contains("storage unavailable"),
        "{}",
        stderr(&refused)
    );
    let said = server.says("STORAGE FAILED");
    assert!(said.contains("No space left on device"), "{said}");
    let answer = health(&server.endpoint);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("No space left on device"), "{answer}");
    // Reads are still served meanwhile.
    let listed = server.run(&["jobs"]);
    assert!(listed.status.success(), "{}", stderr(&listed));

    // Past the grace, it exits with 75 (EX_TEMPFAIL) for its supervisor to restart it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not exit after the storage failure"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(75), "{status}");
}

/// `samples` (name, labels, value) from `text`, as the Prometheus project's own OpenMetrics
/// parser (the Python client's, which scripts/test installs) reads them; it refuses text that
/// is not valid OpenMetrics.
fn parse_openmetrics(text: &str) -> Vec<(String, serde_json::Value, f64)> {
    use std::io::Write as _;
    let python = std::env::var("WASMBATCH_PYTHON").expect(
        "WASMBATCH_PYTHON is not set: run the suite with scripts/test, which installs prometheus-client",
    );
    let mut child = Command::new(python)
        .args([
            "-c",
            "import sys, json\n\
             from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
             out = []\n\
             for family in text_string_to_metric_families(sys.stdin.read()):\n\
             \x20   for s in family.samples:\n\
             \x20       out.append([s.name, s.labels, s.value])\n\
             print(json.dumps(out))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the OpenMetrics parser refused the exposition: {}\n{text}",
        stderr(&output)
    );
    let samples: Vec<(String, serde_json::Value, f64)> =
        serde_json::from_slice(&output.stdout).unwrap();
    samples
}

/// The value of the one sample `name` whose labels include `labels`.
fn sample(
    samples: &[(String, serde_json::Value, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{name} {labels:?}: {found:?} in {samples:?}"
    );
    found[0]
}

#[test]
fn metrics_count_known_work_as_prometheus_reads_them() {
    let server = Server::start_with(
        tempfile::tempdir().unwrap(),
        &["--metrics-listen".as_ref(), "127.0.0.1:0".as_ref()],
    );
    let line = server.says("metrics on");
    let metrics = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches("/metrics")
        .to_string();
    server.push(guests::wasip1::HELLO, "hello");
    server.push(guests::wasip1::EXIT_CODE, "exit-code");
    server.push(guests::wasip1::SLEEP, "sleep");
    server.push(guests::wasip1::WRITE_LOT, "write-lot");
    let follow = |args: &[&str]| {
        let mut all = vec!["submit", "--follow"];
        all.extend_from_slice(args);
        server.run(&all)
    };
    for _ in 0..3 {
        assert!(follow(&["--image", "hello"]).status.success());
    }
    assert_eq!(
        follow(&["--image", "exit-code", "--", "3"]).status.code(),
        Some(3)
    );
    assert!(
        !follow(&["--image", "sleep", "--timeout", "1", "--", "60000"])
            .status
            .success()
    );
    // 10,000 lines past the 100,000 a stream keeps, each "out line 1xxxxx\n": 160,000 bytes.
    assert!(
        follow(&["--image", "write-lot", "--", "110000"])
            .status
            .success()
    );

    let scraped = http(&metrics, "GET /metrics", "");
    let (head, text) = scraped.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let samples = parse_openmetrics(text);
    let default = [("queue", "default")];
    let jobs = |status| {
        sample(
            &samples,
            "wasmbatch_jobs",
            &[("queue", "default"), ("status", status)],
        )
    };
    assert_eq!(jobs("SUCCEEDED"), 4.0);
    assert_eq!(jobs("FAILED"), 2.0);
    assert_eq!(jobs("RUNNABLE"), 0.0);
    assert_eq!(
        sample(&samples, "wasmbatch_job_submits_total", &default),
        6.0
    );
    assert_eq!(
        sample(&samples, "wasmbatch_placements_total", &default),
        6.0
    );
    let ends = |outcome| {
        sample(
            &samples,
            "wasmbatch_attempt_ends_total",
            &[("queue", "default"), ("outcome", outcome)],
        )
    };
    assert_eq!(ends("exit_zero"), 4.0);
    assert_eq!(ends("exit_nonzero"), 1.0);
    assert_eq!(ends("Timeout"), 1.0);
    assert_eq!(
        sample(
            &samples,
            "wasmbatch_attempt_duration_seconds_count",
            &default
        ),
        6.0
    );
    // The timed-out sleep ran for its whole second.
    assert!(sample(&samples, "wasmbatch_attempt_duration_seconds_sum", &default) >= 1.0);
    assert_eq!(
        sample(&samples, "wasmbatch_attempt_fuel_count", &default),
        6.0
    );
    assert!(
        sample(
            &samples,
            "wasmbatch_attempt_peak_memory_bytes_sum",
            &default
        ) >= 6.0 * 65_536.0
    );
    assert_eq!(
        sample(
            &samples,
            "wasmbatch_log_dropped_bytes_total",
            &[("queue", "default"), ("stream", "stdout")]
        ),
        160_000.0
    );
    assert_eq!(
        sample(&samples, "wasmbatch_module_compiles_total", &[]),
        4.0
    );
    assert!(sample(&samples, "wasmbatch_module_compile_seconds_total", &[]) > 0.0);
    assert!(sample(&samples, "wasmbatch_store_commit_seconds_count", &[]) > 0.0);
    assert!(sample(&samples, "wasmbatch_store_commit_records_sum", &[]) >= 6.0);
    assert_eq!(
        sample(
            &samples,
            "wasmbatch_http_requests_total",
            &[("operation", "/v1/submitjob"), ("status", "200")]
        ),
        6.0
    );
    assert_eq!(
        sample(
            &samples,
            "wasmbatch_http_request_duration_seconds_count",
            &[("operation", "/v1/submitjob")]
        ),
        6.0
    );
    assert_eq!(
        sample(&samples, "wasmbatch_executor_slots_in_use", &[]),
        0.0
    );
    assert_eq!(sample(&samples, "wasmbatch_executor_slots", &[]), 256.0);
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    let env = [("environment", "default")];
    assert_eq!(
        sample(&samples, "wasmbatch_compute_environment_vcpus", &env),
        cores
    );
    assert_eq!(
        sample(&samples, "wasmbatch_compute_environment_vcpus_in_use", &env),
        0.0
    );
}

#[test]
fn a_request_for_an_invented_path_is_counted_without_its_path_becoming_a_label() {
    let server = Server::start_with(
        tempfile::tempdir().unwrap(),
        &["--metrics-listen".as_ref(), "127.0.0.1:0".as_ref()],
    );
    let line = server.says("metrics on");
    let metrics = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches("/metrics")
        .to_string();
    // The attack: one series per path a caller makes up, until the scrape (and the server's
    // memory) grows without bound.
    for i in 0..50 {
        http(&server.endpoint, &format!("GET /v1/made-up-{i}"), "");
    }
    let scraped = http(&metrics, "GET /metrics", "");
    assert!(!scraped.contains("made-up"), "{scraped}");
    let samples = parse_openmetrics(scraped.split_once("\r\n\r\n").unwrap().1);
    let unmatched: f64 = samples
        .iter()
        .filter(|(n, l, _)| n == "wasmbatch_http_requests_total" && l["operation"] == "unmatched")
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(unmatched, 50.0);
}

/// Reads the first `n` lines `wasmbatch events <args>` prints (it runs until stopped), then
/// stops it.
fn events(server: &Server, args: &[&str], n: usize) -> Vec<String> {
    let mut child = Command::new(WASMBATCH)
        .arg("events")
        .args(args)
        .env("WASMBATCH_ENDPOINT", &server.endpoint)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let mut seen = Vec::new();
    while seen.len() < n {
        match lines.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("events printed only {seen:?}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

#[test]
fn events_prints_each_jobs_moves_filtered_by_status_or_as_json() {
    let server = Server::start();
    server.push(guests::wasip1::HELLO, "hello");
    let ok = server.run(&["submit", "--image", "hello", "--follow"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let id = stdout(&ok).lines().next().unwrap().to_string();

    let lines = events(&server, &["--after", "0"], 4);
    let statuses: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"],
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l.contains(&id)), "{lines:?}");
    assert!(lines[0].starts_with("1  "), "the sequence first: {lines:?}");

    let ended = events(
        &server,
        &["--after", "0", "--status", "SUCCEEDED", "--json"],
        1,
    );
    let event: serde_json::Value = serde_json::from_str(&ended[0]).unwrap();
    assert_eq!(event["detail-type"], "Batch Job State Change");
    assert_eq!(event["detail"]["jobId"], id.as_str());
    assert_eq!(event["detail"]["status"], "SUCCEEDED");

    let refused = server.run(&["events", "--queue", "nope"]);
    fails_saying(&refused, "queue: job queue nope does not exist");

    // A stream left open does not hold up a stop: it ends, and so does the command.
    let mut open = Command::new(WASMBATCH)
        .arg("events")
        .env("WASMBATCH_ENDPOINT", &server.endpoint)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(open.try_wait().unwrap().is_none(), "it waits for events");
    server.stop();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while open.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "events did not end with the server"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
