//! Cluster mode: UNMANAGED compute environments whose capacity is remote workers, on NATS
//! JetStream (see the README's deployment section). The control plane keeps deciding placement
//! (the same scheduler, fair share included) and keeps redb the truth; NATS carries the work and
//! the reports between it and the workers.
//!
//! - [`wire`]: the subjects, streams and messages.
//! - `control`: the control plane's side: journal then publish each placed attempt, apply the
//!   workers' reports (fenced), answer heartbeats with leases, fail the attempts of lost workers.
//! - [`worker`]: `wasmbatch worker`: pull attempts, fetch and verify modules, run them with the
//!   same [`Executor`](crate::Executor), report, and kill its own attempts when its lease lapses.

pub(crate) mod control;
pub mod wire;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;

pub use control::WorkerInfo;
pub use worker::{Worker, WorkerConfig};

/// How to reach NATS, and cluster mode's timings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Server URLs, comma-separated (`nats://h1:4222,nats://h2:4222`).
    pub servers: String,
    /// User and password, if the servers ask for them.
    pub user_password: Option<(String, String)>,
    /// A `.creds` file (JWT and nkey seed), if the servers use decentralised auth.
    pub credentials_file: Option<PathBuf>,
    /// An nkey seed, if the servers authenticate by nkey.
    pub nkey_seed: Option<String>,
    /// CA certificates (PEM) to trust for the servers' TLS.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and key (PEM), for servers that verify clients.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Require TLS even if the servers do not ask for it.
    pub tls_required: bool,
    /// Replicas of the streams and the module bucket the control plane creates (3 in
    /// production, on three servers; 1 for a try-out).
    pub replicas: usize,
    /// How long a worker may go unheard before it counts as lost (10 s by default).
    pub lease: Duration,
    /// How often a worker sends its heartbeat (1 s by default).
    pub heartbeat: Duration,
}

impl ClusterConfig {
    /// Defaults for `servers`.
    pub fn new(servers: impl Into<String>) -> Self {
        Self {
            servers: servers.into(),
            user_password: None,
            credentials_file: None,
            nkey_seed: None,
            tls_ca: None,
            tls_client: None,
            tls_required: false,
            replicas: 1,
            lease: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
        }
    }

    /// Connects with these options, naming the connection `name` (it shows in the servers'
    /// monitoring), with replies under `inbox` (so NATS permissions can keep one worker from
    /// reading another's replies). A first connection that fails is an error (a wrong password
    /// says so at once); once connected, the client reconnects by itself for as long as the
    /// process lives.
    pub(crate) async fn connect(
        &self,
        name: &str,
        inbox: Option<String>,
    ) -> Result<async_nats::Client, ClusterError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5));
        if let Some(inbox) = inbox {
            options = options.custom_inbox_prefix(inbox);
        }
        if let Some((user, password)) = &self.user_password {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(path) = &self.credentials_file {
            options = options.credentials_file(path).await.map_err(|e| {
                ClusterError::Config(format!("--nats-creds {}: {e}", path.display()))
            })?;
        }
        if let Some(seed) = &self.nkey_seed {
            options = options.nkey(seed.clone());
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.tls_required {
            options = options.require_tls(true);
        }
        let servers: Vec<async_nats::ServerAddr> = self
            .servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|e| ClusterError::Config(format!("--cluster {s}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        if servers.is_empty() {
            return Err(ClusterError::Config("--cluster names no server".into()));
        }
        options
            .connect(servers)
            .await
            .map_err(|e| ClusterError::Nats(format!("connecting to {}: {e}", self.servers)))
    }
}

/// Why cluster mode could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// An option is wrong.
    #[error("cluster mode: {0}")]
    Config(String),
    /// NATS refused or failed.
    #[error("cluster mode: {0}")]
    Nats(String),
    /// The control plane refused this worker.
    #[error("the control plane refused this worker: {0}")]
    Refused(String),
    /// The worker's executor could not start.
    #[error(transparent)]
    Executor(#[from] crate::ExecutorError),
}

/// Creates (or finds) the streams and the module bucket, with `replicas` replicas. Retries
/// while JetStream is not ready yet (a cluster still electing its leaders), up to a minute.
pub(crate) async fn ensure_streams(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(), ClusterError> {
    use jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
    let work = Config {
        name: wire::WORK_STREAM.into(),
        subjects: vec!["wb.work.*".into()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        num_replicas: replicas,
        // A re-publish of an attempt after a control-plane crash is dropped within this.
        duplicate_window: Duration::from_secs(600),
        max_bytes: 1 << 30,
        discard: DiscardPolicy::New,
        ..Default::default()
    };
    let reports = Config {
        name: wire::REPORT_STREAM.into(),
        subjects: vec!["wb.report.*".into()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        num_replicas: replicas,
        duplicate_window: Duration::from_secs(600),
        max_bytes: 4 << 30,
        discard: DiscardPolicy::New,
        ..Default::default()
    };
    let modules = jetstream::object_store::Config {
        bucket: wire::MODULE_BUCKET.into(),
        description: Some("wasmbatch modules by sha256".into()),
        storage: StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            js.get_or_create_stream(work.clone())
                .await
                .map_err(|e| format!("stream {}: {e}", wire::WORK_STREAM))?;
            js.get_or_create_stream(reports.clone())
                .await
                .map_err(|e| format!("stream {}: {e}", wire::REPORT_STREAM))?;
            if js.get_object_store(wire::MODULE_BUCKET).await.is_err() {
                js.create_object_store(modules.clone())
                    .await
                    .map_err(|e| format!("object store {}: {e}", wire::MODULE_BUCKET))?;
            }
            Ok::<_, String>(())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::info!("cluster mode: waiting for JetStream: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(ClusterError::Nats(e)),
        }
    }
}
