//! Cluster mode on the command line: the NATS options `serve --cluster` and `worker` share,
//! `wasmbatch worker` (remote capacity for an UNMANAGED compute environment) and
//! `wasmbatch workers` (the live workers, as the server sees them).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use wasmbatch_runtime::cluster::{ClusterConfig, Worker as RemoteWorker, WorkerConfig};

use super::client::{Connection, Endpoint, Output, print_json, table, text};

/// How to reach NATS (cluster mode).
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS servers, comma-separated (nats://h1:4222,nats://h2:4222). Turns on cluster mode:
    /// UNMANAGED compute environments run their jobs on `wasmbatch worker`s.
    #[arg(long, value_name = "URLS")]
    pub cluster: Option<String>,
    /// NATS user (with --nats-password).
    #[arg(long, value_name = "USER", requires = "nats_password")]
    nats_user: Option<String>,
    /// NATS password; better given in the environment than on the command line.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "WASMBATCH_NATS_PASSWORD",
        hide_env_values = true,
        requires = "nats_user"
    )]
    nats_password: Option<String>,
    /// A NATS credentials file (JWT and nkey seed).
    #[arg(long, value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// A file holding an nkey seed (SU…), for servers that authenticate by nkey.
    #[arg(long, value_name = "FILE")]
    nats_nkey: Option<PathBuf>,
    /// CA certificates (PEM) to trust for the servers' TLS.
    #[arg(long, value_name = "FILE")]
    nats_tls_ca: Option<PathBuf>,
    /// A client certificate (PEM) for servers that verify clients; needs --nats-tls-key.
    #[arg(long, value_name = "FILE", requires = "nats_tls_key")]
    nats_tls_cert: Option<PathBuf>,
    /// The key of --nats-tls-cert.
    #[arg(long, value_name = "FILE", requires = "nats_tls_cert")]
    nats_tls_key: Option<PathBuf>,
    /// Refuse a server that does not speak TLS.
    #[arg(long)]
    nats_tls_required: bool,
    /// How often a worker sends its heartbeat (`250ms`, `1s`).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = super::serve::duration)]
    heartbeat: Duration,
}

impl NatsArgs {
    /// The cluster configuration, when --cluster is given.
    pub fn config(&self) -> anyhow::Result<Option<ClusterConfig>> {
        let Some(servers) = &self.cluster else {
            return Ok(None);
        };
        let mut config = ClusterConfig::new(servers.clone());
        if let (Some(user), Some(password)) = (&self.nats_user, &self.nats_password) {
            config.user_password = Some((user.clone(), password.clone()));
        }
        config.credentials_file = self.nats_creds.clone();
        if let Some(path) = &self.nats_nkey {
            let seed = std::fs::read_to_string(path)
                .with_context(|| format!("--nats-nkey {}", path.display()))?;
            config.nkey_seed = Some(seed.trim().to_string());
        }
        config.tls_ca = self.nats_tls_ca.clone();
        if let (Some(cert), Some(key)) = (&self.nats_tls_cert, &self.nats_tls_key) {
            config.tls_client = Some((cert.clone(), key.clone()));
        }
        config.tls_required = self.nats_tls_required;
        config.heartbeat = self.heartbeat.max(Duration::from_millis(10));
        Ok(Some(config))
    }
}

/// Give this machine's cores to an UNMANAGED compute environment of a `serve --cluster`.
///
/// The worker pulls the attempts the server places on it from NATS JetStream, fetches each
/// module by its sha256 from the object store (and checks it), runs it under the job's limits,
/// and reports its output and end. It stops its attempts by itself when it cannot renew its
/// lease with the server.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  wasmbatch worker --cluster nats://127.0.0.1:4222 --compute-environment farm --vcpus 16 --memory 32768"
)]
pub struct Worker {
    #[command(flatten)]
    nats: NatsArgs,
    /// The UNMANAGED compute environment to serve.
    #[arg(long, value_name = "NAME")]
    compute_environment: String,
    /// vCPUs to offer; this machine's cores by default.
    #[arg(long, value_name = "N")]
    vcpus: Option<f64>,
    /// Memory to offer, in MiB; half of this machine's by default.
    #[arg(long, value_name = "MIB")]
    memory: Option<u64>,
    /// This worker's name: unique among workers, and the same across its restarts (so the
    /// server knows a restarted worker lost what it held). The host name by default.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Where compiled modules and scratch directories live (`<data dir>/worker-<name>` by
    /// default).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Where job volumes' host paths live on this machine; without it, jobs with volumes fail
    /// here.
    #[arg(long, value_name = "DIR")]
    volume_root: Option<PathBuf>,
    /// Largest module it fetches.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    max_module_mib: u64,
}

impl Worker {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let Some(cluster) = self.nats.config()? else {
            anyhow::bail!("wasmbatch worker needs --cluster nats://HOST:PORT");
        };
        let name = match self.name {
            Some(name) => name,
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().replace('.', "-"))
                .context("no --name, and the host name cannot be read")?,
        };
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| super::default_data_dir().join(format!("worker-{name}")));
        let mut config =
            WorkerConfig::new(cluster, name.clone(), self.compute_environment, &data_dir);
        if let Some(vcpus) = self.vcpus {
            config.vcpus = vcpus;
        }
        config.memory_mib = self.memory.unwrap_or_else(|| host_memory_mib() / 2);
        config.volume_root = self.volume_root;
        config.max_module_bytes = self.max_module_mib << 20;
        let (vcpus, memory, environment) = (
            config.vcpus,
            config.memory_mib,
            config.compute_environment.clone(),
        );
        let stop = super::serve::shutdown_signal()?;
        let worker = RemoteWorker::start(config).await?;
        eprintln!(
            "wasmbatch: worker {name} serving compute environment {environment} with {vcpus} vCPUs and {memory} MiB (session {})",
            worker.session()
        );
        worker.run(stop).await?;
        eprintln!("wasmbatch: worker {name} stopped");
        Ok(ExitCode::SUCCESS)
    }
}

fn host_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(4096, |kib| kib / 1024)
}

/// List the live workers of a `serve --cluster`: environment, host, capacity, attempts, last
/// heartbeat.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  wasmbatch workers")]
pub struct Workers {
    #[command(flatten)]
    connection: Connection,
}

impl Workers {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let server = Endpoint::new(&self.connection)?;
        let reply = server.get("/v1/workers").await?;
        if self.connection.output == Output::Json {
            print_json(&reply);
            return Ok(ExitCode::SUCCESS);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let rows: Vec<Vec<String>> = reply["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w: &Value| {
                let ago = w["lastHeartbeatAt"].as_i64().map_or("-".into(), |at| {
                    format!("{:.1}s ago", (now - at).max(0) as f64 / 1000.0)
                });
                vec![
                    text(&w["name"]),
                    text(&w["computeEnvironment"]),
                    text(&w["host"]),
                    format!("{}/{}", text(&w["usedVcpus"]), text(&w["vcpus"])),
                    text(&w["memoryMib"]),
                    text(&w["runningAttempts"]),
                    ago,
                ]
            })
            .collect();
        table(
            &[
                "NAME",
                "ENVIRONMENT",
                "HOST",
                "VCPUS USED",
                "MEMORY MIB",
                "ATTEMPTS",
                "LAST HEARTBEAT",
            ],
            &rows,
        );
        Ok(ExitCode::SUCCESS)
    }
}
