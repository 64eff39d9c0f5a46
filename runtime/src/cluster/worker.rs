//! `wasmbatch worker`: remote capacity for one UNMANAGED compute environment. It announces
//! itself with heartbeats (which the control plane answers with a lease), pulls the attempts
//! placed on it from its own durable consumer, fetches each module by digest from the object
//! store and checks its sha256 before compiling it, runs it with the same [`Executor`] as the
//! server does, sends its output and its end as reports, and acknowledges the work message only
//! once its end is stored in JetStream. It stops, by itself, every attempt it no longer holds:
//! those its lease leaves out, and all of them when it cannot renew its lease in time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull, message::PublishMessage};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::wire::{self, Heartbeat, Lease, Report, WireOutcome, Work};
use super::{ClusterConfig, ClusterError};
use crate::batch::now;
use crate::engine::{
    AttemptSpec, Digest, Executor, ExecutorConfig, FailureKind, JobModule, KillSwitch, Limits,
    Outcome, StreamKind,
};

/// How a worker is set up.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How to reach NATS.
    pub cluster: ClusterConfig,
    /// Its name: unique among the workers and stable across restarts (one subject token).
    pub name: String,
    /// The UNMANAGED compute environment it gives capacity to.
    pub compute_environment: String,
    /// The vCPUs it offers.
    pub vcpus: f64,
    /// The memory it offers, in MiB.
    pub memory_mib: u64,
    /// Where volumes' host paths live on this machine; `None`: jobs with volumes fail here.
    pub volume_root: Option<PathBuf>,
    /// The executor (its data dir holds compiled modules and scratch directories).
    pub executor: ExecutorConfig,
    /// The largest module it fetches, in bytes (64 MiB by default, as the server takes).
    pub max_module_bytes: u64,
}

impl WorkerConfig {
    /// Defaults for a worker named `name` serving `compute_environment`, with its files under
    /// `data_dir`.
    pub fn new(
        cluster: ClusterConfig,
        name: impl Into<String>,
        compute_environment: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            cluster,
            name: name.into(),
            compute_environment: compute_environment.into(),
            vcpus: std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
            memory_mib: 4096,
            volume_root: None,
            executor: ExecutorConfig::new(data_dir.into()),
            max_module_bytes: 64 << 20,
        }
    }
}

/// A running worker.
pub struct Worker {
    inner: Arc<Inner>,
}

type Key = (String, u32);
type Lines = Vec<(StreamKind, String)>;

struct Inner {
    config: WorkerConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    executor: Executor,
    /// A fresh id per process: attempts given to an earlier one are refused.
    session: String,
    host: String,
    running: Mutex<HashMap<Key, Running>>,
    /// Attempts ended lately, so a duplicate delivery is not run again.
    finished: Mutex<(VecDeque<Key>, HashSet<Key>)>,
    modules: Mutex<HashMap<Digest, JobModule>>,
    /// When the last heartbeat that was answered with a lease was sent, and the lease.
    renewed: Mutex<(Instant, Duration)>,
    /// The attempts that lease said this worker holds.
    held: Mutex<HashSet<Key>>,
    /// Its vCPUs (in thousandths) and memory (MiB) free: an attempt starts once it has its
    /// share of both, so a worker given more than it holds at once (short attempts are
    /// pipelined) runs no more than its capacity.
    vcpus_free: tokio::sync::Semaphore,
    memory_free: tokio::sync::Semaphore,
    /// Reports on their way, in order (see [`send_reports`]).
    reports: tokio::sync::mpsc::UnboundedSender<Outgoing>,
}

/// A report to send, and who to tell once JetStream has stored it.
type Outgoing = (Report, Option<tokio::sync::oneshot::Sender<()>>);

/// The acknowledgement of one work message, shared by the attempts it carried: the message is
/// acknowledged when the last of them lets go of it (see [`let_go`]).
type SharedAck = Arc<jetstream::message::Acker>;

/// Acknowledges the work message once no attempt it carried holds it any more.
fn let_go(ack: SharedAck) {
    if let Some(acker) = Arc::into_inner(ack) {
        tokio::spawn(async move {
            let _ = acker.ack().await;
        });
    }
}

struct Running {
    kill: KillSwitch,
    received: Instant,
    acker: Option<SharedAck>,
}

const FINISHED_KEPT: usize = 16_384;

/// vCPUs in thousandths, at least one.
fn milli(vcpus: f64) -> u32 {
    ((vcpus * 1000.0).ceil() as u32).max(1)
}
const MODULES_KEPT: usize = 256;

impl Worker {
    /// Connects and registers: returns once the control plane has answered the first
    /// heartbeat with a lease (an error if it refused this worker).
    pub async fn start(config: WorkerConfig) -> Result<Self, ClusterError> {
        if !wire::valid_worker_name(&config.name) {
            return Err(ClusterError::Config(format!(
                "--name {:?}: a worker name is 1 to 64 of A-Z a-z 0-9 - _",
                config.name
            )));
        }
        if config.vcpus.is_nan() || config.vcpus <= 0.0 || config.memory_mib == 0 {
            return Err(ClusterError::Config(
                "--vcpus and --memory must be more than 0".into(),
            ));
        }
        let client = config
            .cluster
            .connect(
                &format!("wasmbatch worker {}", config.name),
                Some(format!("_INBOX.{}", config.name)),
            )
            .await?;
        let js = jetstream::new(client.clone());
        let executor = Executor::new(config.executor.clone())?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let session = uuid::Uuid::new_v4().to_string();
        let (reports, outgoing) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(send_reports(
            js.clone(),
            wire::report_subject(&config.name),
            session.clone(),
            outgoing,
        ));
        let inner = Arc::new(Inner {
            client,
            js,
            reports,
            executor,
            session,
            host,
            running: Mutex::default(),
            finished: Mutex::default(),
            modules: Mutex::default(),
            renewed: Mutex::new((Instant::now(), config.cluster.lease)),
            held: Mutex::default(),
            vcpus_free: tokio::sync::Semaphore::new(milli(config.vcpus) as usize),
            memory_free: tokio::sync::Semaphore::new(
                config.memory_mib.min(u32::MAX as u64) as usize
            ),
            config,
        });
        // Registered before it takes work: a refused worker runs nothing.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match inner.heartbeat().await {
                Ok(()) => break,
                Err(e @ ClusterError::Refused(_)) => return Err(e),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(e) => {
                    tracing::info!("worker: waiting for the control plane: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        Ok(Self { inner })
    }

    /// Its session id (new at each start).
    pub fn session(&self) -> &str {
        &self.inner.session
    }

    /// Runs until `shutdown` resolves (then stops its attempts, which their retry strategies
    /// decide on) or the control plane refuses it.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ClusterError> {
        let inner = self.inner;
        let beats = tokio::spawn(inner.clone().beat());
        let pulls = tokio::spawn(inner.clone().pull());
        let result = tokio::select! {
            () = shutdown => Ok(()),
            beat = beats => beat.unwrap_or_else(|e| Err(ClusterError::Nats(e.to_string()))),
        };
        pulls.abort();
        inner.kill_all("the worker is shutting down");
        // Their ends are reported before the process goes.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !inner.lock_running().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        result
    }
}

impl Inner {
    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kill_all(&self, reason: &str) {
        for run in self.lock_running().values() {
            run.kill.kill(reason);
        }
    }

    fn is_finished(&self, key: &Key) -> bool {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .contains(key)
    }

    fn mark_finished(&self, key: Key) {
        let mut finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        if finished.1.insert(key.clone()) {
            finished.0.push_back(key);
        }
        while finished.0.len() > FINISHED_KEPT {
            if let Some(old) = finished.0.pop_front() {
                finished.1.remove(&old);
            }
        }
    }

    /// Heartbeats every interval; ends only when the control plane refuses this worker.
    async fn beat(self: Arc<Self>) -> Result<(), ClusterError> {
        let interval = self.config.cluster.heartbeat;
        loop {
            tokio::time::sleep(interval).await;
            // Looked at before the heartbeat too: a process resumed after a pause must stop
            // what it no longer holds before anything else.
            self.stop_if_lapsed();
            match self.heartbeat().await {
                Err(e @ ClusterError::Refused(_)) => return Err(e),
                Err(e) => tracing::warn!("worker: {e}"),
                Ok(()) => {}
            }
            self.stop_if_lapsed();
        }
    }

    /// Kills every attempt once the lease is about to lapse unrenewed. The control plane counts
    /// the lease from when it heard the heartbeat, which is after it was sent: stopping a
    /// margin before the lease counted from the send means this worker has stopped before
    /// anyone else is given its attempts.
    fn stop_if_lapsed(&self) {
        let (renewed, lease) = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        let margin = lease / 5;
        let silent = renewed.elapsed();
        if silent + margin > lease && !self.lock_running().is_empty() {
            let reason = format!(
                "Host lost: worker {} could not renew its lease for {:.1} s and stopped the attempt",
                self.config.name,
                silent.as_secs_f64()
            );
            tracing::warn!("{reason}");
            self.kill_all(&reason);
        }
    }

    /// One heartbeat, and what its lease says: stop what is not held, and what is to stop.
    async fn heartbeat(&self) -> Result<(), ClusterError> {
        let sent = Instant::now();
        let running: Vec<Key> = self.lock_running().keys().cloned().collect();
        let heartbeat = Heartbeat {
            session: self.session.clone(),
            compute_environment: self.config.compute_environment.clone(),
            host: self.host.clone(),
            vcpus: self.config.vcpus,
            memory_mib: self.config.memory_mib,
            running,
        };
        let body = serde_json::to_vec(&heartbeat).expect("serialisable");
        let wait = (self.config.cluster.heartbeat * 2).max(Duration::from_millis(500));
        let reply = tokio::time::timeout(
            wait,
            self.client
                .request(wire::heartbeat_subject(&self.config.name), body.into()),
        )
        .await
        .map_err(|_| ClusterError::Nats("no answer to the heartbeat".into()))?
        .map_err(|e| ClusterError::Nats(format!("heartbeat: {e}")))?;
        let lease: Lease = serde_json::from_slice(&reply.payload)
            .map_err(|e| ClusterError::Nats(format!("a lease that does not parse: {e}")))?;
        if let Some(reason) = lease.refused {
            return Err(ClusterError::Refused(reason));
        }
        let hold: HashSet<Key> = lease.hold.into_iter().collect();
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = hold.clone();
        *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) =
            (sent, Duration::from_millis(lease.lease_ms));
        let mut progress = Vec::new();
        {
            let running = self.lock_running();
            for (key, run) in running.iter() {
                // One received after this heartbeat left may be newer than the lease's list.
                if !hold.contains(key) && run.received < sent {
                    run.kill.kill(format!(
                        "Host lost: the control plane no longer assigns this attempt to worker {}",
                        self.config.name
                    ));
                } else if let Some(acker) = &run.acker
                    && !progress.iter().any(|a| Arc::ptr_eq(a, acker))
                {
                    progress.push(acker.clone());
                }
            }
            for (job, attempt, reason) in &lease.stop {
                if let Some(run) = running.get(&(job.clone(), *attempt)) {
                    run.kill.kill(reason.clone());
                }
            }
        }
        // Keeps JetStream from handing the messages out again while they run.
        for acker in progress {
            let _ = acker.ack_with(AckKind::Progress).await;
        }
        Ok(())
    }

    /// Pulls this worker's attempts and starts each.
    async fn pull(self: Arc<Self>) {
        let name = &self.config.name;
        loop {
            let consumer = async {
                let stream = self
                    .js
                    .get_stream(wire::WORK_STREAM)
                    .await
                    .map_err(|e| format!("stream {}: {e}", wire::WORK_STREAM))?;
                stream
                    .get_or_create_consumer::<pull::Config>(
                        &wire::worker_consumer(name),
                        pull::Config {
                            durable_name: Some(wire::worker_consumer(name)),
                            filter_subject: wire::work_subject(name),
                            ack_policy: jetstream::consumer::AckPolicy::Explicit,
                            ack_wait: self.config.cluster.lease,
                            max_ack_pending: 10_000,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| format!("consumer {}: {e}", wire::worker_consumer(name)))
            };
            let consumer = match consumer.await {
                Ok(consumer) => consumer,
                Err(e) => {
                    tracing::warn!("worker: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut messages = match consumer.messages().await {
                Ok(messages) => messages,
                Err(e) => {
                    tracing::warn!("worker: pulling: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            while let Some(message) = messages.next().await {
                match message {
                    Ok(message) => self.clone().take(message).await,
                    Err(e) => tracing::warn!("worker: pulling: {e}"),
                }
            }
        }
    }

    /// One delivered work message: runs each attempt in it, unless it is not this session's or
    /// already seen; the message is acknowledged once all of them are done with it.
    async fn take(self: Arc<Self>, message: jetstream::Message) {
        let (message, acker) = message.split();
        let batch: Vec<Work> = match serde_json::from_slice(&message.payload) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!("worker: a work message that does not parse: {e}; dropped");
                let _ = acker.ack_with(AckKind::Term).await;
                return;
            }
        };
        let ack: SharedAck = Arc::new(acker);
        for work in batch {
            self.clone().take_one(work, ack.clone());
        }
        let_go(ack);
    }

    fn take_one(self: Arc<Self>, work: Work, ack: SharedAck) {
        let key = (work.job.clone(), work.attempt);
        if work.session != self.session {
            // Given to an earlier process of this name: the control plane fails it as a lost
            // host once it hears from this one.
            tracing::info!(job = %work.job, attempt = work.attempt, "worker: dropped an attempt given to an earlier session");
            return let_go(ack);
        }
        if self.is_finished(&key) {
            return let_go(ack);
        }
        if self.lapsed() {
            // Delivered while this worker could not renew its lease (a pause, a partition):
            // the control plane may have given the job to another worker since. It runs only
            // if the next lease still names it.
            tokio::spawn(async move {
                if self.held_after_renewal(&key).await {
                    self.start(work, ack);
                } else {
                    tracing::warn!(job = %work.job, attempt = work.attempt, "worker: dropped an attempt its lease no longer names");
                    let_go(ack);
                }
            });
            return;
        }
        self.start(work, ack);
    }

    /// Whether the lease is about to lapse unrenewed (see [`Inner::stop_if_lapsed`]).
    fn lapsed(&self) -> bool {
        let (renewed, lease) = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        renewed.elapsed() + lease / 5 > lease
    }

    /// Waits for a heartbeat sent from now on to be answered (two leases at most), and says
    /// whether its lease names `key`.
    async fn held_after_renewal(&self, key: &Key) -> bool {
        let asked = Instant::now();
        loop {
            let (renewed, lease) = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
            if renewed > asked {
                return self
                    .held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(key);
            }
            if asked.elapsed() > lease * 2 {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts an attempt this worker holds, unless it already runs it.
    fn start(self: Arc<Self>, work: Work, ack: SharedAck) {
        let key = (work.job.clone(), work.attempt);
        let kill = KillSwitch::new();
        {
            let mut running = self.lock_running();
            if running.contains_key(&key) {
                // A redelivery of what runs here: the first delivery's attempt reports it.
                drop(running);
                return let_go(ack);
            }
            running.insert(
                key.clone(),
                Running {
                    kill: kill.clone(),
                    received: Instant::now(),
                    acker: Some(ack),
                },
            );
        }
        tokio::spawn(self.attempt(work, kill));
    }

    /// Runs one attempt and reports it.
    async fn attempt(self: Arc<Self>, work: Work, kill: KillSwitch) {
        let key = (work.job.clone(), work.attempt);
        let (started_at, outcome, lines) = self.run_one(&work, kill).await;
        let ended = Report::Ended {
            job: work.job.clone(),
            attempt: work.attempt,
            session: self.session.clone(),
            started_at,
            outcome: WireOutcome::from(&outcome),
            lines,
        };
        // Its work is acknowledged only once its end is stored: a worker killed before that
        // leaves the attempt to the control plane's lease.
        self.report_stored(ended).await;
        let run = self.lock_running().remove(&key);
        self.mark_finished(key);
        if let Some(ack) = run.and_then(|r| r.acker) {
            let_go(ack);
        }
    }

    /// Runs one attempt: when the guest started, how it ended, and its last lines.
    async fn run_one(&self, work: &Work, kill: KillSwitch) -> (Option<i64>, Outcome, Lines) {
        let module = match self.module(work).await {
            Ok(module) => module,
            Err(reason) => {
                return (
                    None,
                    Outcome::not_started(
                        FailureKind::ModuleInvalid,
                        format!("CannotPullContainerError: {reason}"),
                    ),
                    Vec::new(),
                );
            }
        };
        let grants = match self.volumes(work).await {
            Ok(grants) => grants,
            Err(reason) => {
                return (
                    None,
                    Outcome::not_started(
                        FailureKind::HostError,
                        format!("CannotCreateContainerError: {reason}"),
                    ),
                    Vec::new(),
                );
            }
        };
        // Its share of this worker's capacity, or a stop while it waits for it.
        let vcpus = milli(work.vcpus).min(milli(self.config.vcpus));
        let memory = ((work.memory_bytes >> 20) as u32).min(self.config.memory_mib as u32);
        let room = async {
            let vcpus = self.vcpus_free.acquire_many(vcpus).await;
            let memory = self.memory_free.acquire_many(memory).await;
            (vcpus, memory)
        };
        let _room = tokio::select! {
            room = room => Some(room),
            () = kill.killed() => None,
        };
        if kill.is_killed() {
            return (
                None,
                Outcome::not_started(
                    FailureKind::Killed,
                    format!("{} (before it started)", kill.reason()),
                ),
                Vec::new(),
            );
        }
        let started_at = now();
        let started = Report::Started {
            job: work.job.clone(),
            attempt: work.attempt,
            session: self.session.clone(),
            at: started_at,
        };
        // Not waited for: reports are stored in the order they are sent, so it is stored before
        // the end is, and a short attempt's start and end often go in one message.
        self.report_later(started);
        let (lines, receive) = tokio::sync::mpsc::unbounded_channel();
        let flusher = tokio::spawn(self.flush_logs(work.job.clone(), work.attempt, receive));
        let spec = AttemptSpec {
            args: work.args.clone(),
            env: work.env.clone(),
            stdin: None,
            grants,
            limits: Limits {
                memory_bytes: work.memory_bytes,
                fuel: work.fuel,
                timeout: Duration::from_millis(work.timeout_ms),
            },
            // Bounded by the executor's caps on each stream.
            output: Arc::new(move |stream: StreamKind, line: &str| {
                let _ = lines.send((stream, line.to_string()));
            }),
            kill: Some(kill),
        };
        let outcome = self.executor.run(&module, spec).await;
        // The sink went with the spec: the flusher sends what is left and ends.
        let last = flusher.await.unwrap_or_default();
        (Some(started_at), outcome, last)
    }

    /// Sends the guest's lines in batches as they come; returns the batch still open when the
    /// guest ended, for the end's own report.
    fn flush_logs(
        &self,
        job: String,
        attempt: u32,
        mut lines: tokio::sync::mpsc::UnboundedReceiver<(StreamKind, String)>,
    ) -> impl Future<Output = Lines> + Send + 'static {
        let reports = self.reports.clone();
        let session = self.session.clone();
        async move {
            while let Some(first) = lines.recv().await {
                // Up to 20 ms for more lines to join, so a chatty guest is a few reports.
                let gather = tokio::time::Instant::now() + Duration::from_millis(20);
                let mut bytes = first.1.len();
                let mut batch = vec![first];
                while bytes < wire::BATCH_BYTES / 2 {
                    match tokio::time::timeout_at(gather, lines.recv()).await {
                        Ok(Some(line)) => {
                            bytes += line.1.len() + 8;
                            batch.push(line);
                        }
                        Ok(None) => return batch,
                        Err(_) => break,
                    }
                }
                let report = Report::Log {
                    job: job.clone(),
                    attempt,
                    session: session.clone(),
                    lines: batch,
                };
                let _ = reports.send((report, None));
            }
            Vec::new()
        }
    }

    /// Queues a report; it is stored after every report queued before it.
    fn report_later(&self, report: Report) {
        let _ = self.reports.send((report, None));
    }

    /// Queues a report and waits until JetStream has stored it (and every one before it).
    async fn report_stored(&self, report: Report) {
        let (stored, done) = tokio::sync::oneshot::channel();
        if self.reports.send((report, Some(stored))).is_ok() {
            let _ = done.await;
        }
    }

    /// The module a work message names: from this worker's cache, or fetched from the object
    /// store, checked against its digest, and compiled.
    async fn module(&self, work: &Work) -> Result<JobModule, String> {
        let digest = Digest::parse(&work.digest)
            .ok_or_else(|| format!("{:?} is not a module digest", work.digest))?;
        if let Some(module) = self
            .modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
        {
            return Ok(module.clone());
        }
        let max = self.config.max_module_bytes;
        if work.module_bytes > max {
            return Err(format!(
                "module {digest} is {} bytes; this worker takes at most {max}",
                work.module_bytes
            ));
        }
        // NATS may be electing a leader or restarting: a fetch is tried for a while before the
        // attempt fails for it.
        let deadline = Instant::now() + Duration::from_secs(30);
        let bytes = loop {
            match self.fetch(&digest, work.module_bytes, max).await {
                Ok(bytes) => break bytes,
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!("worker: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(format!(
                "module {digest}: the object store holds other bytes ({actual}, {} bytes); refused",
                bytes.len()
            ));
        }
        let module = self.executor.load(bytes).await.map_err(|e| e.to_string())?;
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if modules.len() >= MODULES_KEPT
            && let Some(old) = modules.keys().next().copied()
        {
            modules.remove(&old);
        }
        modules.insert(digest, module.clone());
        Ok(module)
    }

    /// The bytes of object `digest`, at most `max` of them.
    async fn fetch(&self, digest: &Digest, expected: u64, max: u64) -> Result<Vec<u8>, String> {
        let bucket = self
            .js
            .get_object_store(wire::MODULE_BUCKET)
            .await
            .map_err(|e| format!("object store {}: {e}", wire::MODULE_BUCKET))?;
        let mut object = bucket.get(digest.hex()).await.map_err(|e| {
            format!(
                "module {digest} is not in object store {}: {e}",
                wire::MODULE_BUCKET
            )
        })?;
        let mut bytes = Vec::with_capacity(expected.min(max) as usize);
        (&mut object)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| {
                format!("module {digest}: reading it from the object store failed: {e}")
            })?;
        Ok(bytes)
    }

    async fn volumes(&self, work: &Work) -> Result<Vec<crate::engine::DirGrant>, String> {
        if work.mounts.is_empty() {
            return Ok(Vec::new());
        }
        let Some(root) = self.config.volume_root.clone() else {
            return Err(format!(
                "worker {} has no --volume-root: it grants no volumes",
                self.config.name
            ));
        };
        let mounts: Vec<_> = work
            .mounts
            .iter()
            .map(|(path, guest, ro)| (PathBuf::from(path), guest.clone(), *ro))
            .collect();
        crate::scheduler::open_volumes(root, &mounts).await
    }
}

/// Publishes the worker's reports in the order they were queued, as many in one message as
/// accumulated while the previous message was being stored (one stored write, one
/// acknowledgement for the control plane, for a whole burst of short attempts), each message
/// until JetStream has stored it (a retry has the same id, so it is never stored twice); then
/// tells whoever waits on a report in it.
async fn send_reports(
    js: jetstream::Context,
    subject: String,
    session: String,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut seq = 0u64;
    let mut next = None;
    let mut last_batch = 0;
    loop {
        let first = match next.take() {
            Some(first) => first,
            None => match queue.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        if last_batch >= wire::BUSY_BATCH {
            tokio::time::sleep(wire::BUSY_LINGER).await;
        }
        let mut items = Vec::new();
        let mut waiting = Vec::new();
        let mut bytes = 0;
        let mut item = Some(first);
        while let Some((report, stored)) = item.take() {
            let body = serde_json::to_vec(&report).expect("serialisable");
            if !items.is_empty() && bytes + body.len() > wire::BATCH_BYTES {
                next = Some((report, stored));
                break;
            }
            bytes += body.len() + 1;
            items.push(body);
            waiting.extend(stored);
            item = queue.try_recv().ok();
        }
        seq += 1;
        last_batch = items.len();
        let body = bytes::Bytes::from(wire::json_array(&items));
        let id = wire::report_message_id(&session, seq);
        let mut backoff = Duration::from_millis(50);
        loop {
            let publish = PublishMessage::build()
                .payload(body.clone())
                .message_id(&id);
            let error = match js.send_publish(subject.clone(), publish).await {
                Ok(ack) => match ack.await {
                    Ok(_) => break,
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            tracing::warn!("worker: {} report(s) {id}: {error}; retrying", items.len());
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        for stored in waiting {
            let _ = stored.send(());
        }
    }
}
