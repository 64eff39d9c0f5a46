//! What one attempt is given: its arguments, environment, stdin, directory grants, limits, where
//! its output goes, and the switch that kills it from outside.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::output::{DiscardOutput, OutputSink};

/// Everything one run of a module needs besides the module itself.
///
/// Build it with struct-update syntax over [`AttemptSpec::default`]:
///
/// ```
/// use wasmbatch_runtime::{AttemptSpec, Limits};
/// let spec = AttemptSpec {
///     args: vec!["hello.wasm".into(), "world".into()],
///     limits: Limits { fuel: Some(10_000_000), ..Limits::default() },
///     ..AttemptSpec::default()
/// };
/// ```
#[derive(Clone)]
pub struct AttemptSpec {
    /// The guest's whole argv, `args[0]` included (by convention the module's name, as for a
    /// container whose entrypoint is the module).
    pub args: Vec<String>,
    /// Environment variables, in order. Nothing of the host's environment is passed through.
    pub env: Vec<(String, String)>,
    /// Bytes the guest reads from stdin; empty stdin when `None`.
    pub stdin: Option<Vec<u8>>,
    /// Host directories the guest may see, besides its scratch directory. Only the embedding
    /// application decides these: the HTTP face never lets a caller name a host path.
    pub grants: Vec<DirGrant>,
    /// Memory, fuel and wall-clock limits.
    pub limits: Limits,
    /// Where the guest's stdout and stderr lines go, as they are written.
    pub output: Arc<dyn OutputSink>,
    /// Kills the attempt when fired; `None` when nobody needs to.
    pub kill: Option<KillSwitch>,
}

impl Default for AttemptSpec {
    fn default() -> Self {
        Self {
            args: vec!["main.wasm".into()],
            env: Vec::new(),
            stdin: None,
            grants: Vec::new(),
            limits: Limits::default(),
            output: Arc::new(DiscardOutput),
            kill: None,
        }
    }
}

impl std::fmt::Debug for AttemptSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptSpec")
            .field("args", &self.args)
            .field("env", &self.env)
            .field("stdin_bytes", &self.stdin.as_ref().map(Vec::len))
            .field("grants", &self.grants)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The limits that stand in for a container's vCPU, memory and timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Cap on the sum of the guest's linear memories, in bytes. Growth past it fails the attempt.
    pub memory_bytes: u64,
    /// CPU budget in fuel units (roughly one per wasm instruction); `None` is unmetered budget,
    /// though fuel used is still reported when the executor meters fuel.
    pub fuel: Option<u64>,
    /// Wall-clock limit from the start of the attempt, including time blocked in host calls.
    pub timeout: Duration,
}

impl Limits {
    /// Memory cap when none is given: 512 MiB, as a small container would get.
    pub const DEFAULT_MEMORY_BYTES: u64 = 512 << 20;
    /// Timeout when none is given: one day, so that no attempt can hold a slot forever.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            fuel: None,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

/// A host directory made visible to the guest at `guest_path`.
#[derive(Debug, Clone)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: HostDir,
    /// Where the guest sees it, e.g. `/data`.
    pub guest_path: String,
    /// Whether the guest may change what is in it.
    pub access: Access,
}

impl DirGrant {
    /// A grant of the directory at `host_path`, which is opened (following links, as any path
    /// the embedder names would be) when the attempt starts.
    pub fn path(
        host_path: impl Into<PathBuf>,
        guest_path: impl Into<String>,
        access: Access,
    ) -> Self {
        Self {
            host: HostDir::Path(host_path.into()),
            guest_path: guest_path.into(),
            access,
        }
    }
}

/// Which host directory a [`DirGrant`] gives.
#[derive(Debug, Clone)]
pub enum HostDir {
    /// A path the embedder chose (`wasmbatch run --dir`).
    Path(PathBuf),
    /// A directory already opened, by the control plane beneath its volume root without
    /// following links: the guest gets this very directory, whatever the path to it now holds.
    Opened(Arc<cap_std::fs::Dir>),
}

impl HostDir {
    /// What wasmtime-wasi is asked to open. It takes preopens only by path, so an opened
    /// directory is named by its descriptor under `/proc/self/fd`: the kernel resolves that to
    /// the open directory itself, without walking any path again.
    pub(crate) fn open_path(&self) -> PathBuf {
        match self {
            HostDir::Path(path) => path.clone(),
            HostDir::Opened(dir) => {
                use std::os::fd::AsRawFd;
                PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            }
        }
    }
}

impl std::fmt::Display for HostDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostDir::Path(path) => write!(f, "{}", path.display()),
            HostDir::Opened(_) => f.write_str("a volume opened beneath the volume root"),
        }
    }
}

/// Read-only or read-write, for a [`DirGrant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The guest may list and read.
    ReadOnly,
    /// The guest may also create, write and delete.
    ReadWrite,
}

/// Kills an attempt in flight: a spinning guest within one epoch tick, a guest blocked in a host
/// call at once. Cheap to clone; every clone fires the same switch.
#[derive(Debug, Clone, Default)]
pub struct KillSwitch {
    token: CancellationToken,
    reason: Arc<std::sync::OnceLock<String>>,
}

impl KillSwitch {
    /// A switch that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the switch; `reason` ends up in the attempt's failure. Firing twice keeps the first
    /// reason.
    pub fn kill(&self, reason: impl Into<String>) {
        let _ = self.reason.set(reason.into());
        self.token.cancel();
    }

    /// Whether the switch has fired.
    pub fn is_killed(&self) -> bool {
        self.token.is_cancelled()
    }

    pub(crate) fn reason(&self) -> String {
        self.reason
            .get()
            .cloned()
            .unwrap_or_else(|| "killed".to_string())
    }

    pub(crate) async fn killed(&self) {
        self.token.cancelled().await
    }
}
