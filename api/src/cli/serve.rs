//! `wasmbatch serve`: the AWS Batch–compatible server on this host.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use wasmbatch_api::Access;
use wasmbatch_api::access::credentials::credentials_path;
use wasmbatch_runtime::{Batch, BatchConfig};

/// Run the server: AWS Batch's API (and CloudWatch Logs' GetLogEvents) on one port.
///
/// On its first start over a data dir it creates a compute environment `default` (as many vCPUs
/// as this host has cores) and a job queue `default`, so a job can be submitted at once.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  wasmbatch serve --listen 127.0.0.1:8080\n  aws batch describe-job-queues --endpoint-url http://127.0.0.1:8080"
)]
pub struct Serve {
    /// Address to listen on. Loopback by default; any other address needs a credentials file
    /// (`wasmbatch keys create`), since without one any signature is accepted.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of `GET /metrics` (Prometheus/OpenMetrics text), a listener apart from the API
    /// since scrapers do not sign requests: loopback by default, `off` for none. When the
    /// default port is taken the server goes on without metrics and says so; an address
    /// given here must be free.
    #[arg(long, value_name = "ADDR|off", default_value = DEFAULT_METRICS)]
    metrics_listen: String,
    /// Where state, modules, compiled modules and scratch directories live.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Largest module `PUT /v1/modules/{name}` accepts.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    max_module_mib: u64,
    /// A name (any port) or NAME:PORT clients may reach this server by, besides loopback and
    /// the listen address; other `Host` headers are refused (DNS rebinding). Repeatable.
    #[arg(long, value_name = "HOST")]
    allowed_host: Vec<String>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds a client has to send a request's headers (and to finish the TLS handshake); also
    /// how long an idle keep-alive connection is kept.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    header_read_timeout: u64,
    /// Seconds a request body may take to arrive (for a module upload: the longest pause).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    body_read_timeout: u64,
    /// Connections held at once; more wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = 512)]
    max_connections: usize,
    /// Request bodies read at once before their signature is checked; more wait.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_unauthenticated_bodies: usize,
    /// After a failed write to the database, how long the server goes on answering reads and
    /// `GET /health` (503) before it exits with status 75 for its supervisor to restart it. It
    /// takes no changes and starts no attempt meanwhile.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    storage_failure_grace: u64,
    /// Most changes (submits, updates, …) waiting for their commit at once; callers past it wait.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_pending_changes: usize,
    /// How long a finished job (attempts and logs with it) is kept after it ended, then
    /// removed; an array goes whole once its parent has ended. `500ms`, `30s`, `15m`, `12h`,
    /// `7d`; a bare number is seconds.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = duration)]
    job_retention: Duration,
    /// How long a finished job's logs are kept, if shorter than --job-retention (the job stays,
    /// its log streams read empty). As long as the job by default.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    log_retention: Option<Duration>,
    /// How long job state change events are kept for `GET /v1/events` to replay. As long as
    /// finished jobs by default.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    event_retention: Option<Duration>,
    #[command(flatten)]
    nats: super::cluster::NatsArgs,
    /// Replicas of the JetStream streams and module bucket cluster mode creates: 3 on a
    /// three-server NATS cluster (production), 1 on a single server.
    #[arg(long, value_name = "N", default_value_t = 1)]
    cluster_replicas: usize,
    /// How long a worker may go unheard before it counts as lost and its attempts fail
    /// ("Host lost") for their retry strategies to decide.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    lease: Duration,
}

/// A duration as people write one: a whole number and a unit (`ms`, `s`, `m`, `h`, `d`), or a
/// bare number of seconds as the other time flags take.
pub(super) fn duration(text: &str) -> Result<Duration, String> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit, such as 30s or 7d"))?;
    let millis = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; use ms, s, m, h or d"
            ));
        }
    };
    number
        .checked_mul(millis)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Where `GET /metrics` is served unless --metrics-listen says otherwise (9464 is the port
/// Prometheus exporters of OpenTelemetry use by convention).
const DEFAULT_METRICS: &str = "127.0.0.1:9464";

/// The exit status after storage failed (`EX_TEMPFAIL`): a restart on a working disk may succeed.
const STORAGE_FAILED: u8 = 75;

impl Serve {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(super::default_data_dir);
        let credentials = credentials_path(&data_dir);
        // Without the file: local-development mode, until a SIGHUP finds one.
        let access = Access::at(&credentials)
            .with_context(|| "cannot load the credentials; fix the file and start again")?;
        if access.is_local() && !self.listen.ip().is_loopback() {
            anyhow::bail!(
                "--listen {}: without credentials any signature is accepted, so only loopback is allowed. \
                 Create a key first: wasmbatch keys create --name NAME --policy FILE --data-dir {}",
                self.listen,
                data_dir.display()
            );
        }
        // Before the first line is printed, so that a signal sent once it is seen is ours: the
        // default actions of SIGHUP and SIGTERM end the process without recording the running
        // attempts.
        let hangups = hangups()?;
        let stop_signal = shutdown_signal()?;
        let mut serving = wasmbatch_api::ServeConfig::default();
        for host in &self.allowed_host {
            serving.origins = serving.origins.allow(host)?;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            serving.tls = Some(wasmbatch_api::Tls::from_pem_files(cert, key)?);
        }
        serving.header_read_timeout = Duration::from_secs(self.header_read_timeout.max(1));
        serving.body_read_timeout = Duration::from_secs(self.body_read_timeout.max(1));
        serving.max_connections = self.max_connections.max(1);
        serving.max_unauthenticated_bodies = self.max_unauthenticated_bodies.max(1);
        let scheme = if serving.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut config = BatchConfig::new(&data_dir);
        config.max_module_bytes = self.max_module_mib << 20;
        config.max_pending_changes = self.max_pending_changes.max(1);
        config.job_retention = self.job_retention;
        config.log_retention = self.log_retention;
        config.event_retention = self.event_retention;
        if let Some(mut cluster) = self.nats.config()? {
            cluster.replicas = self.cluster_replicas.max(1);
            cluster.lease = self.lease.max(Duration::from_millis(100));
            config.cluster = Some(cluster);
        }
        let batch = Batch::open(config)
            .await
            .with_context(|| format!("cannot open the data dir {}", data_dir.display()))?;
        let created = defaults(&batch).await?;
        let metrics = self.metrics_listener().await?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        eprintln!(
            "wasmbatch: serving on {scheme}://{} (data dir {}){}",
            listener.local_addr()?,
            data_dir.display(),
            if created {
                "; created compute environment and job queue `default`"
            } else {
                ""
            }
        );
        if serving.tls.is_none() && !self.listen.ip().is_loopback() {
            eprintln!(
                "wasmbatch: WARNING: plain HTTP on {}: SigV4 protects the integrity of requests, \
                 not their secrecy; anyone on the network path reads job commands, environments \
                 and logs. Serve HTTPS with --tls-cert and --tls-key.",
                self.listen
            );
        }
        if access.is_local() {
            eprintln!(
                "wasmbatch: LOCAL DEVELOPMENT MODE: no {} exists, so signatures are not checked \
                 and every caller may do everything (loopback only). `wasmbatch keys create` makes one; \
                 SIGHUP then switches to checking.",
                credentials.display()
            );
        } else {
            eprintln!(
                "wasmbatch: verifying signatures against {} (SIGHUP reloads it)",
                credentials.display()
            );
        }
        if let Some(metrics) = metrics {
            let mut registry = prometheus_client::registry::Registry::default();
            batch.register_metrics(&mut registry);
            serving.http_metrics.register(&mut registry);
            let address = metrics.local_addr()?;
            eprintln!("wasmbatch: metrics on http://{address}/metrics");
            if !address.ip().is_loopback() {
                eprintln!(
                    "wasmbatch: WARNING: metrics on {address}: anyone who reaches it reads queue \
                     names, job counts and worker names, unauthenticated"
                );
            }
            let app = wasmbatch_api::metrics::metrics_app(std::sync::Arc::new(registry));
            tokio::spawn(async move {
                if let Err(e) = axum::serve(metrics, app).await {
                    eprintln!("wasmbatch: the metrics listener stopped: {e}");
                }
            });
        }
        reload_on_hangup(hangups, access.clone());
        // Attempts are stopped before the HTTP server drains its requests, so the log
        // followers among those see their jobs end instead of holding the exit up.
        let (stopped_sender, stopped) = tokio::sync::oneshot::channel();
        let grace = Duration::from_secs(self.storage_failure_grace);
        let stopping = {
            let batch = batch.clone();
            async move {
                tokio::pin!(stop_signal);
                let failure = tokio::select! {
                    () = &mut stop_signal => None,
                    reason = batch.storage_failed() => {
                        eprintln!(
                            "wasmbatch: STORAGE FAILED: {reason}. Taking no changes and starting no \
                             attempt; serving reads and GET /health (503) for {}s, then exiting \
                             with status {STORAGE_FAILED}",
                            grace.as_secs()
                        );
                        tokio::select! {
                            () = tokio::time::sleep(grace) => {}
                            () = &mut stop_signal => {}
                        }
                        Some(reason)
                    }
                };
                let stopped = batch
                    .shutdown("Host stopped: wasmbatch serve was stopped while the attempt ran")
                    .await;
                let _ = stopped_sender.send((stopped, failure));
            }
        };
        wasmbatch_api::serve_with(listener, batch, access, serving, stopping).await?;
        let (stopped, failure) = stopped.await.context("the shutdown did not finish")?;
        if failure.is_some() {
            // What the stopped attempts did could not be recorded: they count as interrupted
            // at the next start.
            eprintln!("wasmbatch: stopped after a storage failure; restart on a working disk");
            return Ok(ExitCode::from(STORAGE_FAILED));
        }
        let stopped = stopped.context("recording the stopped attempts")?;
        eprintln!(
            "wasmbatch: stopped{}",
            match stopped {
                0 => String::new(),
                1 => "; 1 running attempt was stopped and recorded".into(),
                n => format!("; {n} running attempts were stopped and recorded"),
            }
        );
        Ok(ExitCode::SUCCESS)
    }
}

impl Serve {
    /// The metrics listener --metrics-listen asks for, if any.
    async fn metrics_listener(&self) -> anyhow::Result<Option<tokio::net::TcpListener>> {
        if self.metrics_listen == "off" {
            return Ok(None);
        }
        let address: SocketAddr = self.metrics_listen.parse().with_context(|| {
            format!(
                "--metrics-listen {:?}: expected an address such as 127.0.0.1:9464, or off",
                self.metrics_listen
            )
        })?;
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => Ok(Some(listener)),
            Err(e) if self.metrics_listen == DEFAULT_METRICS => {
                eprintln!(
                    "wasmbatch: no metrics: cannot listen on {address} ({e}); choose another \
                     address with --metrics-listen, or off"
                );
                Ok(None)
            }
            Err(e) => {
                Err(e).with_context(|| format!("cannot listen on --metrics-listen {address}"))
            }
        }
    }
}

/// SIGHUPs from now on, instead of their default action (ending the process).
#[cfg(unix)]
fn hangups() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot watch for SIGHUP")
}

#[cfg(not(unix))]
fn hangups() -> anyhow::Result<()> {
    Ok(())
}

/// Reads the credentials file again on each SIGHUP, in every mode: a file that appeared ends
/// local-development mode; a file with a mistake leaves the keys in force as they were.
#[cfg(unix)]
fn reload_on_hangup(mut hangups: tokio::signal::unix::Signal, access: Access) {
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let was_local = access.is_local();
            match access.reload() {
                Ok(_) if access.is_local() => {
                    eprintln!("wasmbatch: no credentials file yet: still in local-development mode")
                }
                Ok(keys) if was_local => eprintln!(
                    "wasmbatch: credentials file found: now verifying signatures ({keys} keys)"
                ),
                Ok(keys) => eprintln!("wasmbatch: credentials reloaded: {keys} keys"),
                Err(e) => eprintln!("wasmbatch: credentials NOT reloaded, the old keys stay: {e}"),
            }
        }
    });
}

#[cfg(not(unix))]
fn reload_on_hangup(_: (), _: Access) {}

/// Creates `default` environment and queue when the service has none.
pub(super) async fn defaults(batch: &Batch) -> anyhow::Result<bool> {
    if !batch.describe_job_queues(&[]).is_empty()
        || !batch.describe_compute_environments(&[]).is_empty()
    {
        return Ok(false);
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    batch
        .create_compute_environment(serde_json::from_value(serde_json::json!({
            "computeEnvironmentName": "default", "type": "MANAGED",
            "computeResources": {"type": "EC2", "maxvCpus": cores}
        }))?)
        .await?;
    batch
        .create_job_queue(serde_json::from_value(serde_json::json!({
            "jobQueueName": "default", "priority": 1,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "default"}]
        }))?)
        .await?;
    Ok(true)
}

/// Resolves on SIGINT or SIGTERM; the handlers are installed now, not when it is first awaited.
#[cfg(unix)]
pub(super) fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
pub(super) fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_with_their_units() {
        assert_eq!(duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert!(duration("7 days").unwrap_err().contains("unknown unit"));
        assert!(duration("d").is_err());
        assert!(duration("-1s").is_err());
    }
}
