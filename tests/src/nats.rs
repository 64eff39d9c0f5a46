//! Real nats-server processes for the cluster-mode tests: one JetStream server or a routed
//! cluster on free loopback ports, each killed and restarted at will over the store it keeps, and
//! [`Netns`], a network namespace a worker can be put in and cut off from the servers.
//!
//! The server is the official binary; `scripts/test` installs it (`ensure_nats_server` in
//! `scripts/env.sh`) and names it in `WASMBATCH_NATS_SERVER` (see [`nats_server_binary`]).
//! Nothing here but std and tempfile: the readiness and leader checks read the monitoring port
//! over a hand-written HTTP/1.0 GET and a small JSON reader, so no client library decides what
//! "ready" means.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer its health check (and a cluster to elect a meta leader)
/// before the test gives up with the server's log.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);
/// How long a cluster's routes must stay the same before it counts as settled: longer than the
/// one second after which nats-server retries a route dial that failed.
const ROUTES_SETTLED: Duration = Duration::from_millis(1500);

/// The nats-server binary: `$WASMBATCH_NATS_SERVER` (set by `scripts/test`), else the one
/// `scripts/test` installed in `~/.cache/wasmbatch/nats-venv` (so a bare `cargo test` after one
/// `scripts/test` finds it), else `nats-server` on `PATH`. Panics naming `scripts/test`, which
/// installs the pinned version, if there is none or it is older than 2.10 (Debian's 2.9 rejects
/// the `sync_interval` in the config).
pub fn nats_server_binary() -> PathBuf {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND.get_or_init(find_nats_server).clone()
}

fn find_nats_server() -> PathBuf {
    let path = if let Some(path) = std::env::var_os("WASMBATCH_NATS_SERVER") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            panic!(
                "WASMBATCH_NATS_SERVER is {}, which is not a file; run the tests through \
                 scripts/test, which installs nats-server and sets it",
                path.display()
            );
        }
        path
    } else {
        let cached = std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache/wasmbatch/nats-venv/bin/nats-server"))
            .filter(|p| p.is_file());
        let on_path = || {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("nats-server"))
                    .find(|candidate| candidate.is_file())
            })
        };
        cached.or_else(on_path).unwrap_or_else(|| {
            panic!(
                "no nats-server: WASMBATCH_NATS_SERVER is not set and there is no nats-server \
                 on PATH; run the tests through scripts/test, which installs it"
            )
        })
    };
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("running {} --version: {e}", path.display()));
    // "nats-server: v2.15.1"
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim_start_matches('v');
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (2, 10) {
        panic!(
            "{} reports {:?}; these tests need nats-server 2.10 or later; run them through \
             scripts/test, which installs the version pinned in scripts/env.sh and names it in \
             WASMBATCH_NATS_SERVER",
            path.display(),
            text.trim()
        );
    }
    path
}

/// `n` distinct free TCP ports. Each is bound on 0.0.0.0 (so it is free on every address,
/// loopback and a [`Netns`] host end alike), and every listener is held until all are chosen.
/// They are released before the servers start, so another process could take one in between;
/// in a test run that has not been seen to happen.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind(("0.0.0.0", 0)).expect("binding 0.0.0.0:0 to find a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("reading a bound port").port())
        .collect()
}

/// One nats-server process with JetStream, on ports chosen when it was made.
///
/// Its config, JetStream store and logs live in a temporary directory it owns, which outlives
/// the process: [`NatsServer::restart`] starts the same config over the same store, as a
/// machine coming back after a crash would. Dropping it kills the process and removes the
/// directory.
pub struct NatsServer {
    name: String,
    listen_ip: String,
    port: u16,
    monitor_port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// What a server's config says, for [`NatsServer::create`].
struct Spec<'a> {
    name: String,
    listen_ip: &'a str,
    port: u16,
    monitor_port: u16,
    /// This server's route port and the route ports it dials, for a cluster member.
    cluster: Option<(u16, Vec<u16>)>,
    /// More configuration, appended as is (e.g. an `authorization` block).
    extra: &'a str,
}

impl NatsServer {
    /// A lone JetStream server on loopback, started and healthy.
    pub fn start_single() -> NatsServer {
        Self::start_single_on("127.0.0.1")
    }

    /// A lone JetStream server whose client port listens on `listen_ip`: `0.0.0.0` for every
    /// address, or [`Netns::host_ip`] so a process in that namespace can reach it (clients there
    /// use `url_at(netns.host_ip())`). The monitoring port stays on loopback.
    pub fn start_single_on(listen_ip: &str) -> NatsServer {
        Self::start_single_with(listen_ip, "")
    }

    /// A lone JetStream server on `listen_ip` with `extra` appended to its config (users and
    /// their permissions, say).
    pub fn start_single_with(listen_ip: &str, extra: &str) -> NatsServer {
        let ports = free_ports(2);
        let mut server = Self::create(Spec {
            name: "n0".to_string(),
            listen_ip,
            port: ports[0],
            monitor_port: ports[1],
            cluster: None,
            extra,
        });
        server.spawn();
        server.wait_healthy();
        server
    }

    /// Writes the config into a new temporary directory; does not start the process.
    fn create(spec: Spec<'_>) -> NatsServer {
        let dir = tempfile::Builder::new()
            .prefix("wb-nats-")
            .tempdir()
            .expect("creating a temporary directory for nats-server");
        let store = dir.path().join("jetstream");
        let log = dir.path().join("server.log");
        let mut config = format!(
            "server_name: {name}\n\
             listen: \"{ip}:{port}\"\n\
             http: \"127.0.0.1:{mon}\"\n\
             log_file: \"{log}\"\n\
             jetstream {{\n  store_dir: \"{store}\"\n  sync_interval: always\n}}\n",
            name = spec.name,
            ip = spec.listen_ip,
            port = spec.port,
            mon = spec.monitor_port,
            log = log.display(),
            store = store.display(),
        );
        if let Some((route_port, peers)) = &spec.cluster {
            let routes: Vec<String> = peers
                .iter()
                .map(|p| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            config.push_str(&format!(
                "cluster {{\n  name: wb\n  listen: \"127.0.0.1:{route_port}\"\n  \
                 routes: [{}]\n}}\n",
                routes.join(", ")
            ));
        }
        config.push_str(spec.extra);
        std::fs::write(dir.path().join("server.conf"), config)
            .expect("writing the nats-server config");
        NatsServer {
            name: spec.name,
            listen_ip: spec.listen_ip.to_string(),
            port: spec.port,
            monitor_port: spec.monitor_port,
            child: None,
            dir,
        }
    }

    /// Starts the process without waiting for it. Its own stdout and stderr go to
    /// `stdout.log` (a config error is printed there before the log file is opened).
    fn spawn(&mut self) {
        assert!(
            self.child.is_none(),
            "nats-server {} is already running",
            self.name
        );
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stdout.log"))
            .expect("opening nats-server's stdout.log");
        let err = out.try_clone().expect("opening nats-server's stdout.log");
        let binary = nats_server_binary();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(self.dir.path().join("server.conf"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        self.child = Some(child);
    }

    /// Polls `/healthz?js-enabled-only=true` until it answers 200; panics with the log's tail
    /// after [`READY_TIMEOUT`], or at once if the process exits.
    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok((200, _)) = self.monitor_get("/healthz?js-enabled-only=true") {
                return;
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!(
                    "nats-server {} exited ({status}) before it was healthy\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "nats-server {} not healthy after {READY_TIMEOUT:?}\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The URL clients on this machine use: `nats://<listen ip>:<port>` (loopback when it
    /// listens on every address).
    pub fn url(&self) -> String {
        let host = if self.listen_ip == "0.0.0.0" {
            "127.0.0.1"
        } else {
            &self.listen_ip
        };
        self.url_at(host)
    }

    /// The URL for a client that reaches this server at `host`, e.g. [`Netns::host_ip`] from
    /// inside a namespace.
    pub fn url_at(&self, host: &str) -> String {
        format!("nats://{host}:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `server_name` in its config (what `/jsz` reports as a leader).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the process is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The JetStream store, kept across restarts.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// The server's log file (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// A GET on the monitoring port, e.g. `/jsz?streams=true`: the status and body.
    pub fn monitor_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(self.monitor_port, path)
    }

    /// The monitoring endpoint's JSON at `path`, or None if the server does not answer 200
    /// with JSON.
    fn monitor_json(&self, path: &str) -> Option<Json> {
        match self.monitor_get(path) {
            Ok((200, body)) => Json::parse(&body),
            _ => None,
        }
    }

    /// SIGKILL, as a crash would, and waits for the process to be gone. Nothing if it is not
    /// running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error only means it has already exited; wait reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again (killing it first if it is running) with the same config, ports and
    /// store, and waits until it is healthy.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_healthy();
    }

    /// The last lines of the server's log and of its stdout, for a panic message.
    fn log_tail(&self) -> String {
        let mut out = String::new();
        for file in ["server.log", "stdout.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            out.push_str(&format!("--- last {} lines of {file}:\n", tail.len()));
            for line in tail {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` nats-servers routed to each other in cluster `wb`, for tests of failover: server `i` is
/// named `n<i>`, and its index is what [`NatsCluster::stream_leader`] returns.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// `n` routed servers on loopback, each healthy, with routes to all the others that have
    /// settled, and a JetStream meta leader that all of them agree on.
    pub fn start(n: usize) -> NatsCluster {
        Self::start_on(n, "127.0.0.1")
    }

    /// As [`NatsCluster::start`], with the client ports on `listen_ip` (see
    /// [`NatsServer::start_single_on`]); routes and monitoring stay on loopback.
    pub fn start_on(n: usize, listen_ip: &str) -> NatsCluster {
        assert!(n >= 1, "a cluster needs at least one server");
        let ports = free_ports(3 * n);
        let route_ports: Vec<u16> = (0..n).map(|i| ports[3 * i + 2]).collect();
        let servers = (0..n)
            .map(|i| {
                // Each server dials only those before it: when two dial each other at once,
                // one of the pair is closed as a duplicate, and interest sent over it can be
                // lost with it (seen: a JetStream API reply that never arrived). The full mesh
                // forms from the routes each accepts. Itself too, since a JetStream cluster
                // refuses to start with no configured route; nats-server skips a route to self.
                let peers = route_ports[..=i].to_vec();
                NatsServer::create(Spec {
                    name: format!("n{i}"),
                    listen_ip,
                    port: ports[3 * i],
                    monitor_port: ports[3 * i + 1],
                    cluster: Some((route_ports[i], peers)),
                    extra: "",
                })
            })
            .collect();
        let mut cluster = NatsCluster { servers };
        cluster.start_all();
        cluster
    }

    /// Starts the servers in order, each healthy before the next (so the one it dials is
    /// listening, and no dial fails into a retry a second later), then waits until the routes
    /// are settled and a meta leader elected.
    fn start_all(&mut self) {
        for server in &mut self.servers {
            server.spawn();
            server.wait_healthy();
        }
        self.wait_settled();
    }

    /// Waits until every running server has routes to every other running one, unchanged for
    /// [`ROUTES_SETTLED`], and they all name the same meta leader. Until the routes settle a
    /// message can be lost with a route that is replaced.
    fn wait_settled(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last: Option<(Vec<Vec<u64>>, Instant)> = None;
        loop {
            let routes = self.routes();
            match (&routes, &last) {
                (Some(now), Some((before, since))) if now == before => {
                    if since.elapsed() >= ROUTES_SETTLED {
                        break;
                    }
                }
                (Some(now), _) => last = Some((now.clone(), Instant::now())),
                (None, _) => last = None,
            }
            if Instant::now() > deadline {
                self.panic_with_logs(&format!(
                    "the nats cluster's routes not settled after {READY_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(POLL);
        }
        self.wait_meta_leader();
    }

    /// The route ids of each running server (from `/routez`, `routes[].rid`), if each has a
    /// route to every other running server (`routes[].remote_name`).
    fn routes(&mut self) -> Option<Vec<Vec<u64>>> {
        let mut running = Vec::new();
        for server in &mut self.servers {
            if server.is_running() {
                running.push(server.name.clone());
            }
        }
        let mut all = Vec::new();
        for server in &self.servers {
            if !running.contains(&server.name) {
                continue;
            }
            let json = server.monitor_json("/routez")?;
            let routes = json
                .get("routes")
                .and_then(Json::as_array)
                .unwrap_or_default();
            let peers: Vec<&str> = routes
                .iter()
                .filter_map(|r| r.get("remote_name").and_then(Json::as_str))
                .collect();
            if running
                .iter()
                .any(|name| *name != server.name && !peers.contains(&name.as_str()))
            {
                return None;
            }
            let mut rids: Vec<u64> = routes
                .iter()
                .filter_map(|r| match r.get("rid") {
                    Some(Json::Number(rid)) => Some(*rid as u64),
                    _ => None,
                })
                .collect();
            rids.sort_unstable();
            all.push(rids);
        }
        Some(all)
    }

    /// Panics with `message` and the tail of every server's log.
    fn panic_with_logs(&self, message: &str) -> ! {
        let logs: Vec<String> = self.servers.iter().map(|s| s.log_tail()).collect();
        panic!("{message}\n{}", logs.join(""))
    }

    /// The client URLs of every server, comma-joined, as a NATS client takes them.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.servers.iter().map(|s| s.url()).collect();
        urls.join(",")
    }

    /// The index of the server `name`.
    fn index_of(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == name)
    }

    /// The leader every running server's `/jsz` names in the answer `pick` reads out of it, if
    /// they all name the same running server. Servers that do not answer, or whose answer
    /// does not mention the thing, are left out; one that names no leader (an election under
    /// way) or a different one makes it None: a view some server has not caught up with is
    /// not taken for the answer.
    fn agreed_leader(
        &mut self,
        path: &str,
        pick: impl Fn(&Json) -> Option<String>,
    ) -> Option<usize> {
        let mut agreed: Option<String> = None;
        for server in &mut self.servers {
            if !server.is_running() {
                continue;
            }
            let Some(json) = server.monitor_json(path) else {
                continue;
            };
            let Some(leader) = pick(&json) else { continue };
            if leader.is_empty() || agreed.as_ref().is_some_and(|a| *a != leader) {
                return None;
            }
            agreed = Some(leader);
        }
        let index = self.index_of(&agreed?)?;
        // The survivors may still name a server that was just killed.
        self.servers[index].is_running().then_some(index)
    }

    /// The index of the JetStream meta leader (which places streams and consumers), if the
    /// running servers agree on one. `/jsz` reports it as `meta_cluster.leader`.
    pub fn meta_leader(&mut self) -> Option<usize> {
        // A member that answers without a meta_cluster has not joined yet: no leader.
        self.agreed_leader("/jsz", |json| {
            let leader = json.get("meta_cluster").and_then(|m| m.get("leader"));
            Some(
                leader
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        })
    }

    /// The index of the server that leads stream `stream` (in any account), if the running
    /// servers that hold it agree on one; read from `/jsz?accounts=true&streams=true`,
    /// `account_details[].stream_detail[]` with that `name`, its `cluster.leader`.
    pub fn stream_leader(&mut self, stream: &str) -> Option<usize> {
        self.agreed_leader("/jsz?accounts=true&streams=true", |json| {
            let accounts = json.get("account_details")?.as_array()?;
            let detail = accounts
                .iter()
                .filter_map(|a| a.get("stream_detail").and_then(Json::as_array))
                .flatten()
                .find(|s| s.get("name").and_then(Json::as_str) == Some(stream))?;
            let leader = detail
                .get("cluster")
                .and_then(|c| c.get("leader"))
                .and_then(Json::as_str);
            Some(leader.unwrap_or_default().to_string())
        })
    }

    /// Waits up to `timeout` for [`NatsCluster::stream_leader`] to name a running server, and
    /// returns it; panics if none does. After a leader is killed, the survivors take a few
    /// seconds to elect another.
    pub fn wait_stream_leader(&mut self, stream: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(index) = self.stream_leader(stream) {
                return index;
            }
            if Instant::now() > deadline {
                panic!(
                    "stream {stream} has no leader the running servers agree on after {timeout:?}"
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until every running server names the same running meta leader.
    fn wait_meta_leader(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.meta_leader().is_none() {
            if Instant::now() > deadline {
                self.panic_with_logs(&format!(
                    "the nats cluster has no meta leader after {READY_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILLs server `i` (see [`NatsServer::kill`]).
    pub fn kill(&mut self, i: usize) {
        self.servers[i].kill();
    }

    /// Restarts server `i` over its store, and waits until it is healthy, routed to the others
    /// and agrees with them on a meta leader, i.e. it has rejoined. Its stream replicas may
    /// still be catching up.
    pub fn restart(&mut self, i: usize) {
        self.servers[i].restart();
        self.wait_settled();
    }

    /// Kills every server, then starts them all again over their stores, as after a power
    /// cut, and waits as [`NatsCluster::start`] does.
    pub fn restart_all(&mut self) {
        for server in &mut self.servers {
            server.kill();
        }
        self.start_all();
    }
}

/// A GET over HTTP/1.0 to 127.0.0.1:`port` (so the server closes the connection after the
/// body): the status and body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_string()))
}

/// A network namespace joined to this one by a veth pair, for a process (a worker) that must
/// lose the network on demand while everything else on the machine keeps it.
///
/// The host end has [`Netns::host_ip`] and the namespace end the other address of a /30;
/// a server the process must reach listens on the host address (or `0.0.0.0`).
/// [`Netns::cut`] takes the host end down: packets stop both ways, with no reset, as when a
/// cable is pulled. Needs root and `ip` (iproute2). Dropping it kills what still runs inside,
/// and deletes the namespace and the pair.
pub struct Netns {
    name: String,
    host_veth: String,
    host_ip: String,
}

/// Tells apart the namespaces one test process makes.
static NETNS_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs `ip` with `args`: Ok, or Err with its stderr.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this process's effective uid is 0, from /proc (std has no geteuid).
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

impl Netns {
    /// Makes namespace `wbtest-<pid>-<n>` with a veth pair to it, addresses on both ends and
    /// every link up. Err says why not (not root, no `ip`, the kernel or container refused), so
    /// a test can print it and skip; `name_hint` (the test's name) goes in that message.
    pub fn create(name_hint: &str) -> Result<Netns, String> {
        let why = |reason: String| format!("no network namespace for {name_hint}: {reason}");
        if !is_root() {
            return Err(why("not running as root".to_string()));
        }
        match Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(why("`ip` (iproute2) is not installed".to_string()));
            }
            Err(e) => return Err(why(format!("running `ip -V`: {e}"))),
            Ok(_) => {}
        }
        let pid = std::process::id();
        let in_use = ip(&["-o", "-4", "addr", "show"]).map_err(why)?;
        // A subnet from pid and counter; one already on this machine (another test, another
        // run's leftovers) is skipped.
        let (n, a, b) = loop {
            let n = NETNS_COUNTER.fetch_add(1, Ordering::Relaxed);
            let slot = (pid.wrapping_mul(16).wrapping_add(n)) % (100 * 256);
            let (a, b) = (100 + slot / 256, slot % 256);
            if !in_use.contains(&format!(" 10.{a}.{b}.")) {
                break (n, a, b);
            }
            if n > 1000 {
                return Err(why("no free 10.x.y.0/30 subnet found".to_string()));
            }
        };
        let name = format!("wbtest-{pid}-{n}");
        // Interface names are at most 15 bytes: "wbh" + up to 7 pid digits + "-" + n.
        let host_veth = format!("wbh{pid}-{n}");
        let ns_veth = format!("wbn{pid}-{n}");
        ip(&["netns", "add", &name]).map_err(why)?;
        // From here on, Drop cleans up whatever was made.
        let netns = Netns {
            name,
            host_veth,
            host_ip: format!("10.{a}.{b}.1"),
        };
        let ns_ip = format!("10.{a}.{b}.2/30");
        let host_cidr = format!("{}/30", netns.host_ip);
        let steps: [&[&str]; 7] = [
            &[
                "link",
                "add",
                &netns.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                &ns_veth,
            ],
            &["link", "set", &ns_veth, "netns", &netns.name],
            &["addr", "add", &host_cidr, "dev", &netns.host_veth],
            &["link", "set", &netns.host_veth, "up"],
            &["-n", &netns.name, "addr", "add", &ns_ip, "dev", &ns_veth],
            &["-n", &netns.name, "link", "set", &ns_veth, "up"],
            &["-n", &netns.name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            ip(step).map_err(why)?;
        }
        Ok(netns)
    }

    /// The namespace's name, for `ip netns exec` by hand.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host end's address: what a process inside uses to reach a server on this machine.
    pub fn host_ip(&self) -> &str {
        &self.host_ip
    }

    /// A command that runs `program` inside the namespace (`ip netns exec <ns> <program>`);
    /// add its arguments and environment as to any Command.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Cuts the namespace off: the host end goes down, so nothing passes either way until
    /// [`Netns::restore`]; open connections are not reset, they just stop hearing back.
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_veth, "down"]).expect("taking the host veth down");
    }

    /// Undoes [`Netns::cut`]; connections that outlived the cut resume.
    pub fn restore(&self) {
        ip(&["link", "set", &self.host_veth, "up"]).expect("bringing the host veth up");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // A process left inside would keep the namespace (and the veth pair) alive.
        if let Ok(pids) = ip(&["netns", "pids", &self.name]) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_veth]);
    }
}

/// Just enough JSON to read the monitoring endpoints: a value tree with lookups.
#[derive(Debug)]
enum Json {
    Null,
    Bool(#[allow(dead_code)] bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The value of a whole document, or None if it is not JSON.
    fn parse(text: &str) -> Option<Json> {
        let mut parser = JsonParser {
            bytes: text.as_bytes(),
            at: 0,
        };
        let value = parser.value()?;
        parser.skip_space();
        (parser.at == parser.bytes.len()).then_some(value)
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
}

struct JsonParser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl JsonParser<'_> {
    fn skip_space(&mut self) {
        while self.at < self.bytes.len() && self.bytes[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Option<Json> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Some(value)
        } else {
            None
        }
    }

    fn value(&mut self) -> Option<Json> {
        self.skip_space();
        match *self.bytes.get(self.at)? {
            b'{' => {
                self.at += 1;
                let mut fields = Vec::new();
                if self.eat(b'}') {
                    return Some(Json::Object(fields));
                }
                loop {
                    self.skip_space();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return None;
                    }
                    fields.push((key, self.value()?));
                    if self.eat(b'}') {
                        return Some(Json::Object(fields));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    if self.eat(b']') {
                        return Some(Json::Array(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'"' => self.string().map(Json::String),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'n' => self.literal("null", Json::Null),
            _ => {
                let start = self.at;
                while self.at < self.bytes.len()
                    && matches!(
                        self.bytes[self.at],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.at += 1;
                }
                let number = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
                number.parse().ok().map(Json::Number)
            }
        }
    }

    /// A string at the cursor, escapes decoded (a lone surrogate becomes U+FFFD).
    fn string(&mut self) -> Option<String> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            match byte {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let escape = *self.bytes.get(self.at)?;
                    self.at += 1;
                    let c = match escape {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex =
                                std::str::from_utf8(self.bytes.get(self.at..self.at + 4)?).ok()?;
                            self.at += 4;
                            let unit = u32::from_str_radix(hex, 16).ok()?;
                            char::from_u32(unit).unwrap_or('\u{fffd}')
                        }
                        other => other as char,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(byte),
            }
        }
    }
}
