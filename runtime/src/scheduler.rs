//! The scheduler: places RUNNABLE jobs on compute environments and runs their attempts.
//!
//! It is woken (never polled) when a job becomes runnable, capacity is freed or a queue or
//! environment changes. A pass takes the ENABLED queues by descending priority and, within each,
//! the jobs in submission order; each job goes to the first environment in the queue's order that
//! is ENABLED, MANAGED and has the vCPUs and memory it asks for. A job that fits nowhere stops its
//! queue's pass (FIFO). Each placed job's attempt runs as its own task, which first waits until
//! the write that added the job is committed (a job runs only if its submit is durable; after a
//! failed commit, nothing starts); a job whose submit committed long ago does not wait. When the attempt ends, its capacity is
//! released, the retry decision made, and everything that follows from its end settled.
//!
//! STARTING is never written: a crash before RUNNING is recorded leaves the job RUNNABLE on
//! disk, which is the truth (its attempt had not begun). RUNNING and the attempt's end are written
//! behind, not awaited: recovery turns a lost RUNNING into an interrupted attempt.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::batch::line::LineJob;
use crate::batch::state::{Placement, RemoteAttempt, line_job};
use crate::batch::{Shared, State, now};
use crate::engine::{AttemptSpec, ExitStatus, FailureKind, JobModule, KillSwitch, Limits, Outcome};
use crate::model::arn::{ResourceKind, stored_name};
use crate::model::retry::{self, FailedAttempt, RetryDecision};
use crate::model::{Attempt, ComputeEnvironmentType, EpochMillis, JobStatus, State as OnOff};
use crate::modules::Resolved;

/// The statusReason of an attempt whose guest exited by itself, as AWS words it.
const EXITED: &str = "Essential container in task exited";

/// Starts the scheduler task. It holds the service weakly and ends when the service is dropped.
pub(crate) fn start(shared: Weak<Shared>, wake: Arc<tokio::sync::Notify>) {
    tokio::spawn(async move {
        let mut deadline: Option<EpochMillis> = None;
        loop {
            match deadline {
                // A time-limit action falls due then, whether or not anything else happens.
                Some(at) => {
                    let wait = Duration::from_millis((at - now()).max(0) as u64);
                    let _ = tokio::time::timeout(wait, wake.notified()).await;
                }
                None => wake.notified().await,
            }
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if shared.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                continue;
            }
            if shared.store.writable().is_err() {
                // Fail-stop: nothing more is started once storage has failed.
                continue;
            }
            let plans = {
                let mut state = shared.lock();
                state.committed_through(shared.store.committed_through());
                let began = std::time::Instant::now();
                let pass = place(&mut state, now());
                let stats = &mut state.scheduling;
                stats.passes += 1;
                stats.placements += pass.plans.len() as u64;
                stats.placing += began.elapsed();
                stats.choosing += pass.choosing;
                for plan in &pass.plans {
                    state.metrics.placed(&plan.queue);
                }
                deadline = pass.next_deadline;
                if pass.changed {
                    // Written behind, as RUNNING is: nobody waits on an acknowledgement.
                    drop(shared.send_changes(&mut state));
                }
                // Opened while the jobs' STARTING is visible only under this lock, so anyone
                // who sees the job started finds its log stream.
                for plan in &pass.plans {
                    shared.logs.open(&plan.log_key);
                }
                pass.plans
            };
            if !plans.is_empty() {
                shared.jobs_moved.notify_waiters();
            }
            let (remote_plans, local): (Vec<_>, Vec<_>) =
                plans.into_iter().partition(|p| p.worker.is_some());
            for plan in local {
                tokio::spawn(run_attempt(shared.clone(), plan));
            }
            if !remote_plans.is_empty() {
                remote(&shared, remote_plans);
            }
        }
    });
}

/// Everything an attempt needs, decided at placement under the state lock.
pub(crate) struct AttemptPlan {
    pub(crate) job_id: String,
    /// The job's submission sequence (how its queue's line knows it).
    pub(crate) sequence: u64,
    pub(crate) queue: String,
    pub(crate) environment: String,
    /// The remote worker it goes to, on an UNMANAGED environment (cluster mode).
    pub(crate) worker: Option<String>,
    /// The attempt's number, from 1.
    pub(crate) attempt: u32,
    pub(crate) vcpus: f64,
    pub(crate) memory_mib: u64,
    pub(crate) image: String,
    pub(crate) spec: AttemptSpec,
    pub(crate) log_stream_name: String,
    /// Where the attempt's log is kept (see `logs::log_key`).
    pub(crate) log_key: String,
    /// Volumes to grant: (path under the volume root, guest path, read-only).
    pub(crate) mounts: Vec<(std::path::PathBuf, String, bool)>,
    /// The store ticket that must be committed before the attempt starts: that of the submit
    /// that added the job (0 once it is known to be committed).
    pub(crate) durable: u64,
}

impl AttemptPlan {
    pub(crate) fn placement(&self) -> Placement {
        Placement {
            job_id: self.job_id.clone(),
            sequence: self.sequence,
            queue: self.queue.clone(),
            environment: self.environment.clone(),
            worker: self.worker.clone(),
            vcpus: self.vcpus,
            memory_mib: self.memory_mib,
            log_stream_name: self.log_stream_name.clone(),
            log_key: self.log_key.clone(),
            image_digest: None,
        }
    }
}

/// Hands a pass's plans for remote workers to cluster mode, which journals and publishes them.
fn remote(shared: &Arc<Shared>, plans: Vec<AttemptPlan>) {
    #[cfg(feature = "cluster")]
    if let Some(link) = shared.cluster.get() {
        tokio::spawn(crate::cluster::control::dispatch(
            shared.clone(),
            link.clone(),
            plans,
        ));
        return;
    }
    // Workers exist only in cluster mode; nothing can have been placed on one otherwise.
    let outcome = Outcome::not_started(FailureKind::HostLost, "cluster mode is off");
    for plan in plans {
        drop(complete(shared, &plan.placement(), None, &outcome));
    }
}

/// What a scheduling pass did beside placing jobs.
#[derive(Default)]
struct Pass {
    plans: Vec<AttemptPlan>,
    /// Jobs it changed (set aside, cancelled by a time limit): to be written.
    changed: bool,
    /// The earliest time a time-limit action falls due, to wake up for.
    next_deadline: Option<EpochMillis>,
    /// Time spent choosing (the lines' own work: head, reservation, placed).
    choosing: Duration,
}

/// One scheduling pass: applies the queues' time-limit actions, reserves capacity and marks the
/// placed jobs STARTING. A DISABLED queue takes no new jobs but still dispatches the ones it has
/// (AWS); a DISABLED environment is where work is held.
fn place(state: &mut State, now: EpochMillis) -> Pass {
    let mut pass = Pass::default();
    let mut queues: Vec<(i32, String)> = state
        .queues
        .values()
        .map(|q| (q.queue.priority, q.queue.job_queue_name.clone()))
        .collect();
    queues.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (_, queue_name) in &queues {
        apply_time_limits(state, queue_name, now, &mut pass);
    }
    for (_, queue_name) in queues {
        let capacity = queue_capacity(state, &queue_name);
        loop {
            let slot = state.queues.get_mut(&queue_name).expect("listed");
            let choosing = std::time::Instant::now();
            let head = slot.line.head(now);
            pass.choosing += choosing.elapsed();
            let Some((share, job_id)) = head else {
                break;
            };
            let job_id = job_id.to_string();
            let Some(job) = state.jobs.get(job_id.as_str()) else {
                slot.line.drop_head(&share, now);
                continue;
            };
            // An array child's parameters and overrides are its array's, held once for all.
            let submission = &job.submission;
            let Some(definition) = state.definition(&submission.job_definition) else {
                break;
            };
            let container = crate::model::container::resolve(
                definition,
                &submission.details().parameters,
                submission.details().container_overrides.as_deref(),
            );
            let definition_name = definition.job_definition_name.clone();
            let vcpus = container.vcpus();
            let memory_mib = container.memory_mib();
            let resources = container.resources;
            let slot = &state.queues[&queue_name];
            let environment = slot
                .queue
                .compute_environment_order
                .iter()
                .find_map(|order| {
                    let name =
                        stored_name(ResourceKind::ComputeEnvironment, &order.compute_environment);
                    let env = state.envs.get(name)?;
                    if env.env.state != OnOff::Enabled {
                        return None;
                    }
                    match env.env.kind {
                        ComputeEnvironmentType::Managed => env
                            .fits(vcpus, memory_mib)
                            .then(|| (name.to_string(), None)),
                        ComputeEnvironmentType::Unmanaged => {
                            let pipelines = slot.queue.scheduling_policy_arn.is_none();
                            worker_with_room(state, name, vcpus, memory_mib, pipelines)
                                .map(|worker| (name.to_string(), Some(worker)))
                        }
                    }
                });
            let Some((environment, worker)) = environment else {
                if let Some((code, message)) = state.never_fits(&slot.queue, vcpus, memory_mib) {
                    // It would hold its queue forever (AWS leaves it so, unless a time-limit
                    // action cancels it): set aside, it waits for its queue or environments to
                    // change, and the jobs behind it go on.
                    let job = &state.jobs[job_id.as_str()];
                    let line_job = line_job(job, &state.definitions);
                    let slot = state.queues.get_mut(&queue_name).expect("listed");
                    slot.line.set_aside(line_job, code, now);
                    state
                        .jobs
                        .get_mut(job_id.as_str())
                        .expect("present")
                        .status_reason = Some(format!("{code} - {message}"));
                    state.touch_job(&job_id);
                    pass.changed = true;
                    continue;
                }
                break;
            };
            let slot = state.queues.get_mut(&queue_name).expect("listed");
            let choosing = std::time::Instant::now();
            let limit = slot.line.vcpu_limit(capacity, &share, now);
            if slot.line.running_vcpus() + vcpus > limit + 1e-9 {
                // The rest is kept for shares not active yet (computeReservation).
                pass.choosing += choosing.elapsed();
                break;
            }
            let job = &state.jobs[job_id.as_str()];
            let placed = line_job(job, &state.definitions);
            let placed = LineJob { vcpus, ..placed };
            let slot = state.queues.get_mut(&queue_name).expect("listed");
            slot.line.placed(placed, now);
            pass.choosing += choosing.elapsed();

            let env_slot = state.envs.get_mut(&environment).expect("found above");
            env_slot.used_vcpus += vcpus;
            env_slot.used_memory_mib += memory_mib;
            if let Some(worker) = &worker {
                let slot = state.workers.get_mut(worker).expect("found above");
                slot.used_vcpus += vcpus;
                slot.used_memory_mib += memory_mib;
            }

            let job = state.jobs.get_mut(job_id.as_str()).expect("present");
            job.status = JobStatus::Starting;
            let sequence = job.sequence;
            let attempt = job.attempts.len() + 1;
            let mounts = container.mounts;
            let image = container.image;
            let program = crate::model::image::ImageRef::parse(&image)
                .map_or_else(|_| image.clone(), |i| i.program().to_string());
            let mut args = vec![program];
            args.extend(container.command);
            let mut env = container.environment;
            env.push(("AWS_BATCH_JOB_ID".into(), job_id.clone()));
            env.push(("AWS_BATCH_JOB_ATTEMPT".into(), attempt.to_string()));
            env.push(("AWS_BATCH_JQ_NAME".into(), queue_name.clone()));
            env.push(("AWS_BATCH_CE_NAME".into(), environment.clone()));
            if let Some(index) = job.array_properties.and_then(|a| a.index) {
                env.push(("AWS_BATCH_JOB_ARRAY_INDEX".into(), index.to_string()));
            }
            let timeout = job
                .submission
                .details()
                .timeout
                .and_then(|t| t.attempt_duration_seconds)
                .map_or(Limits::DEFAULT_TIMEOUT, |s| {
                    Duration::from_secs(u64::from(s))
                });
            let kill = KillSwitch::new();
            let log_stream_name = crate::logs::stream_name(&definition_name, &job_id, attempt);
            let log_key = crate::logs::log_key(job.sequence, attempt);
            let plan = AttemptPlan {
                job_id: job_id.clone(),
                sequence,
                queue: queue_name.clone(),
                environment,
                worker,
                attempt: attempt as u32,
                vcpus,
                memory_mib,
                image,
                spec: AttemptSpec {
                    args,
                    env,
                    limits: Limits {
                        memory_bytes: memory_mib << 20,
                        fuel: resources.fuel,
                        timeout,
                    },
                    kill: Some(kill.clone()),
                    ..AttemptSpec::default()
                },
                log_stream_name,
                mounts,
                log_key,
                durable: state.admission_ticket(sequence),
            };
            match &plan.worker {
                // Stopped through its worker's lease, not a kill switch here.
                Some(_) => {
                    state.remote.insert(
                        job_id,
                        RemoteAttempt {
                            placement: plan.placement(),
                            session: String::new(),
                            attempt: plan.attempt,
                            started: false,
                            stop: None,
                            output: (0, 0),
                        },
                    );
                }
                None => {
                    state.running.insert(job_id, kill);
                }
            }
            pass.plans.push(plan);
        }
    }
    pass
}

/// The live worker of UNMANAGED environment `environment` with room for the job and the most
/// vCPUs free, so work spreads over the workers.
fn worker_with_room(
    state: &State,
    environment: &str,
    vcpus: f64,
    memory_mib: u64,
    pipelines: bool,
) -> Option<String> {
    state
        .workers
        .iter()
        .filter(|(_, w)| {
            w.environment == environment && w.fits(vcpus, memory_mib, w.depth(pipelines))
        })
        .max_by(|a, b| {
            (a.1.vcpus - a.1.used_vcpus)
                .total_cmp(&(b.1.vcpus - b.1.used_vcpus))
                .then_with(|| b.0.cmp(a.0))
        })
        .map(|(name, _)| name.clone())
}

/// The vCPUs of a queue's environments that can run jobs now (ENABLED; an UNMANAGED one's live
/// workers): what a fair-share reservation is a fraction of.
fn queue_capacity(state: &State, queue: &str) -> f64 {
    let pipelines = state.queues[queue].queue.scheduling_policy_arn.is_none();
    state.queues[queue]
        .queue
        .compute_environment_order
        .iter()
        .filter_map(|order| {
            state.envs.get(stored_name(
                ResourceKind::ComputeEnvironment,
                &order.compute_environment,
            ))
        })
        .filter(|env| env.env.state == OnOff::Enabled)
        .map(|env| match env.env.kind {
            ComputeEnvironmentType::Managed => env.max_vcpus(),
            ComputeEnvironmentType::Unmanaged => state
                .workers
                .values()
                .filter(|w| w.environment == env.env.compute_environment_name)
                .map(|w| w.vcpus * w.depth(pipelines))
                .sum(),
        })
        .sum()
}

/// Cancels the jobs set aside in `queue` whose time-limit action has fallen due, with AWS's
/// words, and notes when the next one will.
fn apply_time_limits(state: &mut State, queue: &str, now: EpochMillis, pass: &mut Pass) {
    let slot = &state.queues[queue];
    if slot.queue.job_state_time_limit_actions.is_empty() || slot.line.misfits.is_empty() {
        return;
    }
    let mut due = Vec::new();
    for misfit in slot.line.misfits.values() {
        let Some(action) = slot
            .queue
            .job_state_time_limit_actions
            .iter()
            .filter(|a| a.state == "RUNNABLE" && a.action == "CANCEL" && a.reason == misfit.reason)
            .min_by_key(|a| a.max_time_seconds)
        else {
            continue;
        };
        let deadline = misfit.since + i64::from(action.max_time_seconds) * 1000;
        if deadline <= now {
            due.push((misfit.id.clone(), misfit.reason));
        } else {
            pass.next_deadline = Some(pass.next_deadline.map_or(deadline, |d| d.min(deadline)));
        }
    }
    let mut ended = Vec::new();
    for (id, reason) in due {
        let reason = format!("Canceled by JobStateTimeLimit action due to reason: {reason}");
        if state.fail_one(&id, &reason, now) {
            state
                .jobs
                .get_mut(id.as_str())
                .expect("just failed")
                .is_cancelled = true;
            ended.push(id);
        }
    }
    if !ended.is_empty() {
        pass.changed = true;
        state.settle(ended, now);
    }
}

async fn run_attempt(shared: Arc<Shared>, plan: AttemptPlan) {
    if let Err(e) = shared.store.committed(plan.durable).await {
        // The job's records may not be durable: it must not run. It stays STARTING in memory
        // (RUNNABLE on disk), and the service takes no more changes until it is restarted.
        tracing::warn!(job = %plan.job_id, "not starting an attempt: {e}");
        abandon(&shared, &plan.placement());
        return;
    }
    let mut placement = plan.placement();
    let prepared = match module_for(&shared, &plan.image).await {
        Err(reason) => Err(Outcome::not_started(
            FailureKind::ModuleInvalid,
            format!("CannotPullContainerError: {reason}"),
        )),
        Ok((module, resolved)) => match volumes(&shared, &plan.mounts).await {
            Err(reason) => Err(Outcome::not_started(
                FailureKind::HostError,
                format!("CannotCreateContainerError: {reason}"),
            )),
            Ok(grants) => {
                placement.image_digest = Some(resolved.image);
                Ok((module, grants))
            }
        },
    };
    let (started_at, outcome) = match prepared {
        Err(outcome) => (None, outcome),
        Ok((module, grants)) => {
            let started_at = now();
            {
                let mut state = shared.lock();
                if let Some(job) = state.jobs.get_mut(plan.job_id.as_str()) {
                    job.status = JobStatus::Running;
                    job.started_at = Some(started_at);
                    state.touch_job(&plan.job_id);
                    // Not awaited: the attempt's end is written after this in any case, and a
                    // crash before it is committed only loses a RUNNING that recovery would
                    // turn into a retry anyway.
                    drop(shared.send_changes(&mut state));
                }
            }
            let spec = AttemptSpec {
                output: shared.logs.sink(&plan.log_key),
                grants,
                ..plan.spec.clone()
            };
            let outcome = shared.executor.run(&module, spec).await;
            shared.logs.finish(&plan.log_key);
            (Some(started_at), outcome)
        }
    };
    if started_at.is_none() {
        shared.logs.finish(&plan.log_key);
    }
    drop(complete(&shared, &placement, started_at, &outcome));
    shared.wake.notify_one();
}

/// Releases an attempt that will not start because its job's submit may not be durable: the job
/// stays STARTING in memory (RUNNABLE on disk), and the service takes no more changes.
pub(crate) fn abandon(shared: &Shared, plan: &Placement) {
    shared.logs.finish(&plan.log_key);
    let mut state = shared.lock();
    state.running.remove(&plan.job_id);
    state.remote.remove(&plan.job_id);
    release(&mut state, plan, now());
    drop(state);
    shared.jobs_moved.notify_waiters();
}

async fn volumes(
    shared: &Shared,
    mounts: &[(std::path::PathBuf, String, bool)],
) -> Result<Vec<crate::engine::DirGrant>, String> {
    open_volumes(shared.config.volume_root.clone(), mounts).await
}

/// The directory grants of a job's volumes, each opened (and created if missing) beneath the
/// volume root without following links; why not, when one cannot be.
pub(crate) async fn open_volumes(
    root: std::path::PathBuf,
    mounts: &[(std::path::PathBuf, String, bool)],
) -> Result<Vec<crate::engine::DirGrant>, String> {
    if mounts.is_empty() {
        return Ok(Vec::new());
    }
    let mounts = mounts.to_vec();
    tokio::task::spawn_blocking(move || {
        // The root is the operator's setting, opened by its path; all beneath it by handle.
        let root = crate::volumes::open_root(&root).map_err(|e| e.to_string())?;
        mounts
            .into_iter()
            .map(|(path, guest_path, read_only)| {
                let dir = crate::volumes::open_beneath(&root, &path)
                    .map_err(|e| format!("volume {} for {guest_path}: {e}", path.display()))?;
                Ok(crate::engine::DirGrant {
                    host: crate::engine::HostDir::Opened(Arc::new(dir)),
                    guest_path,
                    access: if read_only {
                        crate::engine::Access::ReadOnly
                    } else {
                        crate::engine::Access::ReadWrite
                    },
                })
            })
            .collect()
    })
    .await
    .map_err(|e| format!("opening the volumes failed: {e}"))?
}

/// The loaded module a job's `image` names, loading (and caching) it on first use, and what
/// the image resolved to.
async fn module_for(shared: &Shared, image: &str) -> Result<(JobModule, Resolved), String> {
    let resolved = shared
        .modules
        .resolve_image(image, shared.config.max_module_bytes)
        .await?;
    #[cfg(feature = "registry")]
    for dropped in shared.modules.take_evicted() {
        // A pulled version let go to bound the disk: its compiled form goes with it.
        shared
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&dropped);
        shared.executor.forget(dropped).await;
    }
    let digest = resolved.module;
    if let Some(module) = shared
        .loaded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&digest)
    {
        return Ok((module.clone(), resolved));
    }
    let path = shared.modules.path(&digest);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| format!("module {image} ({digest}) cannot be read: {e}"))?;
    let module = shared
        .executor
        .load(bytes)
        .await
        .map_err(|e| e.to_string())?;
    // The file is named by the digest its bytes had when pushed; bytes changed on disk since
    // are another program, and the job asked for this one.
    if module.digest() != digest {
        return Err(format!(
            "module {image} ({digest}) was changed on disk: its file now holds {}; not run",
            module.digest()
        ));
    }
    shared
        .loaded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(digest, module.clone());
    Ok((module, resolved))
}

/// Records the attempt, releases its capacity, and moves the job on. Returns the write of it,
/// sent behind (not awaited here; cluster mode awaits it before it acknowledges a report).
pub(crate) fn complete(
    shared: &Shared,
    plan: &Placement,
    started_at: Option<i64>,
    outcome: &Outcome,
) -> Option<impl Future<Output = Result<(), crate::store::StoreError>> + use<>> {
    let now = now();
    let mut state = shared.lock();
    let written = complete_locked(&mut state, plan, started_at, outcome, now);
    // Written behind: if storage has failed, this end is not recorded, and the attempt counts
    // as interrupted when the service restarts.
    let write = written.then(|| shared.send_changes(&mut state)).flatten();
    drop(state);
    shared.jobs_moved.notify_waiters();
    write
}

/// Frees what an attempt held: its place among its queue's running jobs, and its vCPUs and
/// memory on its environment and worker.
pub(crate) fn release(state: &mut State, plan: &Placement, now: EpochMillis) {
    if let Some(queue) = state.queues.get_mut(&plan.queue) {
        queue.line.ended(plan.sequence, now);
    }
    if let Some(env) = state.envs.get_mut(&plan.environment) {
        env.used_vcpus = (env.used_vcpus - plan.vcpus).max(0.0);
        env.used_memory_mib = env.used_memory_mib.saturating_sub(plan.memory_mib);
    }
    if let Some(worker) = plan.worker.as_ref().and_then(|w| state.workers.get_mut(w)) {
        worker.used_vcpus = (worker.used_vcpus - plan.vcpus).max(0.0);
        worker.used_memory_mib = worker.used_memory_mib.saturating_sub(plan.memory_mib);
    }
}

/// [`complete`] under the state lock; false when the job is gone.
pub(crate) fn complete_locked(
    state: &mut State,
    plan: &Placement,
    started_at: Option<i64>,
    outcome: &Outcome,
    now: EpochMillis,
) -> bool {
    release(state, plan, now);
    if started_at.is_some()
        && let Some(worker) = plan.worker.as_ref().and_then(|w| state.workers.get_mut(w))
    {
        worker.took(outcome.wall_time.as_secs_f64() * 1000.0);
    }
    state.running.remove(&plan.job_id);
    if plan.worker.is_some() {
        state.remote.remove(&plan.job_id);
    }
    state
        .metrics
        .ended(&plan.queue, outcome, started_at.is_some());
    state.touch_job(&plan.job_id);
    let Some(job) = state.jobs.get_mut(plan.job_id.as_str()) else {
        return false;
    };
    job.remote = None;
    let (exit_code, reason, status_reason) = match &outcome.status {
        ExitStatus::Exited(code) => (Some(*code), None, EXITED.to_string()),
        ExitStatus::Failed(failure) => (
            None,
            Some(format!("{:?}", failure.kind)),
            failure.reason.clone(),
        ),
    };
    job.attempts.push(Attempt {
        started_at,
        stopped_at: Some(now),
        exit_code,
        reason: reason.clone(),
        status_reason: Some(status_reason.clone()),
        log_stream_name: Some(plan.log_stream_name.clone()),
        fuel_consumed: outcome.fuel_consumed,
        peak_memory_bytes: started_at.map(|_| outcome.peak_memory_bytes),
        worker: plan.worker.clone(),
        image_digest: plan.image_digest.map(|d| d.to_string()),
    });
    let mut ended = Vec::new();
    if outcome.succeeded() {
        job.status = JobStatus::Succeeded;
        job.status_reason = Some(EXITED.into());
        job.stopped_at = Some(now);
        ended.push(plan.job_id.clone());
    } else {
        let timed_out = outcome
            .failure()
            .is_some_and(|f| f.kind == FailureKind::Timeout);
        // AWS Batch retries neither a terminated job nor one that exceeded its timeout.
        let decision = if job.is_terminated || timed_out {
            RetryDecision::Exit
        } else {
            let failed = FailedAttempt {
                exit_code,
                reason: reason.as_deref(),
                status_reason: &status_reason,
            };
            retry::decide(
                job.submission.details().retry_strategy.as_ref(),
                job.attempts.len() as u32,
                failed,
            )
        };
        match decision {
            RetryDecision::Retry => {
                job.status_reason = Some(status_reason);
                state.make_runnable(&plan.job_id);
            }
            RetryDecision::Exit => {
                job.status = JobStatus::Failed;
                job.status_reason = Some(status_reason);
                job.stopped_at = Some(now);
                ended.push(plan.job_id.clone());
            }
        }
    }
    state.settle(ended, now);
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::batch::job_slot::JobSlot;
    use crate::batch::state::{EnvSlot, QueueSlot};
    use crate::model::{ComputeEnvironment, Job, JobDefinition, JobQueue};

    fn worker(state: &mut State, name: &str, environment: &str, vcpus: f64) {
        state.workers.insert(
            name.into(),
            crate::batch::state::WorkerSlot {
                environment: environment.into(),
                session: format!("{name}-session"),
                host: "h".into(),
                vcpus,
                memory_mib: 1024,
                used_vcpus: 0.0,
                used_memory_mib: 0,
                last_heard: std::time::Instant::now(),
                last_heard_at: 0,
                recovered: false,
                recent_attempt_ms: None,
            },
        );
    }

    #[test]
    fn an_unmanaged_environment_places_on_the_live_worker_with_the_most_room() {
        let mut state = State::empty();
        env(&mut state, "farm", 0, true, false);
        definition(&mut state, "1", "64");
        queue(&mut state, "q", 1, &["farm"]);
        for id in ["a", "b", "c", "d"] {
            job(&mut state, id, "q");
        }
        assert!(place(&mut state).is_empty(), "no worker, no capacity");
        worker(&mut state, "w1", "farm", 2.0);
        worker(&mut state, "w2", "farm", 1.0);
        worker(&mut state, "elsewhere", "other", 8.0);
        let plans = place(&mut state);
        let on: Vec<_> = plans
            .iter()
            .map(|p| (p.job_id.as_str(), p.worker.as_deref().unwrap()))
            .collect();
        // Most room first; a tie goes to the first name.
        assert_eq!(on, [("a", "w1"), ("b", "w1"), ("c", "w2")]);
        assert_eq!(
            state.jobs["d"].status,
            JobStatus::Runnable,
            "3 vCPUs, all taken"
        );
        assert!(
            state.running.is_empty(),
            "remote attempts have no local kill switch"
        );
        assert_eq!(state.remote.len(), 3);
        assert_eq!(state.workers["w1"].used_vcpus, 2.0);
        // A worker known only from a restarted control plane's journal takes nothing new.
        state.workers.get_mut("w2").unwrap().recovered = true;
        let placement = plans[2].placement();
        complete_locked(
            &mut state,
            &placement,
            None,
            &Outcome::not_started(FailureKind::HostLost, "lost"),
            0,
        );
        assert_eq!(state.workers["w2"].used_vcpus, 0.0);
        assert!(
            place(&mut state).is_empty(),
            "w2 has room but has not been heard from"
        );
    }

    /// An UNMANAGED environment with one 2-vCPU worker, and 20 RUNNABLE 1-vCPU jobs.
    fn farm_of_20_jobs() -> State {
        let mut state = State::empty();
        env(&mut state, "farm", 0, true, false);
        definition(&mut state, "1", "64");
        queue(&mut state, "q", 1, &["farm"]);
        for i in 0..20 {
            job(&mut state, &format!("j{i}"), "q");
        }
        worker(&mut state, "w1", "farm", 2.0);
        state
    }

    #[test]
    fn a_worker_of_short_attempts_is_given_several_per_vcpu_and_of_long_ones_its_capacity() {
        let mut state = farm_of_20_jobs();
        assert_eq!(place(&mut state).len(), 2, "no history: its capacity only");
        state.workers.get_mut("w1").unwrap().took(3.0);
        assert_eq!(
            place(&mut state).len(),
            14,
            "3 ms attempts: what it runs in 25 ms, 8 times its 2 vCPUs in all"
        );
        // Far shorter ones: 32 times, the most, so all 20.
        let mut state = farm_of_20_jobs();
        let slot = state.workers.get_mut("w1").unwrap();
        for _ in 0..20 {
            slot.took(0.2);
        }
        assert_eq!(place(&mut state).len(), 20);
        // Long attempts lately: no more than its capacity.
        let mut state = farm_of_20_jobs();
        let slot = state.workers.get_mut("w1").unwrap();
        slot.took(3.0);
        for _ in 0..20 {
            slot.took(5_000.0);
        }
        assert_eq!(place(&mut state).len(), 2);
    }

    fn env(state: &mut State, name: &str, vcpus: u32, enabled: bool, managed: bool) {
        let env: ComputeEnvironment = serde_json::from_value(json!({
            "computeEnvironmentName": name,
            "computeEnvironmentArn": format!("arn:aws:batch:r:a:compute-environment/{name}"),
            "type": if managed { "MANAGED" } else { "UNMANAGED" },
            "state": if enabled { "ENABLED" } else { "DISABLED" },
            "status": "VALID",
            "computeResources": {"type": "EC2", "maxvCpus": vcpus}
        }))
        .unwrap();
        state.envs.insert(
            name.into(),
            EnvSlot {
                env,
                memory_mib: 1024,
                used_vcpus: 0.0,
                used_memory_mib: 0,
            },
        );
    }

    fn queue(state: &mut State, name: &str, priority: i32, envs: &[&str]) {
        let order: Vec<_> = envs
            .iter()
            .enumerate()
            .map(|(i, e)| json!({"order": i, "computeEnvironment": format!("arn:aws:batch:r:a:compute-environment/{e}")}))
            .collect();
        let queue: JobQueue = serde_json::from_value(json!({
            "jobQueueName": name, "jobQueueArn": format!("arn:aws:batch:r:a:job-queue/{name}"),
            "state": "ENABLED", "status": "VALID", "priority": priority, "computeEnvironmentOrder": order
        }))
        .unwrap();
        state.queues.insert(name.into(), QueueSlot::new(queue));
    }

    fn definition(state: &mut State, vcpus: &str, memory: &str) {
        let definition: JobDefinition = serde_json::from_value(json!({
            "jobDefinitionName": "d", "jobDefinitionArn": "arn:aws:batch:r:a:job-definition/d:1",
            "revision": 1, "status": "ACTIVE", "type": "container",
            "parameters": {"who": "default"},
            "containerProperties": {"image": "hello@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "command": ["hi", "Ref::who"],
                "environment": [{"name": "COLOR", "value": "blue"}],
                "resourceRequirements": [{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": memory}]}
        }))
        .unwrap();
        state.definitions.insert("d".into(), vec![definition]);
    }

    fn job(state: &mut State, id: &str, queue: &str) {
        let sequence = state.next_sequence;
        state.next_sequence += 1;
        let job: Job = serde_json::from_value(json!({
            "jobId": id, "jobArn": id, "jobName": id,
            "jobQueue": format!("arn:aws:batch:r:a:job-queue/{queue}"),
            "jobDefinition": "arn:aws:batch:r:a:job-definition/d:1",
            "status": "SUBMITTED", "createdAt": 0, "sequence": sequence,
            "parameters": {"who": id}
        }))
        .unwrap();
        let job = JobSlot::from_job(job, &mut state.names);
        state.jobs.insert(id.into(), Box::new(job));
        state.make_runnable(id);
    }

    fn place(state: &mut State) -> Vec<AttemptPlan> {
        super::place(state, 0).plans
    }

    fn placed(plans: &[AttemptPlan]) -> Vec<(&str, &str)> {
        plans
            .iter()
            .map(|p| (p.job_id.as_str(), p.environment.as_str()))
            .collect()
    }

    #[test]
    fn higher_priority_queues_go_first_and_each_queue_is_fifo() {
        let mut state = State::empty();
        env(&mut state, "ce", 2, true, true);
        definition(&mut state, "1", "64");
        queue(&mut state, "low", 1, &["ce"]);
        queue(&mut state, "high", 10, &["ce"]);
        job(&mut state, "low-1", "low");
        job(&mut state, "high-1", "high");
        job(&mut state, "high-2", "high");
        assert_eq!(
            placed(&place(&mut state)),
            [("high-1", "ce"), ("high-2", "ce")]
        );
        assert_eq!(
            state.jobs["low-1"].status,
            JobStatus::Runnable,
            "no capacity was left for it"
        );
        assert_eq!(state.jobs["high-1"].status, JobStatus::Starting);
    }

    #[test]
    fn a_job_goes_to_the_first_environment_in_order_with_room() {
        let mut state = State::empty();
        env(&mut state, "small", 1, true, true);
        env(&mut state, "off", 8, false, true);
        env(&mut state, "remote", 8, true, false);
        env(&mut state, "big", 4, true, true);
        definition(&mut state, "1", "64");
        queue(&mut state, "q", 1, &["small", "off", "remote", "big"]);
        for id in ["a", "b", "c"] {
            job(&mut state, id, "q");
        }
        assert_eq!(
            placed(&place(&mut state)),
            [("a", "small"), ("b", "big"), ("c", "big")]
        );
        assert_eq!(state.envs["big"].used_vcpus, 2.0);
        assert_eq!(state.envs["big"].used_memory_mib, 128);
    }

    #[test]
    fn a_job_that_does_not_fit_now_holds_its_queue() {
        let mut state = State::empty();
        env(&mut state, "ce", 2, true, true);
        definition(&mut state, "2", "64");
        queue(&mut state, "q", 1, &["ce"]);
        job(&mut state, "first", "q");
        job(&mut state, "second", "q");
        assert_eq!(placed(&place(&mut state)), [("first", "ce")]);
        assert!(place(&mut state).is_empty(), "FIFO: second waits for room");
        assert_eq!(state.jobs["second"].status, JobStatus::Runnable);
    }

    #[test]
    fn a_job_no_environment_could_ever_hold_is_set_aside_and_blocks_nobody() {
        let mut state = State::empty();
        env(&mut state, "ce", 2, true, true);
        definition(&mut state, "1", "64");
        queue(&mut state, "q", 1, &["ce"]);
        job(&mut state, "too-big", "q");
        job(&mut state, "fits", "q");
        // Its environment shrank after it was submitted (a submit would have been refused).
        state
            .envs
            .get_mut("ce")
            .unwrap()
            .env
            .compute_resources
            .as_mut()
            .unwrap()
            .maxv_cpus = 1;
        let big = state.jobs.get_mut("too-big").unwrap();
        let mut submission = (*big.submission).clone();
        submission.details_mut().container_overrides = Some(Box::new(
            serde_json::from_value(
                json!({"resourceRequirements": [{"type": "VCPU", "value": "2"}]}),
            )
            .unwrap(),
        ));
        big.submission = std::sync::Arc::new(submission);
        assert_eq!(placed(&place(&mut state)), [("fits", "ce")]);
        let big = &state.jobs["too-big"];
        assert_eq!(big.status, JobStatus::Runnable);
        assert!(
            big.status_reason.as_deref().unwrap().starts_with(
                "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - the job needs 2 vCPUs"
            ),
            "{:?}",
            big.status_reason
        );
    }

    #[test]
    fn a_disabled_queue_still_dispatches_what_it_holds() {
        let mut state = State::empty();
        env(&mut state, "ce", 2, true, true);
        definition(&mut state, "1", "64");
        queue(&mut state, "q", 1, &["ce"]);
        job(&mut state, "j", "q");
        state.queues.get_mut("q").unwrap().queue.state = OnOff::Disabled;
        assert_eq!(placed(&place(&mut state)), [("j", "ce")]);
    }

    #[test]
    fn memory_is_capacity_too() {
        let mut state = State::empty();
        env(&mut state, "ce", 64, true, true);
        definition(&mut state, "1", "600");
        queue(&mut state, "q", 1, &["ce"]);
        job(&mut state, "a", "q");
        job(&mut state, "b", "q");
        assert_eq!(
            placed(&place(&mut state)),
            [("a", "ce")],
            "1024 MiB holds one 600 MiB job"
        );
    }

    #[test]
    fn the_attempt_gets_its_command_parameters_environment_and_limits() {
        let mut state = State::empty();
        env(&mut state, "ce", 2, true, true);
        definition(&mut state, "1", "64");
        queue(&mut state, "q", 1, &["ce"]);
        job(&mut state, "j", "q");
        let plans = place(&mut state);
        let spec = &plans[0].spec;
        assert_eq!(spec.args, ["hello", "hi", "j"]);
        assert_eq!(spec.limits.memory_bytes, 64 << 20);
        let env: std::collections::HashMap<_, _> = spec.env.iter().cloned().collect();
        assert_eq!(env["COLOR"], "blue");
        assert_eq!(env["AWS_BATCH_JOB_ID"], "j");
        assert_eq!(env["AWS_BATCH_JOB_ATTEMPT"], "1");
        assert_eq!(env["AWS_BATCH_JQ_NAME"], "q");
        assert_eq!(env["AWS_BATCH_CE_NAME"], "ce");
        assert!(!env.contains_key("AWS_BATCH_JOB_ARRAY_INDEX"));
        assert_eq!(
            plans[0].image,
            "hello@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        );
    }
}
