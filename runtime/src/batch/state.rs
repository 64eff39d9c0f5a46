//! The in-memory state and the transitions that keep its indexes true: a job becoming runnable,
//! a job ending, and what its end means for the jobs that wait on it (dependents, array parent).
//! The state also keeps the list of what changed since it was last written ([`Changes`]): every
//! transition here notes what it touched, and the one write path (`Batch::change`) turns that
//! list into store records under the same lock, so no change can be made and not written.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::store::{Record, Table};

use crate::engine::KillSwitch;
use crate::model::scheduling::SchedulingPolicy;
use crate::model::{ComputeEnvironment, EpochMillis, JobDefinition, JobQueue, JobStatus};

use super::job_slot::{JobSlot, SharedNames};
use super::line::{Line, LineJob};

use crate::model::arn::{ResourceKind, stored_name};

pub(crate) struct State {
    pub(crate) envs: BTreeMap<String, EnvSlot>,
    pub(crate) queues: BTreeMap<String, QueueSlot>,
    /// Scheduling policies by name.
    pub(crate) policies: BTreeMap<String, SchedulingPolicy>,
    /// Revisions of each definition; revision r is at index r-1.
    pub(crate) definitions: BTreeMap<String, Vec<JobDefinition>>,
    /// Boxed: a queued job is mostly its map slot, and a slot the size of a job left the map
    /// two-fifths empty on average and made every growth copy whole jobs.
    pub(crate) jobs: HashMap<Arc<str>, Box<JobSlot>>,
    /// The queue and definition ARNs the jobs name, each held once.
    pub(crate) names: SharedNames,
    /// Dependencies not yet met, for each PENDING job that has some.
    pub(crate) unmet: HashMap<String, u32>,
    /// Jobs waiting on each job.
    pub(crate) dependents: HashMap<String, Vec<String>>,
    /// Children finished so far of each running array: (succeeded, failed).
    pub(crate) array_done: HashMap<String, (u32, u32)>,
    /// Kill switches of attempts in flight in this process.
    pub(crate) running: HashMap<String, KillSwitch>,
    /// Live remote workers by name (cluster mode): the capacity of UNMANAGED environments.
    pub(crate) workers: BTreeMap<String, WorkerSlot>,
    /// Attempts placed on remote workers, by job id (cluster mode).
    pub(crate) remote: HashMap<String, RemoteAttempt>,
    pub(crate) next_sequence: u64,
    /// Submits not yet known to be committed: (the first sequence a change added, the
    /// `next_sequence` after it, the store ticket it was sent with), oldest first. A job may run once the
    /// ticket of the change that added it is committed (see [`State::admission_ticket`]); jobs
    /// older than every entry were committed already. As long as commits are pending, no longer.
    admissions: VecDeque<(u64, u64, u64)>,
    /// Ended jobs by when they ended (stoppedAt, sequence): what retention removes next
    /// (`batch::retention`), without a walk over every job. Array children are not here: they go
    /// with their parent. Kept true by [`State::take_records`], which sees every job that changed.
    pub(crate) ended: BTreeMap<(EpochMillis, u64), String>,
    /// Jobs of `ended` before this key have had their logs removed (a shorter log retention).
    pub(crate) logs_removed_before: (EpochMillis, u64),
    /// Jobs by queue (its stored name) and status, array parents left out (their children
    /// count): kept as jobs change by [`State::count_status`], so a count never walks the jobs.
    pub(crate) counts: HashMap<String, [u64; JobStatus::ALL.len()]>,
    /// The jobs that have log streams (`super::streams`), kept with the counts.
    pub(crate) streams: super::streams::StreamIndex,
    /// Job state change events not yet written, and their sequence (`super::events`), noted
    /// with the counts.
    pub(crate) events: super::events::EventLog,
    /// What changed since the records were last taken.
    changes: Changes,
    /// What the scheduler has done so far.
    pub(crate) scheduling: super::snapshot::SchedulerStats,
    /// The service's counters and histograms (`crate::metrics`); atomic, so updated here
    /// under the lock and read by a scrape without it.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

/// What changed since [`State::take_records`] was last called, by key. A removed environment,
/// queue or policy is one whose key is here but no longer in the state.
#[derive(Default)]
struct Changes {
    /// Job ids, in the order they changed (a job may appear more than once).
    jobs: Vec<String>,
    environments: BTreeSet<String>,
    queues: BTreeSet<String>,
    /// Scheduling policies, by name.
    policies: BTreeSet<String>,
    /// (name, revision).
    definitions: BTreeSet<(String, u32)>,
    /// Jobs removed, by the table their record is in and their sequence (the store key; the
    /// jobs are gone, so the ids say nothing).
    removed_jobs: Vec<(Table, u64)>,
    /// Sequences whose logs are removed, as runs.
    removed_logs: Vec<std::ops::RangeInclusive<u64>>,
}

/// An environment and how much of it is in use.
pub(crate) struct EnvSlot {
    pub(crate) env: ComputeEnvironment,
    pub(crate) memory_mib: u64,
    pub(crate) used_vcpus: f64,
    pub(crate) used_memory_mib: u64,
}

impl EnvSlot {
    pub(crate) fn max_vcpus(&self) -> f64 {
        self.env
            .compute_resources
            .as_ref()
            .map_or(0.0, |r| f64::from(r.maxv_cpus))
    }

    pub(crate) fn fits(&self, vcpus: f64, memory_mib: u64) -> bool {
        self.used_vcpus + vcpus <= self.max_vcpus() + 1e-9
            && self.used_memory_mib + memory_mib <= self.memory_mib
    }
}

/// A remote worker, as its last heartbeat described it (cluster mode).
// Without the `cluster` feature none is ever made; the type stays so the scheduler is one.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) struct WorkerSlot {
    /// The UNMANAGED environment it gives capacity to.
    pub(crate) environment: String,
    /// Its process's session: attempts given to another session are not its own.
    pub(crate) session: String,
    pub(crate) host: String,
    pub(crate) vcpus: f64,
    pub(crate) memory_mib: u64,
    pub(crate) used_vcpus: f64,
    pub(crate) used_memory_mib: u64,
    /// When its last heartbeat arrived (monotonic, for the lease) and as a time for people.
    pub(crate) last_heard: std::time::Instant,
    pub(crate) last_heard_at: EpochMillis,
    /// Known only from the attempts a restarted control plane found journaled: it has not
    /// sent a heartbeat since, and takes no new work until it does.
    pub(crate) recovered: bool,
    /// How long its attempts have lately taken, in ms (a moving average; `None` before any).
    pub(crate) recent_attempt_ms: Option<f64>,
}

/// A worker of short attempts is given about this much work (in milliseconds of its attempts
/// lately) beyond what it runs at once: see [`WorkerSlot::depth`].
const PIPELINE_HORIZON_MS: f64 = 25.0;
/// The most times its capacity a worker is given at once, however short its attempts.
const MAX_PIPELINE_DEPTH: f64 = 32.0;

impl WorkerSlot {
    /// Whether the worker has room for the job with `depth` times its capacity placed on it.
    pub(crate) fn fits(&self, vcpus: f64, memory_mib: u64, depth: f64) -> bool {
        !self.recovered
            && self.used_vcpus + vcpus <= self.vcpus * depth + 1e-9
            && self.used_memory_mib + memory_mib <= (self.memory_mib as f64 * depth) as u64
    }

    /// How many times its capacity may be placed on it for a queue that `pipelines` (FIFO):
    /// a remote attempt's hand-offs take milliseconds, so a worker of attempts that end within
    /// a few of them would sit idle between them; it is given what it runs in about
    /// [`PIPELINE_HORIZON_MS`] and starts each when its own vCPUs and memory free up (the job
    /// is STARTING until then). Fair-share queues never are (their order is decided at
    /// placement), nor long attempts (a job queued behind one would wait for it).
    pub(crate) fn depth(&self, pipelines: bool) -> f64 {
        match self.recent_attempt_ms {
            // As many as it runs in the horizon: a hello of a fraction of a millisecond is
            // given 32 per vCPU, so one stored message carries tens of them and the worker
            // never waits for the next; a 5 ms attempt 5; one of 25 ms or more, none extra.
            Some(ms) if pipelines => {
                (PIPELINE_HORIZON_MS / ms.max(0.1)).clamp(1.0, MAX_PIPELINE_DEPTH)
            }
            _ => 1.0,
        }
    }

    /// Notes how long an attempt of its took.
    pub(crate) fn took(&mut self, ms: f64) {
        self.recent_attempt_ms = Some(match self.recent_attempt_ms {
            Some(recent) => 0.8 * recent + 0.2 * ms,
            None => ms,
        });
    }
}

/// Where an attempt's capacity is held and its job stands in line: what ending it releases.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub(crate) job_id: String,
    /// The job's submission sequence (how its queue's line knows it).
    pub(crate) sequence: u64,
    pub(crate) queue: String,
    pub(crate) environment: String,
    /// The remote worker it runs on, in cluster mode.
    pub(crate) worker: Option<String>,
    pub(crate) vcpus: f64,
    pub(crate) memory_mib: u64,
    pub(crate) log_stream_name: String,
    /// Where the attempt's log is kept (see `logs::log_key`).
    pub(crate) log_key: String,
    /// The module the image resolved to, once it has (recorded on the attempt).
    pub(crate) image_digest: Option<crate::engine::Digest>,
}

/// An attempt placed on a remote worker (cluster mode).
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) struct RemoteAttempt {
    pub(crate) placement: Placement,
    /// The worker's session it was given to.
    pub(crate) session: String,
    pub(crate) attempt: u32,
    /// Whether the worker reported it started.
    pub(crate) started: bool,
    /// A stop asked for (TerminateJob), sent with the worker's next lease.
    pub(crate) stop: Option<String>,
    /// Lines and bytes of output taken from its worker so far: held to the executor's caps
    /// here too, since a worker is another process that could send anything.
    pub(crate) output: (u64, u64),
}

/// A queue and its RUNNABLE jobs in the order it dispatches them.
pub(crate) struct QueueSlot {
    pub(crate) queue: JobQueue,
    pub(crate) line: Line,
}

impl QueueSlot {
    /// A queue with nobody in line yet (its policy is applied by
    /// [`State::scheduling_changed`]).
    pub(crate) fn new(queue: JobQueue) -> Self {
        Self {
            queue,
            line: Line::new(None, super::now()),
        }
    }
}

pub(crate) use crate::model::container::DEFAULT_VCPUS;

/// Job `job` as its queue's line knows it.
pub(crate) fn line_job<'a>(
    job: &'a JobSlot,
    definitions: &BTreeMap<String, Vec<JobDefinition>>,
) -> LineJob<'a> {
    let submission = &*job.submission;
    let vcpus = find_definition(definitions, &submission.job_definition)
        .map(|d| {
            crate::model::container::resources(
                d,
                submission.details().container_overrides.as_deref(),
            )
        })
        .and_then(|r| r.vcpus)
        .unwrap_or(DEFAULT_VCPUS);
    LineJob {
        id: job.job_id.clone(),
        sequence: job.sequence,
        share: submission.details().share_identifier.as_deref(),
        priority: submission.details().scheduling_priority,
        vcpus,
    }
}

/// The definition revision with ARN `arn`.
fn find_definition<'a>(
    definitions: &'a BTreeMap<String, Vec<JobDefinition>>,
    arn: &str,
) -> Option<&'a JobDefinition> {
    let name = stored_name(ResourceKind::JobDefinition, arn)
        .rsplit_once(':')
        .map_or("", |(name, _)| name);
    definitions
        .get(name)?
        .iter()
        .find(|d| d.job_definition_arn == arn)
}

impl State {
    /// The definition revision with ARN `arn`.
    pub(crate) fn definition(&self, arn: &str) -> Option<&JobDefinition> {
        find_definition(&self.definitions, arn)
    }

    pub(crate) fn empty() -> Self {
        Self {
            envs: BTreeMap::new(),
            queues: BTreeMap::new(),
            policies: BTreeMap::new(),
            definitions: BTreeMap::new(),
            jobs: HashMap::new(),
            names: SharedNames::default(),
            unmet: HashMap::new(),
            dependents: HashMap::new(),
            array_done: HashMap::new(),
            running: HashMap::new(),
            workers: BTreeMap::new(),
            remote: HashMap::new(),
            counts: HashMap::new(),
            streams: Default::default(),
            events: Default::default(),
            metrics: Arc::default(),
            next_sequence: 1,
            admissions: VecDeque::new(),
            ended: BTreeMap::new(),
            logs_removed_before: (EpochMillis::MIN, 0),
            changes: Changes::default(),
            scheduling: Default::default(),
        }
    }

    /// Notes that the jobs from `first_sequence` to before `next_sequence` were sent to the
    /// store by the write with `ticket`.
    pub(crate) fn admitted(&mut self, first_sequence: u64, ticket: u64) {
        if self.next_sequence > first_sequence {
            self.admissions
                .push_back((first_sequence, self.next_sequence, ticket));
        }
    }

    /// The store ticket that must be committed before the job with `sequence` runs: that of
    /// the change that added it, or 0 when it is known to be committed.
    pub(crate) fn admission_ticket(&self, sequence: u64) -> u64 {
        let i = self
            .admissions
            .partition_point(|(_, next, _)| *next <= sequence);
        match self.admissions.get(i) {
            Some((first, _, ticket)) if *first <= sequence => *ticket,
            _ => 0,
        }
    }

    /// Forgets the admissions committed by `through`.
    pub(crate) fn committed_through(&mut self, through: u64) {
        while self
            .admissions
            .front()
            .is_some_and(|(_, _, ticket)| *ticket <= through)
        {
            self.admissions.pop_front();
        }
    }

    /// Brings the queues' dispatch order up to date after a scheduling policy changed, or a
    /// queue's policy or time-limit actions did: weights, decay and reservation are read from
    /// the policies here.
    pub(crate) fn scheduling_changed(&mut self) {
        let now = super::now();
        for slot in self.queues.values_mut() {
            let policy = slot.queue.scheduling_policy_arn.as_deref().map(|arn| {
                // Stored canonical: the name is what follows `scheduling-policy/`.
                let name = arn.rsplit_once('/').map_or(arn, |(_, name)| name);
                self.policies
                    .get(name)
                    .and_then(|p| p.fairshare_policy.clone())
                    .unwrap_or_default()
            });
            if slot.line.is_fair_share() == policy.is_some() {
                slot.line.set_policy(policy, now);
                continue;
            }
            // FIFO became fair share (only at creation: AWS allows no other change of kind):
            // the line is built again, its jobs filed by share.
            let misfits = std::mem::take(&mut slot.line.misfits);
            slot.line = Line::new(policy, now);
            slot.line.misfits = misfits;
            let arn = &slot.queue.job_queue_arn;
            let mut waiting: Vec<&JobSlot> = self
                .jobs
                .values()
                .filter(|j| {
                    j.status == JobStatus::Runnable && *j.submission.job_queue == *arn.as_str()
                })
                .map(|j| &**j)
                .collect();
            waiting.sort_by_key(|j| j.sequence);
            for job in waiting {
                slot.line.push(line_job(job, &self.definitions), now);
            }
        }
        self.readmit_misfits();
    }

    /// Puts the jobs set aside as never fitting back in line, to be judged again against the
    /// queues' environments as they are now.
    pub(crate) fn readmit_misfits(&mut self) {
        let now = super::now();
        for slot in self.queues.values_mut() {
            for (_, misfit) in std::mem::take(&mut slot.line.misfits) {
                if let Some(job) = self.jobs.get(misfit.id.as_str()) {
                    slot.line.push(line_job(job, &self.definitions), now);
                }
            }
        }
    }

    /// Why no environment of `queue` could ever hold a job asking for `vcpus` and
    /// `memory_mib`, whatever else runs: AWS's reason code and words for people. `None` when one
    /// could, or when the queue has an UNMANAGED environment (whose capacity is not known here).
    pub(crate) fn never_fits(
        &self,
        queue: &JobQueue,
        vcpus: f64,
        memory_mib: u64,
    ) -> Option<(&'static str, String)> {
        let envs: Vec<&EnvSlot> = queue
            .compute_environment_order
            .iter()
            .filter_map(|o| {
                self.envs.get(stored_name(
                    ResourceKind::ComputeEnvironment,
                    &o.compute_environment,
                ))
            })
            .collect();
        if envs.is_empty()
            || envs
                .iter()
                .any(|e| e.env.kind != crate::model::ComputeEnvironmentType::Managed)
        {
            return None;
        }
        let holds_vcpus = |e: &&&EnvSlot| vcpus <= e.max_vcpus() + 1e-9;
        if envs
            .iter()
            .any(|e| holds_vcpus(&e) && memory_mib <= e.memory_mib)
        {
            return None;
        }
        let name = &queue.job_queue_name;
        if envs.iter().any(|e| holds_vcpus(&e)) {
            let most = envs.iter().map(|e| e.memory_mib).max().unwrap_or(0);
            return Some((
                "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
                format!(
                    "the job needs {memory_mib} MiB of memory; no compute environment of job queue {name} that has its {vcpus} vCPUs has more than {most} MiB"
                ),
            ));
        }
        let most = envs.iter().map(|e| e.max_vcpus()).fold(0.0, f64::max);
        Some((
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
            format!(
                "the job needs {vcpus} vCPUs; the compute environments of job queue {name} have at most {most} (maxvCpus)"
            ),
        ))
    }

    /// Adds to the fair-share queues' usage what their jobs' attempts ran before this process
    /// started, as recovery finds them, so a restart does not forget who has had the most.
    pub(crate) fn charge_past_usage(&mut self, now: EpochMillis) {
        for job in self.jobs.values() {
            if job.attempts.is_empty() {
                continue;
            }
            let queue = stored_name(ResourceKind::JobQueue, &job.submission.job_queue);
            let Some(slot) = self.queues.get_mut(queue) else {
                continue;
            };
            if !slot.line.is_fair_share() {
                continue;
            }
            let vcpus = line_job(job, &self.definitions).vcpus;
            for attempt in &job.attempts {
                if let (Some(started), Some(stopped)) = (attempt.started_at, attempt.stopped_at) {
                    slot.line.charge(
                        job.submission.details().share_identifier.as_deref(),
                        vcpus,
                        started,
                        stopped,
                        now,
                    );
                }
            }
        }
    }

    /// Notes that job `id` changed (or was added).
    pub(crate) fn touch_job(&mut self, id: &str) {
        self.changes.jobs.push(id.to_string());
        self.count_status(id);
    }

    /// Brings the counts up to date with job `id`'s status. Called when a job is touched and
    /// again when its record is taken, since some changes touch a job before they set its
    /// status.
    fn count_status(&mut self, id: &str) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.counted == Some(job.status) {
            return;
        }
        if !job.is_array_parent() {
            let queue = stored_name(ResourceKind::JobQueue, &job.submission.job_queue);
            let counts = match self.counts.get_mut(queue) {
                Some(counts) => counts,
                None => self.counts.entry(queue.to_string()).or_default(),
            };
            if let Some(was) = job.counted {
                counts[was as usize] = counts[was as usize].saturating_sub(1);
            }
            counts[job.status as usize] += 1;
        }
        let was = job.counted.replace(job.status);
        self.index_streams(id, was);
        self.note_event(id, was);
    }

    /// Counts every job, as recovery loads them.
    pub(crate) fn count_all(&mut self) {
        let ids: Vec<String> = self.jobs.keys().map(|id| id.to_string()).collect();
        for id in ids {
            self.count_status(&id);
        }
    }

    /// Takes a job that is leaving the state out of the counts.
    fn uncount(counts: &mut HashMap<String, [u64; JobStatus::ALL.len()]>, job: &JobSlot) {
        if let Some(was) = job.counted
            && !job.is_array_parent()
            && let Some(counts) = counts.get_mut(stored_name(
                ResourceKind::JobQueue,
                &job.submission.job_queue,
            ))
        {
            counts[was as usize] = counts[was as usize].saturating_sub(1);
        }
    }

    /// Removes job `id` (and, for an array parent, its children) from the state, noting the
    /// store records to delete. Its logs are not touched (see [`State::forget_logs`]). Returns
    /// the sequences removed.
    pub(crate) fn forget_job(&mut self, id: &str) -> Vec<u64> {
        let Some(job) = self.jobs.remove(id) else {
            return Vec::new();
        };
        Self::uncount(&mut self.counts, &job);
        Self::unindex_streams(&mut self.streams, &job);
        let mut sequences = vec![job.sequence];
        self.changes.removed_jobs.push((Table::Jobs, job.sequence));
        for index in 0..job.array_properties.and_then(|a| a.size).unwrap_or(0) {
            if let Some(child) = self.jobs.remove(format!("{id}:{index}").as_str()) {
                Self::uncount(&mut self.counts, &child);
                Self::unindex_streams(&mut self.streams, &child);
                sequences.push(child.sequence);
                // A child's own part is its record (see `job_record`).
                self.changes
                    .removed_jobs
                    .push((Table::ArrayChildren, child.sequence));
            }
        }
        if let Some(stopped) = job.stopped_at {
            self.ended.remove(&(stopped, job.sequence));
        }
        sequences
    }

    /// Notes that the logs of the jobs with these sequences are to be deleted from the store.
    pub(crate) fn forget_logs(&mut self, mut sequences: Vec<u64>) {
        sequences.sort_unstable();
        let mut runs: Vec<std::ops::RangeInclusive<u64>> = Vec::new();
        for sequence in sequences {
            match runs.last_mut() {
                Some(run) if *run.end() + 1 == sequence => *run = *run.start()..=sequence,
                _ => runs.push(sequence..=sequence),
            }
        }
        self.changes.removed_logs.extend(runs);
    }

    /// Puts job `id` in [`State::ended`] if it has ended (and is not an array child).
    fn index_ended(&mut self, id: &str) {
        if let Some(job) = self.jobs.get(id)
            && job.status.is_terminal()
            && job.array_parent().is_none()
        {
            let stopped = job.stopped_at.unwrap_or(job.submission.created_at);
            self.ended.insert((stopped, job.sequence), id.to_string());
        }
    }

    /// Builds [`State::ended`] from every job, as recovery finds them.
    pub(crate) fn index_all_ended(&mut self) {
        let ids: Vec<String> = self.jobs.keys().map(|id| id.to_string()).collect();
        for id in ids {
            self.index_ended(&id);
        }
    }

    /// Notes that environment `name` changed, was added or was removed.
    pub(crate) fn touch_environment(&mut self, name: &str) {
        self.changes.environments.insert(name.to_string());
    }

    /// Notes that queue `name` changed, was added or was removed.
    pub(crate) fn touch_queue(&mut self, name: &str) {
        self.changes.queues.insert(name.to_string());
    }

    /// Notes that scheduling policy `name` changed, was added or was removed.
    pub(crate) fn touch_policy(&mut self, name: &str) {
        self.changes.policies.insert(name.to_string());
    }

    /// Notes that revision `revision` of definition `name` changed or was added.
    pub(crate) fn touch_definition(&mut self, name: &str, revision: u32) {
        self.changes
            .definitions
            .insert((name.to_string(), revision));
    }

    /// The store records of everything changed since the last call, each key once, as it is
    /// now; and forgets the changes.
    pub(crate) fn take_records(&mut self) -> Vec<Record> {
        let changes = std::mem::take(&mut self.changes);
        let mut records = Vec::with_capacity(
            changes.jobs.len()
                + changes.environments.len()
                + changes.queues.len()
                + changes.policies.len()
                + changes.definitions.len(),
        );
        for name in changes.environments {
            records.push(match self.envs.get(&name) {
                Some(slot) => Record::put(Table::ComputeEnvironments, &name, &slot.env),
                None => Record::Delete {
                    table: Table::ComputeEnvironments,
                    key: name,
                },
            });
        }
        for name in changes.queues {
            records.push(match self.queues.get(&name) {
                Some(slot) => Record::put(Table::JobQueues, &name, &slot.queue),
                None => Record::Delete {
                    table: Table::JobQueues,
                    key: name,
                },
            });
        }
        for name in changes.policies {
            records.push(match self.policies.get(&name) {
                Some(policy) => Record::put(Table::SchedulingPolicies, &name, policy),
                None => Record::Delete {
                    table: Table::SchedulingPolicies,
                    key: name,
                },
            });
        }
        for (name, revision) in changes.definitions {
            if let Some(definition) = self.revision(&name, revision) {
                records.push(Record::put(
                    Table::JobDefinitions,
                    format!("{name}:{revision}"),
                    definition,
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for id in &changes.jobs {
            if !seen.insert(id.as_str()) {
                continue;
            }
            self.count_status(id);
            if let Some(job) = self.jobs.get(id.as_str()) {
                records.push(job_record(job));
                self.index_ended(id);
            }
        }
        for (table, sequence) in changes.removed_jobs {
            records.push(Record::Delete {
                table,
                key: sequence_key(sequence),
            });
        }
        self.events.take_records(&mut records);
        for run in changes.removed_logs {
            let keys = crate::logs::log_keys(run);
            records.push(Record::DeleteRange {
                table: Table::LogChunks,
                start: keys.start,
                end: keys.end,
            });
        }
        records
    }

    /// Revision `revision` of definition `name`.
    pub(crate) fn revision(&self, name: &str, revision: u32) -> Option<&JobDefinition> {
        self.definitions
            .get(name)?
            .get((revision as usize).checked_sub(1)?)
    }

    /// Revision `revision` of definition `name`, to change it (noted as changed).
    pub(crate) fn revision_mut(&mut self, name: &str, revision: u32) -> Option<&mut JobDefinition> {
        let index = (revision as usize).checked_sub(1)?;
        self.definitions.get(name)?.get(index)?;
        self.touch_definition(name, revision);
        self.definitions.get_mut(name)?.get_mut(index)
    }

    /// Makes a job RUNNABLE and puts it in its queue's line.
    pub(crate) fn make_runnable(&mut self, id: &str) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.status = JobStatus::Runnable;
        self.requeue(id);
        self.touch_job(id);
    }

    /// Puts a RUNNABLE job in its queue's line, as recovery finds it stored (nothing changed).
    pub(crate) fn requeue(&mut self, id: &str) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        let queue = stored_name(ResourceKind::JobQueue, &job.submission.job_queue);
        if let Some(slot) = self.queues.get_mut(queue) {
            slot.line
                .push(line_job(job, &self.definitions), super::now());
        }
    }

    /// Marks a job FAILED (if it is not already over) without looking at who waits on it; call
    /// [`State::settle`] with the ids this returns.
    pub(crate) fn fail_one(&mut self, id: &str, reason: &str, now: EpochMillis) -> bool {
        let Some(job) = self.jobs.get(id) else {
            return false;
        };
        if job.status.is_terminal() {
            return false;
        }
        if job.status == JobStatus::Runnable {
            let queue = stored_name(ResourceKind::JobQueue, &job.submission.job_queue);
            if let Some(slot) = self.queues.get_mut(queue) {
                slot.line
                    .remove(line_job(job, &self.definitions), super::now());
            }
        }
        let job = self.jobs.get_mut(id).expect("found above");
        job.status = JobStatus::Failed;
        job.status_reason = Some(reason.to_string());
        job.stopped_at = Some(now);
        self.unmet.remove(id);
        self.touch_job(id);
        true
    }

    /// Follows the consequences of jobs having ended: array parents complete when their last
    /// child does, dependents become runnable when all they wait on succeeded, or fail when one
    /// failed. A worklist, not recursion: a failing 10,000-child SEQUENTIAL array is a chain.
    pub(crate) fn settle(&mut self, ended: Vec<String>, now: EpochMillis) {
        let mut work: VecDeque<String> = ended.into();
        while let Some(id) = work.pop_front() {
            let Some(job) = self.jobs.get(id.as_str()) else {
                continue;
            };
            let succeeded = job.status == JobStatus::Succeeded;
            if let Some(parent) = job.array_parent().map(str::to_string) {
                let size = self
                    .jobs
                    .get(parent.as_str())
                    .and_then(|p| p.array_properties?.size)
                    .unwrap_or(0);
                let done = self.array_done.entry(parent.clone()).or_default();
                if succeeded {
                    done.0 += 1
                } else {
                    done.1 += 1
                }
                let (ok, failed) = *done;
                if ok + failed >= size {
                    // The counts say the array is done; its children say whether it is, so a
                    // child counted twice cannot end the parent while others still run (issue
                    // 14). Once per array while the counts are true; a wrong one is put right.
                    let (ok, failed, all_ended) = self.children_ended(&parent, size);
                    self.array_done.remove(&parent);
                    if !all_ended {
                        self.array_done.insert(parent, (ok, failed));
                    } else if let Some(p) = self
                        .jobs
                        .get_mut(parent.as_str())
                        .filter(|p| !p.status.is_terminal())
                    {
                        p.stopped_at = Some(now);
                        if failed == 0 {
                            p.status = JobStatus::Succeeded;
                            p.status_reason = None;
                        } else {
                            p.status = JobStatus::Failed;
                            p.status_reason = Some(format!("{failed} of {size} child jobs failed"));
                        }
                        self.touch_job(&parent);
                        work.push_back(parent);
                    }
                }
            }
            for dependent in self.dependents.remove(&id).unwrap_or_default() {
                if succeeded {
                    let remaining = self.unmet.get_mut(&dependent).map(|n| {
                        *n = n.saturating_sub(1);
                        *n
                    });
                    if remaining == Some(0) {
                        self.unmet.remove(&dependent);
                        if self.waited_enough(&dependent, now) {
                            work.push_back(dependent);
                        }
                    }
                } else if self.fail_one(&dependent, &format!("Dependent Job failed: {id}"), now) {
                    work.push_back(dependent);
                }
            }
        }
    }

    /// A PENDING job's dependencies have all completed: it becomes RUNNABLE, or, if it was
    /// cancelled while it waited, it is cancelled now (as AWS does). True if it ended.
    pub(crate) fn waited_enough(&mut self, id: &str, now: EpochMillis) -> bool {
        let Some(job) = self
            .jobs
            .get(id)
            .filter(|j| matches!(j.status, JobStatus::Pending | JobStatus::Submitted))
        else {
            return false;
        };
        if job.is_cancelled {
            let reason = job
                .status_reason
                .clone()
                .unwrap_or_else(|| "Cancelled".into());
            return self.fail_one(id, &reason, now);
        }
        self.make_runnable(id);
        false
    }

    /// How many of array `parent`'s `size` children have succeeded and failed, and whether
    /// every one of them has ended.
    fn children_ended(&self, parent: &str, size: u32) -> (u32, u32, bool) {
        let (mut ok, mut failed, mut all_ended) = (0, 0, true);
        for index in 0..size {
            match self
                .jobs
                .get(format!("{parent}:{index}").as_str())
                .map(|c| c.status)
            {
                Some(JobStatus::Succeeded) => ok += 1,
                Some(JobStatus::Failed) => failed += 1,
                _ => all_ended = false,
            }
        }
        (ok, failed, all_ended)
    }

    /// Counts of an array parent's children by status.
    pub(crate) fn array_summary(&self, parent: &JobSlot) -> BTreeMap<JobStatus, u32> {
        let mut counts = BTreeMap::new();
        let size = parent.array_properties.and_then(|a| a.size).unwrap_or(0);
        for index in 0..size {
            if let Some(child) = self.jobs.get(format!("{}:{index}", parent.job_id).as_str()) {
                *counts.entry(child.status).or_insert(0) += 1;
            }
        }
        counts
    }
}

/// A job's key in the store: its submission sequence, zero-padded so keys sort as numbers.
/// Jobs are only ever found by id in memory; on disk, keys in submission order put the
/// records a burst of submits and completions touches on a few neighbouring B-tree pages,
/// where random ids would dirty a page per job in every transaction.
pub(crate) fn job_key(job: &JobSlot) -> String {
    sequence_key(job.sequence)
}

fn sequence_key(sequence: u64) -> String {
    format!("{sequence:020}")
}

/// A job's record as it is now: an array child's own part in `ArrayChildren` (what it shares is
/// its parent's record), any other job whole in `Jobs`.
fn job_record(job: &JobSlot) -> Record {
    match job.array_properties.and_then(|a| a.index) {
        Some(index) => Record::put(
            Table::ArrayChildren,
            job_key(job),
            &job.to_stored_child(index),
        ),
        None => Record::put(Table::Jobs, job_key(job), &job.to_job()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn insert(state: &mut State, id: &str, status: &str, array: serde_json::Value) {
        let job: crate::model::Job = serde_json::from_value(json!({
            "jobId": id, "jobArn": id, "jobName": "p",
            "jobQueue": "arn:aws:batch:r:a:job-queue/q",
            "jobDefinition": "arn:aws:batch:r:a:job-definition/d:1",
            "status": status, "createdAt": 0, "arrayProperties": array
        }))
        .unwrap();
        let job = JobSlot::from_job(job, &mut state.names);
        state.jobs.insert(id.into(), Box::new(job));
    }

    #[test]
    fn a_job_waits_for_the_commit_of_the_change_that_added_it_and_no_later_one() {
        let mut state = State::empty();
        state.next_sequence = 11; // jobs 1..=10 added by the write with ticket 4
        state.admitted(1, 4);
        state.next_sequence = 15; // jobs 11..=14 by ticket 9
        state.admitted(11, 9);
        state.admitted(15, 12); // a change that added no job
        assert_eq!(state.admission_ticket(1), 4);
        assert_eq!(state.admission_ticket(10), 4);
        assert_eq!(state.admission_ticket(11), 9);
        assert_eq!(state.admission_ticket(14), 9);
        state.committed_through(5);
        assert_eq!(state.admission_ticket(3), 0, "committed: runs at once");
        assert_eq!(state.admission_ticket(12), 9);
        state.committed_through(9);
        assert_eq!(state.admission_ticket(12), 0);
    }

    #[test]
    fn a_parent_whose_counts_run_ahead_of_its_children_waits_for_them() {
        let mut state = State::empty();
        insert(&mut state, "p", "PENDING", json!({"size": 2}));
        insert(&mut state, "p:0", "FAILED", json!({"index": 0}));
        insert(&mut state, "p:1", "RUNNABLE", json!({"index": 1}));
        // Child 0 already counted, as a double count would have it, and now reported as ended.
        state.array_done.insert("p".into(), (0, 1));
        state.settle(vec!["p:0".into()], 10);
        assert_eq!(state.jobs["p"].status, JobStatus::Pending, "child 1 runs");
        assert_eq!(state.array_done["p"], (0, 1), "the count is put right");

        state.jobs.get_mut("p:1").unwrap().status = JobStatus::Succeeded;
        state.take_records();
        state.settle(vec!["p:1".into()], 20);
        let parent = &state.jobs["p"];
        assert_eq!(parent.status, JobStatus::Failed);
        assert_eq!(
            parent.status_reason.as_deref(),
            Some("1 of 2 child jobs failed")
        );
        assert_eq!(parent.stopped_at, Some(20));
        let written: Vec<String> = state
            .take_records()
            .into_iter()
            .filter_map(|r| match r {
                // The parent's move to FAILED, as an event.
                Record::Put {
                    table: Table::JobEvents,
                    ..
                } => None,
                Record::Put { table, value, .. } => {
                    assert_eq!(table, Table::Jobs);
                    Some(
                        serde_json::from_slice::<crate::model::Job>(&value)
                            .unwrap()
                            .job_id,
                    )
                }
                other => panic!("not a put: {other:?}"),
            })
            .collect();
        assert_eq!(written, ["p"], "the parent's end is what is written");
    }
}
