//! The control plane's side of cluster mode. A placed attempt is journaled (the job's
//! `RemoteHolder`, committed to redb) before it is published to its worker's subject, so a
//! restarted control plane knows who holds what. Reports are applied only when they come from
//! the worker that holds the job's current attempt, in the session it was given to (the fence:
//! a late or forged report changes nothing), and acknowledged only once what they changed is
//! committed. Heartbeats are answered with a lease naming the attempts the worker holds and
//! those to stop; a worker unheard for a lease is lost, and its attempts fail with "Host lost"
//! for their retry strategy to decide.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, message::PublishMessage};
use futures_util::StreamExt;

use super::wire::{self, Heartbeat, Lease, Report, Work};
use super::{ClusterConfig, ClusterError};
use crate::batch::state::{Placement, WorkerSlot};
use crate::batch::{Batch, Shared, State, now};
use crate::engine::{Digest, FailureKind, Outcome};
use crate::model::{ComputeEnvironmentType, EpochMillis, JobStatus, RemoteHolder};
use crate::modules::Resolved;
use crate::scheduler::{AttemptPlan, abandon, complete, complete_locked, release};

/// Most workers at once: each heartbeat from a new name adds one, so there is a bound.
const MAX_WORKERS: usize = 4096;

/// The control plane's connection to NATS.
pub(crate) struct Link {
    client: async_nats::Client,
    js: jetstream::Context,
    modules: jetstream::object_store::ObjectStore,
    /// Sizes of the modules known to be in the bucket, by digest.
    pushed: Mutex<HashMap<Digest, u64>>,
    /// One push at a time, so a burst of jobs of a new module puts it once.
    pushing: tokio::sync::Mutex<()>,
    /// Journaled attempts waiting to be published, by worker.
    outbox: Mutex<HashMap<String, Outbox>>,
    lease: Duration,
}

/// A worker's attempts on their way: one message at a time is being stored, and what is
/// journaled meanwhile goes in the next, so a burst of short jobs costs a few stored messages
/// (a write and an fsync each on every NATS server), not one per attempt.
#[derive(Default)]
struct Outbox {
    /// (job, attempt, the work serialised).
    waiting: Vec<(String, u32, String)>,
    /// Whether a task is publishing this worker's messages.
    sending: bool,
}

/// A worker as `wasmbatch workers` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    /// Its name.
    pub name: String,
    /// The UNMANAGED environment it serves.
    pub compute_environment: String,
    /// Its host name.
    pub host: String,
    /// Its vCPUs and memory (MiB).
    pub vcpus: f64,
    /// Its memory, in MiB.
    pub memory_mib: u64,
    /// vCPUs its attempts hold.
    pub used_vcpus: f64,
    /// Attempts it holds now.
    pub running_attempts: usize,
    /// When its last heartbeat arrived.
    pub last_heartbeat_at: EpochMillis,
}

impl Batch {
    /// The live remote workers (cluster mode), by name; empty otherwise.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        let state = self.shared.lock();
        state
            .workers
            .iter()
            .map(|(name, w)| WorkerInfo {
                name: name.clone(),
                compute_environment: w.environment.clone(),
                host: w.host.clone(),
                vcpus: w.vcpus,
                memory_mib: w.memory_mib,
                used_vcpus: w.used_vcpus,
                running_attempts: state
                    .remote
                    .values()
                    .filter(|r| r.placement.worker.as_deref() == Some(name))
                    .count(),
                last_heartbeat_at: w.last_heard_at,
            })
            .collect()
    }
}

/// Connects, makes sure the streams exist, and starts the tasks that apply reports, answer
/// heartbeats and find lost workers; re-publishes the journaled attempts that had not started.
pub(crate) async fn start(
    shared: &Arc<Shared>,
    config: &ClusterConfig,
) -> Result<Arc<Link>, ClusterError> {
    let client = config.connect("wasmbatch control plane", None).await?;
    let js = jetstream::new(client.clone());
    super::ensure_streams(&js, config.replicas).await?;
    let modules = js
        .get_object_store(wire::MODULE_BUCKET)
        .await
        .map_err(|e| ClusterError::Nats(format!("object store {}: {e}", wire::MODULE_BUCKET)))?;
    let stream = js
        .get_stream(wire::REPORT_STREAM)
        .await
        .map_err(|e| ClusterError::Nats(format!("stream {}: {e}", wire::REPORT_STREAM)))?;
    // Made afresh at each start: on a work-queue stream a new consumer begins at the first
    // report not acknowledged, so what a killed predecessor had received but not yet applied
    // comes at once, not after the old deliveries' ack wait. One control plane per streams.
    match stream.delete_consumer(wire::CONTROL_CONSUMER).await {
        Ok(_) => {}
        Err(e) if e.to_string().contains("not found") => {}
        Err(e) => tracing::warn!("cluster mode: replacing the reports consumer: {e}"),
    }
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            wire::CONTROL_CONSUMER,
            pull::Config {
                durable_name: Some(wire::CONTROL_CONSUMER.into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(10),
                max_ack_pending: 20_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ClusterError::Nats(format!("consumer {}: {e}", wire::CONTROL_CONSUMER)))?;
    let heartbeats = client
        .subscribe("wb.hb.*")
        .await
        .map_err(|e| ClusterError::Nats(format!("subscribing to heartbeats: {e}")))?;
    let link = Arc::new(Link {
        client,
        js,
        modules,
        pushed: Mutex::default(),
        pushing: tokio::sync::Mutex::new(()),
        outbox: Mutex::default(),
        lease: config.lease,
    });
    // Attempts a previous process journaled: their logs take lines again, and those not
    // started are published again (deduplicated if they were).
    let unstarted: Vec<(String, String, u32, String)> = {
        let state = shared.lock();
        for remote in state.remote.values() {
            shared.logs.open(&remote.placement.log_key);
        }
        state
            .remote
            .iter()
            .filter(|(_, r)| !r.started)
            .filter_map(|(id, r)| {
                let holder = state.jobs.get(id.as_str())?.remote.as_deref()?;
                Some((
                    holder.worker.clone(),
                    id.clone(),
                    r.attempt,
                    holder.work.clone(),
                ))
            })
            .collect()
    };
    if !unstarted.is_empty() {
        tracing::info!(
            "cluster mode: publishing again {} attempt(s) the previous process journaled that had not started",
            unstarted.len()
        );
    }
    for (worker, job, attempt, work) in unstarted {
        link.send_work(shared, worker, job, attempt, work);
    }
    tokio::spawn(apply_reports(Arc::downgrade(shared), consumer));
    tokio::spawn(answer_heartbeats(
        Arc::downgrade(shared),
        link.clone(),
        heartbeats,
    ));
    tokio::spawn(find_lost_workers(Arc::downgrade(shared), link.clone()));
    Ok(link)
}

/// Journals the attempts one scheduling pass placed on workers, in one write, and publishes
/// each to its worker once that write is committed (one task and one wait for a whole pass,
/// however many attempts it placed).
pub(crate) async fn dispatch(shared: Arc<Shared>, link: Arc<Link>, plans: Vec<AttemptPlan>) {
    // Every submit before the latest one is committed once it is: the store commits in order.
    let durable = plans.iter().map(|p| p.durable).max().unwrap_or(0);
    if let Err(e) = shared.store.committed(durable).await {
        for plan in &plans {
            tracing::warn!(job = %plan.job_id, "not dispatching an attempt: {e}");
            abandon(&shared, &plan.placement());
        }
        return;
    }
    let mut ready = Vec::with_capacity(plans.len());
    for plan in plans {
        match link.push_module(&shared, &plan.image).await {
            Ok(module) => ready.push((plan, module)),
            Err(reason) => {
                let placement = plan.placement();
                let outcome = Outcome::not_started(
                    FailureKind::ModuleInvalid,
                    format!("CannotPullContainerError: {reason}"),
                );
                shared.logs.finish(&placement.log_key);
                drop(complete(&shared, &placement, None, &outcome));
                shared.wake.notify_one();
            }
        }
    }
    let (works, write) = {
        let mut state = shared.lock();
        let works: Vec<_> = ready
            .into_iter()
            .filter_map(|(plan, module)| journal(&mut state, plan, module))
            .collect();
        (works, shared.send_changes(&mut state))
    };
    // Published only once journaled: a restarted control plane then knows the worker holds it.
    if let Some(write) = write
        && let Err(e) = write.await
    {
        tracing::warn!("not dispatching {} attempt(s): {e}", works.len());
        return;
    }
    for (worker, job, attempt, work) in works {
        link.send_work(&shared, worker, job, attempt, work);
    }
}

/// Records on its job that `plan`'s worker holds the attempt, with the work message it is
/// sent; `None` if the attempt is no longer current (its worker was lost since placement, so
/// its attempts were failed or put back with it). Returns (worker, job, attempt, work).
fn journal(
    state: &mut State,
    plan: AttemptPlan,
    module: (Resolved, u64),
) -> Option<(String, String, u32, String)> {
    let placement = plan.placement();
    let worker = placement.worker.clone().expect("a remote plan");
    let session = state.workers.get(&worker)?.session.clone();
    let remote = state
        .remote
        .get_mut(&plan.job_id)
        .filter(|r| r.attempt == plan.attempt)?;
    remote.session = session.clone();
    remote.placement.image_digest = Some(module.0.image);
    let work = Work {
        job: plan.job_id.clone(),
        attempt: plan.attempt,
        session: session.clone(),
        digest: module.0.module.to_string(),
        module_bytes: module.1,
        args: plan.spec.args.clone(),
        env: plan.spec.env.clone(),
        vcpus: plan.vcpus,
        memory_bytes: plan.spec.limits.memory_bytes,
        fuel: plan.spec.limits.fuel,
        timeout_ms: plan.spec.limits.timeout.as_millis() as u64,
        mounts: plan
            .mounts
            .iter()
            .map(|(path, guest, ro)| (path.display().to_string(), guest.clone(), *ro))
            .collect(),
    };
    let work = serde_json::to_string(&work).expect("serialisable");
    let job = state.jobs.get_mut(plan.job_id.as_str())?;
    job.remote = Some(Box::new(RemoteHolder {
        worker: worker.clone(),
        session,
        attempt: plan.attempt,
        environment: placement.environment.clone(),
        vcpus: placement.vcpus,
        memory_mib: placement.memory_mib,
        log_stream_name: placement.log_stream_name.clone(),
        work: work.clone(),
    }));
    state.touch_job(&plan.job_id);
    Some((worker, plan.job_id, plan.attempt, work))
}

impl Link {
    /// Queues a journaled attempt for its worker, and starts publishing that worker's queue if
    /// nothing is publishing it.
    fn send_work(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        worker: String,
        job: String,
        attempt: u32,
        work: String,
    ) {
        let start = {
            let mut outbox = self.lock_outbox();
            let queue = outbox.entry(worker.clone()).or_default();
            queue.waiting.push((job, attempt, work));
            !std::mem::replace(&mut queue.sending, true)
        };
        if start {
            tokio::spawn(publish_work(Arc::downgrade(shared), self.clone(), worker));
        }
    }

    fn lock_outbox(&self) -> std::sync::MutexGuard<'_, HashMap<String, Outbox>> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What `image` resolved to and its module's size, the module put in the bucket if it is
    /// not there.
    async fn push_module(&self, shared: &Shared, image: &str) -> Result<(Resolved, u64), String> {
        let resolved = shared
            .modules
            .resolve_image(image, shared.config.max_module_bytes)
            .await?;
        #[cfg(feature = "registry")]
        for dropped in shared.modules.take_evicted() {
            self.lock_pushed().remove(&dropped);
            shared
                .loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&dropped);
        }
        let digest = resolved.module;
        if let Some(size) = self.lock_pushed().get(&digest) {
            return Ok((resolved, *size));
        }
        let _one = self.pushing.lock().await;
        if let Some(size) = self.lock_pushed().get(&digest) {
            return Ok((resolved, *size));
        }
        let name = digest.hex();
        let size = match self.modules.info(&name).await {
            Ok(info) if !info.deleted => info.size as u64,
            _ => {
                let bytes = tokio::fs::read(shared.modules.path(&digest))
                    .await
                    .map_err(|e| format!("module {image} ({digest}) cannot be read: {e}"))?;
                if Digest::of(&bytes) != digest {
                    return Err(format!(
                        "module {image} ({digest}) was changed on disk; not sent to workers"
                    ));
                }
                self.modules
                    .put(name.as_str(), &mut bytes.as_slice())
                    .await
                    .map_err(|e| format!("module {digest}: the object store refused it: {e}"))?;
                bytes.len() as u64
            }
        };
        self.lock_pushed().insert(digest, size);
        Ok((resolved, size))
    }

    fn lock_pushed(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, u64>> {
        self.pushed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Publishes `worker`'s queued attempts, as many in each message as have accumulated, each
/// message until JetStream has stored it (a retry carries the same body, so the same id); ends
/// when the queue is empty. Attempts no longer current (the worker was lost, the job stopped
/// before it went) are left out.
async fn publish_work(shared: Weak<Shared>, link: Arc<Link>, worker: String) {
    let subject = wire::work_subject(&worker);
    let mut last_batch = 0;
    loop {
        if last_batch >= wire::BUSY_BATCH {
            tokio::time::sleep(wire::BUSY_LINGER).await;
        }
        let batch = {
            let mut outbox = link.lock_outbox();
            let Some(queue) = outbox.get_mut(&worker) else {
                return;
            };
            let mut bytes = 0;
            let take = queue
                .waiting
                .iter()
                .take_while(|(_, _, work)| {
                    bytes += work.len() + 1;
                    bytes <= wire::BATCH_BYTES
                })
                .count()
                .max(1)
                .min(queue.waiting.len());
            let batch: Vec<_> = queue.waiting.drain(..take).collect();
            if batch.is_empty() {
                outbox.remove(&worker);
                return;
            }
            last_batch = batch.len();
            batch
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            let current: Vec<&String> = {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let state = shared.lock();
                batch
                    .iter()
                    .filter(|(job, attempt, _)| {
                        state.remote.get(job).is_some_and(|r| {
                            r.attempt == *attempt && r.placement.worker.as_ref() == Some(&worker)
                        })
                    })
                    .map(|(_, _, work)| work)
                    .collect()
            };
            if current.is_empty() {
                break;
            }
            let body = wire::json_array(&current);
            let publish = PublishMessage::build()
                .message_id(wire::work_message_id(&body))
                .payload(body.into());
            let error = match link.js.send_publish(subject.clone(), publish).await {
                Ok(ack) => match ack.await {
                    Ok(_) => break,
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            tracing::warn!(
                %worker,
                "publishing {} attempt(s): {error}; retrying",
                current.len()
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// Applies the workers' reports in the order they were stored, acknowledging each message once
/// what it changed is committed (a crash before that redelivers it, and the fence makes it a
/// no-op).
async fn apply_reports(shared: Weak<Shared>, consumer: jetstream::consumer::PullConsumer) {
    loop {
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!("cluster mode: reading reports: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!("cluster mode: reading reports: {e}");
                    continue;
                }
            };
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let worker = message
                .subject
                .as_str()
                .strip_prefix("wb.report.")
                .unwrap_or_default()
                .to_string();
            let write = match serde_json::from_slice::<Vec<Report>>(&message.payload) {
                Ok(reports) => apply(&shared, &worker, reports),
                Err(e) => {
                    tracing::warn!(%worker, "cluster mode: a report that does not parse: {e}");
                    None
                }
            };
            drop(shared);
            tokio::spawn(async move {
                if let Some(write) = write
                    && write.await.is_err()
                {
                    // Not acknowledged: it comes again after a restart.
                    return;
                }
                let _ = message.ack().await;
            });
        }
    }
}

/// Applies a message's reports in order, each only if it is about the current attempt of its
/// job, from the worker and session that hold it; returns the write of what they changed.
fn apply(
    shared: &Shared,
    worker: &str,
    reports: Vec<Report>,
) -> Option<impl Future<Output = Result<(), crate::store::StoreError>> + use<>> {
    let mut state = shared.lock();
    let mut changed = false;
    for report in reports {
        changed |= apply_one(shared, &mut state, worker, report);
    }
    if !changed {
        return None;
    }
    let write = shared.send_changes(&mut state);
    drop(state);
    shared.jobs_moved.notify_waiters();
    shared.wake.notify_one();
    write
}

/// Applies one report if the fence lets it; whether it changed a job.
fn apply_one(shared: &Shared, state: &mut State, worker: &str, report: Report) -> bool {
    let (job_id, attempt, session) = report.attempt();
    let Some(remote) = state.remote.get_mut(job_id).filter(|r| {
        r.attempt == attempt
            && r.session == session
            && r.placement.worker.as_deref() == Some(worker)
    }) else {
        tracing::warn!(
            %worker, job = job_id, attempt,
            "cluster mode: dropped a report for an attempt this worker does not hold (now or in this session)"
        );
        return false;
    };
    match report {
        Report::Started { job, at, .. } => {
            remote.started = true;
            let Some(j) = state.jobs.get_mut(job.as_str()) else {
                return false;
            };
            if j.status != JobStatus::Starting {
                return false;
            }
            j.status = JobStatus::Running;
            j.started_at = Some(at);
            state.touch_job(&job);
            true
        }
        Report::Log { job, lines, .. } => {
            let lines = within_caps(shared, worker, &job, &mut remote.output, lines);
            let sink = shared.logs.sink(&remote.placement.log_key);
            for (stream, line) in lines {
                sink.line(stream, &line);
            }
            false
        }
        Report::Ended {
            job,
            started_at,
            outcome,
            lines,
            ..
        } => {
            let placement = remote.placement.clone();
            let lines = within_caps(shared, worker, &job, &mut remote.output, lines);
            if !lines.is_empty() {
                let sink = shared.logs.sink(&placement.log_key);
                for (stream, line) in lines {
                    sink.line(stream, &line);
                }
            }
            shared.logs.finish(&placement.log_key);
            complete_locked(state, &placement, started_at, &outcome.outcome(), now());
            true
        }
    }
}

/// The lines a worker sent that fit the attempt's output caps (what the executor keeps of
/// both streams, each line counting its bytes and the per-event overhead); the rest dropped.
fn within_caps(
    shared: &Shared,
    worker: &str,
    job: &str,
    taken: &mut (u64, u64),
    mut lines: Vec<(crate::engine::StreamKind, String)>,
) -> Vec<(crate::engine::StreamKind, String)> {
    let config = shared.executor.config();
    // Both streams, and each stream's cap marker line.
    let (max_lines, max_bytes) = (
        2 * (config.output_cap_events + 1),
        2 * (config.output_cap_bytes + 4096),
    );
    let before = lines.len();
    let mut keep = 0;
    for (_, line) in &lines {
        let cost = line.len() as u64 + crate::engine::LOG_EVENT_OVERHEAD;
        if taken.0 + 1 > max_lines || taken.1 + cost > max_bytes {
            break;
        }
        taken.0 += 1;
        taken.1 += cost;
        keep += 1;
    }
    lines.truncate(keep);
    if keep < before {
        tracing::warn!(
            %worker, job,
            "cluster mode: dropped {} lines a worker sent past the attempt's output caps",
            before - keep
        );
    }
    lines
}

async fn answer_heartbeats(
    shared: Weak<Shared>,
    link: Arc<Link>,
    mut heartbeats: async_nats::Subscriber,
) {
    while let Some(message) = heartbeats.next().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let worker = message
            .subject
            .as_str()
            .strip_prefix("wb.hb.")
            .unwrap_or_default()
            .to_string();
        let lease = match serde_json::from_slice::<Heartbeat>(&message.payload) {
            Ok(heartbeat) => renew(&shared, &link, &worker, heartbeat),
            Err(e) => Lease {
                refused: Some(format!("a heartbeat that does not parse: {e}")),
                hold: Vec::new(),
                stop: Vec::new(),
                lease_ms: link.lease.as_millis() as u64,
            },
        };
        drop(shared);
        if let Some(reply) = message.reply {
            let body = serde_json::to_vec(&lease).expect("serialisable");
            let _ = link.client.publish(reply, body.into()).await;
        }
    }
}

/// A worker's heartbeat: its capacity is (again) live, and it is told what it holds.
fn renew(shared: &Shared, link: &Link, worker: &str, heartbeat: Heartbeat) -> Lease {
    let lease_ms = link.lease.as_millis() as u64;
    let refuse = |reason: String| Lease {
        refused: Some(reason),
        hold: Vec::new(),
        stop: Vec::new(),
        lease_ms,
    };
    if !wire::valid_worker_name(worker) {
        return refuse(format!(
            "{worker:?} is not a worker name (1 to 64 of A-Z a-z 0-9 - _)"
        ));
    }
    let mut state = shared.lock();
    let environment = &heartbeat.compute_environment;
    match state.envs.get(environment).map(|e| e.env.kind) {
        None => {
            return refuse(format!("compute environment {environment} does not exist"));
        }
        Some(ComputeEnvironmentType::Managed) => {
            return refuse(format!(
                "compute environment {environment} is MANAGED: its capacity is the server's own; workers serve UNMANAGED environments"
            ));
        }
        Some(ComputeEnvironmentType::Unmanaged) => {}
    }
    if !state.workers.contains_key(worker) && state.workers.len() >= MAX_WORKERS {
        return refuse(format!(
            "this control plane already has {MAX_WORKERS} workers, the most it takes"
        ));
    }
    let now = now();
    let replaced = state
        .workers
        .get(worker)
        .is_some_and(|w| w.session != heartbeat.session);
    if replaced {
        // The same name in a new process: what the old one held died with it.
        for key in lose_worker(
            &mut state,
            worker,
            &format!("Host lost: worker {worker} restarted while it held the attempt"),
            now,
        ) {
            shared.logs.finish(&key);
        }
    }
    let (used_vcpus, used_memory_mib, recent_attempt_ms) = state
        .workers
        .get(worker)
        .filter(|_| !replaced)
        .map_or((0.0, 0, None), |w| {
            (w.used_vcpus, w.used_memory_mib, w.recent_attempt_ms)
        });
    state.workers.insert(
        worker.to_string(),
        WorkerSlot {
            environment: environment.clone(),
            session: heartbeat.session.clone(),
            host: heartbeat.host,
            vcpus: heartbeat.vcpus,
            memory_mib: heartbeat.memory_mib,
            used_vcpus,
            used_memory_mib,
            last_heard: Instant::now(),
            last_heard_at: now,
            recovered: false,
            recent_attempt_ms,
        },
    );
    let mut hold = Vec::new();
    let mut stop = Vec::new();
    for (job, remote) in &state.remote {
        if remote.placement.worker.as_deref() == Some(worker) && remote.session == heartbeat.session
        {
            hold.push((job.clone(), remote.attempt));
            if let Some(reason) = &remote.stop {
                stop.push((job.clone(), remote.attempt, reason.clone()));
            }
        }
    }
    if replaced {
        drop(shared.send_changes(&mut state));
        shared.jobs_moved.notify_waiters();
    }
    drop(state);
    // New or renewed capacity.
    shared.wake.notify_one();
    Lease {
        refused: None,
        hold,
        stop,
        lease_ms,
    }
}

/// Fails every attempt `worker` holds with `reason` (a lost host: one attempt, then the retry
/// strategy decides); one that had not started goes back in line. The worker's slot stays; the
/// caller removes or replaces it, and finishes the logs of the failed attempts (returned).
fn lose_worker(state: &mut State, worker: &str, reason: &str, now: EpochMillis) -> Vec<String> {
    let held: Vec<(Placement, Option<EpochMillis>)> = state
        .remote
        .values()
        .filter(|r| r.placement.worker.as_deref() == Some(worker))
        .map(|r| {
            let started_at = r
                .started
                .then(|| state.jobs.get(r.placement.job_id.as_str())?.started_at)
                .flatten();
            (r.placement.clone(), started_at)
        })
        .collect();
    let outcome = Outcome::not_started(FailureKind::HostLost, reason);
    let mut logs = Vec::new();
    for (placement, started_at) in &held {
        tracing::warn!(%worker, job = %placement.job_id, "{reason}");
        let started = state
            .remote
            .get(&placement.job_id)
            .is_some_and(|r| r.started);
        if started {
            complete_locked(state, placement, *started_at, &outcome, now);
            logs.push(placement.log_key.clone());
        } else {
            // It never began (it waited in the worker's own queue, or was on its way): back
            // in line, no attempt spent. Its log stays open: the next placement opens it anew.
            release(state, placement, now);
            state.remote.remove(&placement.job_id);
            if let Some(job) = state.jobs.get_mut(placement.job_id.as_str()) {
                job.remote = None;
                job.status_reason = Some(format!("{reason}; placed again"));
            }
            state.make_runnable(&placement.job_id);
        }
    }
    logs
}

/// Every tenth of a lease: a worker not heard from for a whole lease is lost. Its attempts fail,
/// and what JetStream still holds for it is purged.
async fn find_lost_workers(shared: Weak<Shared>, link: Arc<Link>) {
    let tick = (link.lease / 10).max(Duration::from_millis(20));
    loop {
        tokio::time::sleep(tick).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut lost = Vec::new();
        {
            let mut state = shared.lock();
            let expired: Vec<String> = state
                .workers
                .iter()
                .filter(|(_, w)| w.last_heard.elapsed() > link.lease)
                .map(|(name, _)| name.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            let now = now();
            let mut failed = 0;
            for worker in expired {
                let silent = state.workers[&worker].last_heard.elapsed();
                let reason = format!(
                    "Host lost: worker {worker} sent no heartbeat for {:.1} s (lease {} s)",
                    silent.as_secs_f64(),
                    link.lease.as_secs_f64()
                );
                for key in lose_worker(&mut state, &worker, &reason, now) {
                    shared.logs.finish(&key);
                }
                failed += 1;
                state.workers.remove(&worker);
                lost.push(worker);
            }
            if failed > 0 {
                drop(shared.send_changes(&mut state));
            }
        }
        shared.jobs_moved.notify_waiters();
        shared.wake.notify_one();
        for worker in lost {
            if let Ok(stream) = link.js.get_stream(wire::WORK_STREAM).await
                && let Err(e) = stream.purge().filter(wire::work_subject(&worker)).await
            {
                tracing::warn!(%worker, "cluster mode: purging a lost worker's attempts: {e}");
            }
        }
    }
}
