//! A real OCI registry for the end-to-end tests: [`Registry`] owns a CNCF Distribution process
//! (Debian's docker-registry 2.8) on a free loopback port, over plain HTTP, storing blobs and
//! manifests on the filesystem of a temporary directory it owns, with or without htpasswd basic
//! auth, stopped and restarted at will, its stored blobs open to tampering.
//!
//! `scripts/test` installs the binary (`ensure_docker_registry` in `scripts/env.sh`) and names it
//! in `WASMBATCH_REGISTRY`; without that, `/usr/bin/docker-registry`. The htpasswd file is
//! hashed with the `bcrypt` crate, so no other tool is
//! needed; basic auth over plain HTTP is accepted by registry 2.8 (it only asks for a realm).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the registry may take to answer `GET /v2/` before the test gives up with its log.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);
/// How many free ports [`Registry::start`] tries when the one it chose was taken before the
/// registry could listen on it.
const PORT_ATTEMPTS: usize = 3;

/// The registry binary: `$WASMBATCH_REGISTRY` (set by `scripts/test`), else
/// `/usr/bin/docker-registry` (Debian's package, which `scripts/test` installs), else
/// `docker-registry` or `registry` (the upstream name) on `PATH`. Panics naming `scripts/test`
/// if there is none.
pub fn registry_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMBATCH_REGISTRY") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "WASMBATCH_REGISTRY is {}, which is not a file; run the tests through scripts/test, \
             which installs docker-registry and sets it",
            path.display()
        );
        return path;
    }
    let debian = PathBuf::from("/usr/bin/docker-registry");
    if debian.is_file() {
        return debian;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .flat_map(|dir| [dir.join("docker-registry"), dir.join("registry")])
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "no docker-registry: WASMBATCH_REGISTRY is not set and there is no \
                 /usr/bin/docker-registry; run the tests through scripts/test, which installs \
                 Debian's docker-registry (ensure_docker_registry in scripts/env.sh)"
            )
        })
}

/// One registry process on `127.0.0.1:<port>`, plain HTTP.
///
/// Its config (`config.yml`), htpasswd file, storage (`storage/`) and log (`registry.log`: the
/// registry has no log file setting, so this is its stdout and stderr) live in a temporary
/// directory that outlives the process: [`Registry::restart`] serves the same content again on
/// the same port. Dropping it kills the process (it runs in a process group of its own) and
/// removes the directory.
pub struct Registry {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Registry {
    /// A registry that anyone may pull from and push to, started and answering.
    pub fn start() -> Registry {
        Self::start_with(None)
    }

    /// A registry that only `user` with `password` may use (htpasswd basic auth, realm
    /// `wasmbatch-test`; every other request gets 401), started and answering. Neither may
    /// hold a newline or NUL, nor `user` a colon.
    pub fn start_with_user(user: &str, password: &str) -> Registry {
        Self::start_with(Some((user, password)))
    }

    fn start_with(user: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("wb-registry-")
            .tempdir()
            .expect("creating a temporary directory for the registry");
        if let Some((user, password)) = user {
            assert!(
                !user.is_empty() && !user.contains([':', '\n', '\r', '\0']),
                "a registry user name must be non-empty, without ':' or line breaks: {user:?}"
            );
            assert!(
                !password.contains(['\n', '\r', '\0']),
                "a registry password must not hold line breaks or NUL"
            );
            let line = format!("{user}:{}\n", bcrypt(password));
            std::fs::write(dir.path().join("htpasswd"), line)
                .expect("writing the registry's htpasswd file");
        }
        let mut registry = Registry {
            port: 0,
            child: None,
            dir,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            registry.port = free_port();
            registry.write_config(user.is_some());
            // Each attempt's log alone, so a failed bind is told from other failures.
            let _ = std::fs::remove_file(registry.log_path());
            registry.spawn();
            match registry.wait_ready() {
                Ok(()) => return registry,
                // Another process took the port between our probe and the registry's bind.
                Err(log) if attempt < PORT_ATTEMPTS && log.contains("address already in use") => {}
                Err(log) => panic!(
                    "docker-registry on 127.0.0.1:{} did not start:\n{log}",
                    registry.port
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Writes `config.yml`: filesystem storage in the temporary dir, deletes allowed, nothing
    /// that reaches beyond it (no storage redirects, no blob descriptor cache or redis, no
    /// notifications, no bug reporting, no pull-through proxy, no debug listener), and no
    /// background purge of upload dirs.
    fn write_config(&self, with_auth: bool) {
        let dir = self.dir.path();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: \"{storage}\"\n\
             \x20 delete:\n    enabled: true\n\
             \x20 redirect:\n    disable: true\n\
             \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: \"127.0.0.1:{port}\"\n  secret: \"wasmbatch-test-{port}\"\n",
            storage = dir.join("storage").display(),
            port = self.port,
        );
        if with_auth {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: wasmbatch-test\n    path: \"{}\"\n",
                dir.join("htpasswd").display()
            ));
        }
        std::fs::write(dir.join("config.yml"), config).expect("writing the registry config");
    }

    /// Starts the process without waiting for it, its stdout and stderr appended to
    /// `registry.log`, in a process group of its own.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the registry is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the registry's log");
        let binary = registry_binary();
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicating the log's descriptor"))
            .stderr(log)
            .process_group(0);
        // REGISTRY_* variables override the config file (REGISTRY_HTTP_ADDR, REGISTRY_AUTH, ...):
        // none from the test's environment may change what this registry does.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(name);
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        self.child = Some(child);
    }

    /// Polls `GET /v2/` until the registry answers as one (200, or 401 with auth, and its
    /// `Docker-Distribution-Api-Version` header). Err with the log if the process exits or
    /// [`READY_TIMEOUT`] passes (the process is killed then).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(head) = http_head_of_get(self.port, "/v2/") {
                let status = head.split(' ').nth(1).unwrap_or_default();
                if (status == "200" || status == "401")
                    && head
                        .to_ascii_lowercase()
                        .contains("docker-distribution-api-version: registry/2.0")
                {
                    return Ok(());
                }
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("it exited ({status})\n{}", self.log()));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "it did not answer GET /v2/ within {READY_TIMEOUT:?}\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// `127.0.0.1:<port>`: the registry part of a reference (`<host>/<repository>:<tag>`), and
    /// what an OCI client must be told to reach over plain HTTP.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is running (not stopped, not exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the registry (SIGKILL to its process group) and waits until it is gone, so a
    /// client then finds the port refusing connections; what it stored stays for
    /// [`Registry::restart`]. Nothing if it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The group's id is the registry's pid (`process_group(0)`).
            // SAFETY: kill(2) takes no pointers.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    /// Starts it again (stopping it first if it runs) with the same config, port and storage,
    /// and waits until it answers; panics with its log if it does not.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        if let Err(log) = self.wait_ready() {
            panic!(
                "docker-registry on 127.0.0.1:{} did not restart:\n{log}",
                self.port
            );
        }
    }

    /// The storage root (`rootdirectory` in the config).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The file that holds the bytes of the blob `digest` (`sha256:<64 hex digits>`), as the
    /// filesystem driver lays it out; panics on another form of digest.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(|| panic!("not a sha256:<64 hex digits> digest: {digest:?}"));
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Overwrites the stored bytes of blob `digest` (a layer, a config or a manifest) with as
    /// many other bytes, so the registry serves content that no longer matches its digest, at
    /// the same length. A blob that names a digest (a manifest, a Wasm config: JSON) stays
    /// JSON: the first hex digit after its first `sha256:` changes (the registry parses a
    /// manifest before serving it, and answers 500 for one that is not JSON); any other blob
    /// has every byte inverted. Panics if the registry holds no such blob, or it is empty.
    pub fn tamper_blob(&self, digest: &str) {
        let path = self.blob_path(digest);
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "the registry holds no blob {digest} (reading {}: {e})",
                path.display()
            )
        });
        assert!(
            !bytes.is_empty(),
            "blob {digest} is empty: no bytes to change"
        );
        let named = bytes
            .windows(8)
            .position(|w| w.starts_with(b"sha256:") && w[7].is_ascii_hexdigit());
        match named {
            Some(at) => bytes[at + 7] = if bytes[at + 7] == b'0' { b'1' } else { b'0' },
            None => bytes.iter_mut().for_each(|b| *b = !*b),
        }
        std::fs::write(&path, bytes)
            .unwrap_or_else(|e| panic!("tampering with {}: {e}", path.display()));
    }

    /// The registry's log file (its stdout and stderr, appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The last lines of the registry's log, for a panic message.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        let mut out = format!("--- last {} lines of registry.log:\n", tail.len());
        for line in tail {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free port on 127.0.0.1; released before the registry binds it (see [`PORT_ATTEMPTS`]).
fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}

/// A GET over HTTP/1.0 to 127.0.0.1:`port`: the response's status line and headers.
fn http_head_of_get(port: u16, path: &str) -> std::io::Result<String> {
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
    let (head, _body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response")
    })?;
    Ok(head.to_string())
}

/// A bcrypt hash of `password` at the lowest cost (2^4 rounds: the registry checks it on every
/// request), as the registry's htpasswd check (Go's bcrypt) reads it.
fn bcrypt(password: &str) -> String {
    bcrypt::hash(password, 4).expect("hashing the test password")
}
