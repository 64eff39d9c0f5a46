//! Prints wasmbatch beside a real peer, Slurm, the same work both ways in one run on this host:
//! a one-node Slurm cluster (Debian's slurm-wlm, configured under a temporary directory with
//! SchedMD's high-throughput settings, its munged, slurmctld and slurmd started and stopped by
//! this program) and a `wasmbatch serve` on a free loopback port, each driven through its own
//! command-line tools (one process per command, as a user's script would).
//! - A 1,000-task array of hello: `sbatch --array=0-999` of the natively built hello (then
//!   `squeue` polled until the array is gone) against `wasmbatch submit --image hello
//!   --array-size 1000 --follow`; submit → all done, tasks/s.
//! - 200 separately submitted hello jobs: 200 sequential `sbatch` calls, then `squeue` polled
//!   until none is left, against 200 `wasmbatch submit` calls, then `wasmbatch jobs --status
//!   SUCCEEDED` polled until all 200 are there; jobs/s.
//! - One job's submit → done, one at a time: `srun` (synchronous), `sbatch` with `squeue`
//!   polled every 10 ms, and `sbatch --wait` against `wasmbatch submit --image hello --follow`;
//!   p50 and p99.
//!
//! Slurm runs native processes and wasmbatch sandboxed wasm: the section says so beside the
//! numbers, with Slurm's version and settings. Not part of `scripts/bench --quick` nor of
//! `scripts/test`: `scripts/bench --peers` installs Slurm (`ensure_slurm`) and runs it last.
//! The daemons run as the current user (root in CI's container: slurmd must be root to run
//! other users' jobs, not this program's own).
//!
//! `cargo build --profile bench -p wasmbatch --bin wasmbatch && cargo bench -p wasmbatch-tests
//! --bench peers` (`-- --quick`: 100 tasks, 20 jobs, 5 latencies).

use std::io::Read as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmbatch_tests::stats::{Sample, record, table};
use wasmbatch_tests::{guests, wasmbatch_binary};

/// How often both sides' completion is polled in the throughput scenarios (`squeue`, `wasmbatch
/// jobs`); the latency scenario polls `squeue` every [`LATENCY_POLL`].
const POLL: Duration = Duration::from_millis(50);
const LATENCY_POLL: Duration = Duration::from_millis(10);
/// What the hello guest prints first, natively and as wasm.
const HELLO: &str = "hello from wasmbatch";
/// The bound on any one scenario.
const PATIENCE: Duration = Duration::from_secs(1800);

/// A daemon this program started: stopped (SIGTERM, then SIGKILL after a grace) when dropped,
/// so a panic anywhere still leaves nothing behind.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `command` with its stdout and stderr in `log`.
    fn start(name: &'static str, command: &mut Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("creating a daemon's log");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("a second handle on the log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self { name, child, log }
    }

    /// Panics with its log if it has exited.
    fn check(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); its log:\n{}",
                self.name,
                tail(&self.log)
            );
        }
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "peers bench: {} ignored SIGTERM for 15 s: SIGKILL",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last 40 lines of a file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A program on the PATH or in the sbin directories (Debian puts the daemons in /usr/sbin,
/// which a non-root PATH lacks).
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found: install slurm-wlm and munge (scripts/bench --peers does, \
                 through ensure_slurm in scripts/env.sh)"
            )
        })
}

/// Runs `command` to its end; panics with its stderr unless it succeeded; returns its stdout.
fn run(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Free loopback ports, distinct (all held until all are found).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// Waits up to `limit` for `ready`, checking that `daemon` still runs meanwhile.
fn wait_for(daemon: &mut Daemon, what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        daemon.check();
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}; {}'s log:\n{}",
            daemon.name,
            tail(&daemon.log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A one-node Slurm cluster on this host, under `dir`; its daemons stop when it is dropped.
struct Slurm {
    /// munged, slurmctld, slurmd: stopped in the reverse order.
    daemons: Vec<Daemon>,
    dir: PathBuf,
    conf: PathBuf,
    version: String,
    /// The slurm.conf lines that say how it is tuned (not its paths and ports).
    settings: Vec<String>,
    munged_flags: String,
}

impl Slurm {
    fn start(dir: &Path) -> Self {
        for sub in ["state", "spool", "log", "munge", "out"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let munge = dir.join("munge");
        // munged wants its socket's directory searchable by everyone, its key private.
        std::fs::set_permissions(&munge, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = munge.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .expect("reading /dev/urandom");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
            .expect("writing the munge key");
        let socket = munge.join("socket");
        let munged_flags = "--num-threads 10 (SchedMD's advice for high throughput)".to_string();
        let mut daemons = Vec::new();
        let mut munged = Daemon::start(
            "munged",
            Command::new(program("munged"))
                .args(["--foreground", "--force", "--num-threads", "10"])
                .arg("--key-file")
                .arg(&key)
                .arg("--socket")
                .arg(&socket)
                .arg("--pid-file")
                .arg(munge.join("munged.pid"))
                .arg("--seed-file")
                .arg(munge.join("munged.seed"))
                .arg("--log-file")
                .arg(munge.join("munged.log")),
            dir.join("log/munged.out"),
        );
        wait_for(
            &mut munged,
            "munged's socket",
            Duration::from_secs(20),
            || socket.exists(),
        );
        daemons.push(munged);

        // The node as slurmd sees this host: its real sockets, cores, threads and memory.
        let detected = run(Command::new(program("slurmd")).arg("-C"));
        let node_line = detected
            .lines()
            .find(|l| l.starts_with("NodeName="))
            .unwrap_or_else(|| panic!("slurmd -C printed no NodeName line:\n{detected}"))
            .trim()
            .to_string();
        let node = node_line
            .split_whitespace()
            .next()
            .and_then(|n| n.strip_prefix("NodeName="))
            .unwrap()
            .to_string();
        let user = run(Command::new("id").arg("-un")).trim().to_string();
        let [controller_port, node_port] = free_ports::<2>();
        let path = |p: &str| dir.join(p).display().to_string();
        let tuning: Vec<(&str, String)> = vec![
            ("SchedulerType", "sched/builtin".into()),
            ("PriorityType", "priority/basic".into()),
            // SchedMD's sample set for hundreds of jobs/s has batch_sched_delay=20 and
            // sched_min_interval=2000000; on one node of a few cores they hold every start
            // back by those 20 s (2 tasks started per 20 s here), so they are left out; the
            // backfill ones do not apply to sched/builtin.
            (
                "SchedulerParameters",
                "batch_sched_delay=0,partition_job_depth=500,sched_max_job_start=200".into(),
            ),
            // Without an epilog, slurmd answers a finished job's terminate request with
            // ALREADY_COMPLETE and slurmctld only queues the next scheduling pass for its
            // once-a-second background loop: 2 tasks/s on 2 cores. With one, slurmd sends
            // EPILOG_COMPLETE, whose handler schedules at once (src/slurmctld/proc_req.c).
            ("Epilog", "/bin/true".into()),
            ("SelectType", "select/cons_tres".into()),
            ("SelectTypeParameters", "CR_CPU".into()),
            // No cgroups in a container: process tracking by /proc, no task binding.
            ("ProctrackType", "proctrack/linuxproc".into()),
            ("TaskPlugin", "task/none".into()),
            ("AccountingStorageType", "accounting_storage/none".into()),
            ("JobAcctGatherType", "jobacct_gather/none".into()),
            ("JobCompType", "jobcomp/none".into()),
            ("MaxJobCount", "50000".into()),
            ("MaxArraySize", "10001".into()),
            // A few seconds, as SchedMD advises; longer than `sbatch --wait`'s first look (2 s)
            // so it still finds the job it waits for.
            ("MinJobAge", "10".into()),
            ("MessageTimeout", "30".into()),
            ("SlurmctldDebug", "error".into()),
            ("SlurmdDebug", "error".into()),
            ("ReturnToService", "2".into()),
            ("MpiDefault", "none".into()),
            ("MailProg", "/bin/true".into()),
        ];
        let mut conf_text = format!(
            "ClusterName=peers\nSlurmctldHost={node}(127.0.0.1)\nSlurmctldPort={controller_port}\n\
             SlurmdPort={node_port}\nSlurmUser={user}\nSlurmdUser={user}\nAuthType=auth/munge\n\
             CredType=cred/munge\nAuthInfo=socket={}\nStateSaveLocation={}\nSlurmdSpoolDir={}\n\
             SlurmctldPidFile={}\nSlurmdPidFile={}\nSlurmctldLogFile={}\nSlurmdLogFile={}\n",
            socket.display(),
            path("state"),
            path("spool"),
            path("slurmctld.pid"),
            path("slurmd.pid"),
            path("log/slurmctld.log"),
            path("log/slurmd.log"),
        );
        for (key, value) in &tuning {
            conf_text.push_str(&format!("{key}={value}\n"));
        }
        let node_conf = format!("{node_line} NodeAddr=127.0.0.1 State=UNKNOWN");
        let partition =
            format!("PartitionName=peers Nodes={node} Default=YES MaxTime=INFINITE State=UP");
        conf_text.push_str(&format!("{node_conf}\n{partition}\n"));
        let conf = dir.join("slurm.conf");
        std::fs::write(&conf, &conf_text).unwrap();
        let mut settings: Vec<String> = tuning.iter().map(|(k, v)| format!("{k}={v}")).collect();
        settings.push(node_line.clone());
        settings.push(partition);

        let mut slurm = Self {
            daemons,
            dir: dir.to_path_buf(),
            conf,
            version: String::new(),
            settings,
            munged_flags,
        };
        // Even `--version` wants a configuration.
        slurm.version = run(slurm.command("sbatch").arg("--version"))
            .trim()
            .to_string();
        let mut controller = Daemon::start(
            "slurmctld",
            Command::new(program("slurmctld"))
                .arg("-D")
                .arg("-f")
                .arg(&slurm.conf)
                .env("SLURM_CONF", &slurm.conf),
            dir.join("log/slurmctld.out"),
        );
        wait_for(
            &mut controller,
            "slurmctld answering `scontrol ping`",
            Duration::from_secs(60),
            || {
                slurm
                    .command("scontrol")
                    .arg("ping")
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("UP"))
            },
        );
        slurm.daemons.push(controller);
        let mut slurmd = Daemon::start(
            "slurmd",
            Command::new(program("slurmd"))
                .arg("-D")
                .arg("-f")
                .arg(&slurm.conf)
                .arg("-N")
                .arg(&node)
                .env("SLURM_CONF", &slurm.conf),
            dir.join("log/slurmd.out"),
        );
        wait_for(
            &mut slurmd,
            "the node idle in `sinfo`",
            Duration::from_secs(60),
            || {
                slurm
                    .command("sinfo")
                    .args(["-h", "-o", "%T"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
            },
        );
        slurm.daemons.push(slurmd);
        slurm
    }

    /// A Slurm client command against this cluster, run in its directory.
    fn command(&self, name: &str) -> Command {
        let mut command = Command::new(program(name));
        command.env("SLURM_CONF", &self.conf).current_dir(&self.dir);
        command
    }

    /// Panics, with the daemons' logs, if one of them has exited.
    fn check(&mut self) {
        for daemon in &mut self.daemons {
            daemon.check();
        }
    }

    /// Whether `squeue` shows no job at all (pending, running, completing).
    fn idle(&self) -> bool {
        run(self.command("squeue").args(["-h", "-o", "%i"]))
            .trim()
            .is_empty()
    }

    /// Polls `squeue` every [`POLL`] until no job is left.
    fn wait_idle(&mut self, start: Instant, what: &str) {
        while !self.idle() {
            assert!(
                start.elapsed() < PATIENCE,
                "{what}: not done in {PATIENCE:?}"
            );
            self.check();
            std::thread::sleep(POLL);
        }
    }

    /// Whether job `id` is still pending, running or completing.
    fn active(&self, id: &str) -> bool {
        // A job purged after MinJobAge is an "Invalid job id" (and a failed status): gone.
        let output = self
            .command("squeue")
            .args(["-h", "-j", id, "-o", "%T"])
            .output()
            .expect("running squeue");
        let state = String::from_utf8_lossy(&output.stdout);
        let state = state.trim();
        !state.is_empty()
            && ![
                "COMPLETED",
                "FAILED",
                "CANCELLED",
                "TIMEOUT",
                "NODE_FAIL",
                "OUT_OF_MEMORY",
                "BOOT_FAIL",
                "DEADLINE",
                "PREEMPTED",
            ]
            .contains(&state)
    }

    fn stop(&mut self) {
        while let Some(mut daemon) = self.daemons.pop() {
            daemon.stop();
        }
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `wasmbatch serve` on a free loopback port over a data dir under `dir`.
struct Wasmbatch {
    daemon: Daemon,
    binary: PathBuf,
    endpoint: String,
}

impl Wasmbatch {
    fn start(dir: &Path) -> Self {
        let binary = wasmbatch_binary();
        let [port] = free_ports::<1>();
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut daemon = Daemon::start(
            "wasmbatch serve",
            Command::new(&binary)
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .args(["--metrics-listen", "off", "--data-dir"])
                .arg(dir.join("wasmbatch"))
                .env("WASMBATCH_LOG", "warn")
                .env("NO_COLOR", "1"),
            dir.join("wasmbatch-serve.log"),
        );
        let probe = |endpoint: &str| {
            Command::new(&binary)
                .arg("queues")
                .env("WASMBATCH_ENDPOINT", endpoint)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        wait_for(
            &mut daemon,
            "wasmbatch serve answering",
            Duration::from_secs(60),
            || probe(&endpoint),
        );
        let server = Self {
            daemon,
            binary,
            endpoint,
        };
        run(server.command().arg("push").arg(guests::wasip1::HELLO));
        server
    }

    /// A `wasmbatch` CLI command against this server.
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("WASMBATCH_ENDPOINT", &self.endpoint)
            .env("NO_COLOR", "1");
        command
    }

    /// Panics, with its log, if the server has exited.
    fn check(&mut self) {
        self.daemon.check();
    }

    /// Jobs of queue `default` in `status`, as `wasmbatch jobs` lists them.
    fn count(&self, status: &str) -> usize {
        let listed = run(self.command().args([
            "jobs", "--queue", "default", "--status", status, "--output", "json",
        ]));
        let listed: Value = serde_json::from_str(&listed).expect("wasmbatch jobs --output json");
        listed["jobSummaryList"].as_array().map_or(0, Vec::len)
    }
}

/// Checks that `dir` holds `count` job outputs, each hello's.
fn check_outputs(dir: &Path, count: usize) {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), count, "job outputs in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(HELLO),
            "{}: {text:?} is not hello's output",
            file.display()
        );
    }
}

/// Lines of `pgrep -a` for what this program may have left: processes naming `dir` (munged,
/// slurmctld, slurmd, wasmbatch serve), job steps, slurmctld's script helper. Zombies are not
/// counted: a slurmstepd daemonises, so its exit waits for init to reap it.
fn leftovers(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    let zombie = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| Some(stat.rsplit_once(')')?.1.trim_start().starts_with('Z')))
            .unwrap_or(true)
    };
    [
        vec!["-a", "-f", dir.as_str()],
        vec!["-a", "-x", "slurmstepd"],
        vec!["-a", "-f", "slurmscriptd"],
    ]
    .iter()
    .filter_map(|args| Command::new("pgrep").args(args).output().ok())
    .flat_map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    })
    .filter(|line| !zombie(line.split_whitespace().next().unwrap_or("")))
    .collect()
}

/// Waits a few seconds for [`leftovers`] to go; kills and names any that stay.
fn check_nothing_left(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = leftovers(dir);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = leftovers(dir);
    }
    if left.is_empty() {
        return;
    }
    for line in &left {
        if let Some(pid) = line.split_whitespace().next().and_then(|p| p.parse().ok()) {
            // SAFETY: kill(2) on a process this program's daemons started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    panic!(
        "processes left 10 s after stopping the daemons (now killed):\n{}",
        left.join("\n")
    );
}

/// `1000` → `1,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (tasks, separate, rounds, warm) = if quick {
        (100, 20, 5, 1)
    } else {
        (1_000, 200, 20, 2)
    };
    let started = Instant::now();
    println!(
        "# Peers: Slurm beside wasmbatch{}",
        if quick { " (quick)" } else { "" }
    );
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = temp.path().to_path_buf();
    // Daemons first in, last out: both are dropped (stopped) before the directory, also on a
    // panic.
    let mut slurm = Slurm::start(&dir);
    let mut server = Wasmbatch::start(&dir);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let script = dir.join("hello.sbatch");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec {}\n", guests::native::HELLO),
    )
    .unwrap();
    let out = |name: &str| {
        let path = dir.join("out").join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    };

    // Warm-up: one job each way (page cache, wasmtime's compiled module, the definition the
    // CLI registers for `--image hello`).
    run(slurm
        .command("srun")
        .args(["-Q", "-n1", guests::native::HELLO]));
    run(server
        .command()
        .args(["submit", "--image", "hello", "--follow"]));

    // 1. The array.
    let start = Instant::now();
    run(slurm
        .command("sbatch")
        .args(["--parsable", &format!("--array=0-{}", tasks - 1), "-o"])
        .arg(out("array").join("%A_%a.out"))
        .arg(&script));
    slurm.wait_idle(start, "the Slurm array");
    let slurm_array = start.elapsed();
    check_outputs(&out("array"), tasks);
    let start = Instant::now();
    run(server.command().args([
        "submit",
        "--image",
        "hello",
        "--array-size",
        &tasks.to_string(),
        "--follow",
    ]));
    let wasmbatch_array = start.elapsed();

    // 2. Separate jobs.
    let start = Instant::now();
    for _ in 0..separate {
        run(slurm
            .command("sbatch")
            .args(["--parsable", "-o"])
            .arg(out("separate").join("%j.out"))
            .arg(&script));
    }
    let slurm_submitted = start.elapsed();
    slurm.wait_idle(start, "the separate Slurm jobs");
    let slurm_separate = start.elapsed();
    check_outputs(&out("separate"), separate);
    let before = server.count("SUCCEEDED");
    let failed = server.count("FAILED");
    let start = Instant::now();
    for _ in 0..separate {
        run(server.command().args(["submit", "--image", "hello"]));
    }
    let wasmbatch_submitted = start.elapsed();
    while server.count("SUCCEEDED") < before + separate {
        assert!(
            start.elapsed() < PATIENCE,
            "separate wasmbatch jobs not done"
        );
        server.check();
        std::thread::sleep(POLL);
    }
    let wasmbatch_separate = start.elapsed();
    assert_eq!(server.count("FAILED"), failed, "a wasmbatch hello failed");

    // 3. One job at a time, the four ways interleaved so they share the machine's mood.
    let (mut srun, mut polled, mut waited, mut followed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let latency_out = out("latency");
    for round in 0..warm + rounds {
        let keep = round >= warm;
        let start = Instant::now();
        let said = run(slurm
            .command("srun")
            .args(["-Q", "-n1", guests::native::HELLO]));
        let elapsed = start.elapsed();
        assert!(said.contains(HELLO), "srun printed {said:?}");
        if keep {
            srun.push(elapsed);
        }

        let start = Instant::now();
        let id = run(slurm
            .command("sbatch")
            .args(["--parsable", "-o"])
            .arg(latency_out.join("%j.out"))
            .arg(&script))
        .trim()
        .to_string();
        assert!(!id.is_empty(), "sbatch --parsable printed no job id");
        while slurm.active(&id) {
            assert!(start.elapsed() < PATIENCE, "Slurm job {id} not done");
            std::thread::sleep(LATENCY_POLL);
        }
        let elapsed = start.elapsed();
        // Gone from squeue means done: its output is all there.
        let said = std::fs::read_to_string(latency_out.join(format!("{id}.out")));
        assert!(
            said.as_deref().is_ok_and(|s| s.contains(HELLO)),
            "Slurm job {id} gone from squeue, its output: {said:?}"
        );
        if keep {
            polled.push(elapsed);
        }

        let start = Instant::now();
        let output = slurm
            .command("sbatch")
            .args(["--wait", "-Q", "-o"])
            .arg(latency_out.join("%j.out"))
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .expect("running sbatch --wait");
        let elapsed = start.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && !stderr.contains("no longer found"),
            "sbatch --wait: {} {stderr}",
            output.status
        );
        if keep {
            waited.push(elapsed);
        }

        let start = Instant::now();
        run(server
            .command()
            .args(["submit", "--image", "hello", "--follow"]));
        if keep {
            followed.push(start.elapsed());
        }
    }
    check_outputs(&latency_out, 2 * (warm + rounds));
    slurm.check();
    server.check();

    // Everything stopped, and checked stopped, before the numbers are printed.
    let version = slurm.version.clone();
    let settings = slurm.settings.clone();
    let munged_flags = slurm.munged_flags.clone();
    drop(slurm);
    drop(server);
    check_nothing_left(&dir);
    drop(temp);

    println!(
        "\nSlurm {} (Debian's slurm-wlm) as a one-node cluster of this host ({cores} cores), \
         munged, slurmctld and slurmd started by this program under a temporary directory on \
         free loopback ports; wasmbatch as `wasmbatch serve` on a free loopback port (its \
         default environment: as many vCPUs as cores). Each side is driven through its own \
         command-line tools, one process per command, as a user's script would.\n\n\
         **Caveat: Slurm runs native processes, wasmbatch sandboxed wasm.** Slurm's tasks run \
         the hello guest compiled for this host (`exec`ed from a two-line `#!/bin/sh` batch \
         script, a slurmstepd per task, output to a file per task); wasmbatch's run the same \
         program compiled to wasm32-wasip1 inside wasmtime (a fresh instance per job, output \
         to its durable log). Slurm is built for clusters of many nodes and long jobs; one node \
         of {cores} cores and jobs of a millisecond are wasmbatch's ground, not its.\n",
        version
            .trim_start_matches("slurm-wlm ")
            .trim_start_matches("slurm "),
    );

    println!(
        "\n## A {}-task array of hello, submit → all done\n",
        thousands(tasks)
    );
    println!("| system | tasks | submit → all done | tasks/s |\n|---|---|---|---|");
    println!(
        "| Slurm: `sbatch --array=0-{}`, native hello; `squeue` polled every {} ms | {tasks} | {} | {:.1} |",
        tasks - 1,
        POLL.as_millis(),
        seconds(slurm_array),
        rate(tasks, slurm_array)
    );
    println!(
        "| wasmbatch: `submit --image hello --array-size {tasks} --follow` (which polls every 200 ms), wasm hello | {tasks} | {} | {:.1} |",
        seconds(wasmbatch_array),
        rate(tasks, wasmbatch_array)
    );
    let array_ratio = rate(tasks, wasmbatch_array) / rate(tasks, slurm_array);
    println!(
        "\nwasmbatch over Slurm, tasks/s: **{array_ratio:.1}×**. `--follow` sees the end at \
         its next look, up to 200 ms late: at this size that bounds wasmbatch's time from \
         below, so the ratio is a lower bound."
    );
    record(
        "peers.array",
        json!({"tasks": tasks, "slurm_seconds": slurm_array.as_secs_f64(),
               "wasmbatch_seconds": wasmbatch_array.as_secs_f64(),
               "slurm_jobs_per_s": rate(tasks, slurm_array),
               "wasmbatch_jobs_per_s": rate(tasks, wasmbatch_array), "ratio": array_ratio,
               "slurm_version": version}),
    );

    println!("\n## {separate} separately submitted hello jobs, first submit → all done\n");
    println!(
        "| system | jobs | the {separate} submits took | first submit → all done | jobs/s |\n|---|---|---|---|---|"
    );
    println!(
        "| Slurm: {separate} × `sbatch`, then `squeue` polled every {} ms | {separate} | {} | {} | {:.1} |",
        POLL.as_millis(),
        seconds(slurm_submitted),
        seconds(slurm_separate),
        rate(separate, slurm_separate)
    );
    println!(
        "| wasmbatch: {separate} × `submit --image hello`, then `jobs --status SUCCEEDED` polled every {} ms | {separate} | {} | {} | {:.1} |",
        POLL.as_millis(),
        seconds(wasmbatch_submitted),
        seconds(wasmbatch_separate),
        rate(separate, wasmbatch_separate)
    );
    let separate_ratio = rate(separate, wasmbatch_separate) / rate(separate, slurm_separate);
    println!("\nwasmbatch over Slurm, jobs/s: **{separate_ratio:.1}×**.");
    record(
        "peers.separate",
        json!({"jobs": separate, "slurm_seconds": slurm_separate.as_secs_f64(),
               "slurm_submit_seconds": slurm_submitted.as_secs_f64(),
               "wasmbatch_seconds": wasmbatch_separate.as_secs_f64(),
               "wasmbatch_submit_seconds": wasmbatch_submitted.as_secs_f64(),
               "slurm_jobs_per_s": rate(separate, slurm_separate),
               "wasmbatch_jobs_per_s": rate(separate, wasmbatch_separate),
               "ratio": separate_ratio}),
    );

    let samples = [
        Sample {
            name: "Slurm: srun (synchronous), native hello",
            times: srun,
        },
        Sample {
            name: "Slurm: sbatch, then squeue every 10 ms",
            times: polled,
        },
        Sample {
            name: "Slurm: sbatch --wait",
            times: waited,
        },
        Sample {
            name: "wasmbatch: submit --image hello --follow",
            times: followed,
        },
    ];
    table(
        &format!("One job, submit → done through each CLI ({rounds} each, one at a time)"),
        &samples,
        &[("srun", 0), ("sbatch --wait", 2)],
    );
    for (sample, key) in samples.iter().zip([
        "peers.latency_srun",
        "peers.latency_sbatch_poll",
        "peers.latency_sbatch_wait",
        "peers.latency_wasmbatch",
    ]) {
        sample.record(key);
    }
    println!(
        "\n`srun` waits for its step's end over its own connection; `sbatch --wait` looks at \
         the job after 2 s, then less often (sbatch.c); a batch job starts on slurmctld's next \
         scheduling pass, so the polled sbatch shows the start cadence. wasmbatch's `--follow` \
         streams the job's log until it ends, then reads the job once."
    );

    println!("\n## Slurm's settings\n");
    println!(
        "SchedMD's high-throughput guide (slurm.schedmd.com/high_throughput.html) applied to \
         one node; beside them only paths, loopback ports, munge's socket and \
         `SlurmUser`/`SlurmdUser` (the current user). munged: its own key and socket under the \
         temporary directory, {munged_flags}.\n\n```"
    );
    for line in &settings {
        println!("{line}");
    }
    println!(
        "```\n\nThe guide's sample `SchedulerParameters` (batch_sched_delay=20, \
         sched_min_interval=2000000, …) are for clusters always busy with submits; on one \
         node they start 2 tasks every 20 s, so `batch_sched_delay=0` and no minimum \
         interval. `Epilog=/bin/true` is what makes slurmctld schedule on each job's end \
         rather than once a second (without it: 2 tasks/s on 2 cores). The daemons were \
         stopped and `pgrep` found none of them left. The whole program took {}.",
        seconds(started.elapsed())
    );
}
