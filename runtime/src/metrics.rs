//! What the service counts for the people who run it, in Prometheus' data model
//! (`prometheus-client`). Counters and histograms are updated where things happen: submits,
//! placements, attempt ends, store commits. Gauges are read from the state when a scrape asks:
//! jobs by queue and status, capacity in use, fair-share usage, workers. Nothing here walks the
//! jobs. An embedder adds all of it to its own registry with [`Batch::register_metrics`], and
//! `wasmbatch serve` serves that registry on `--metrics-listen`.
//!
//! Label values come only from names the service holds (queues, environments, shares, workers)
//! or from fixed sets (statuses, outcome kinds). A caller's input never becomes a label, so a
//! scrape stays as large as the configuration.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::batch::{Batch, Shared};
use crate::engine::{ExitStatus, Outcome};
use crate::model::JobStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    queue: String,
    /// `exit_zero`, `exit_nonzero`, or the failure's kind (`OutOfFuel`, `Timeout`, …).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    queue: String,
    stream: &'static str,
}

type Histograms = Family<QueueLabel, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 100 µs to ~28 min.
    Histogram::new(exponential_buckets(1e-4, 4.0, 12))
}

fn fuel() -> Histogram {
    // 1,000 to ~4 × 10^12 units.
    Histogram::new(exponential_buckets(1e3, 4.0, 17))
}

fn bytes() -> Histogram {
    // 64 KiB (one wasm page) to 64 GiB.
    Histogram::new(exponential_buckets(65_536.0, 4.0, 11))
}

/// The counters and histograms the control plane updates as it goes.
pub(crate) struct Metrics {
    submits: Family<QueueLabel, Counter>,
    placements: Family<QueueLabel, Counter>,
    attempt_ends: Family<EndLabels, Counter>,
    attempt_seconds: Histograms,
    attempt_fuel: Histograms,
    attempt_peak_memory: Histograms,
    log_bytes_dropped: Family<StreamLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            submits: Family::default(),
            placements: Family::default(),
            attempt_ends: Family::default(),
            attempt_seconds: Family::new_with_constructor(seconds),
            attempt_fuel: Family::new_with_constructor(fuel),
            attempt_peak_memory: Family::new_with_constructor(bytes),
            log_bytes_dropped: Family::default(),
        }
    }
}

impl Metrics {
    /// A SubmitJob accepted into `queue` (an array counts once).
    pub(crate) fn submitted(&self, queue: &str) {
        self.submits.get_or_create(&queue_label(queue)).inc();
    }

    /// An attempt placed from `queue`.
    pub(crate) fn placed(&self, queue: &str) {
        self.placements.get_or_create(&queue_label(queue)).inc();
    }

    /// An attempt of a job of `queue` ended with `outcome`; `ran` if it started.
    pub(crate) fn ended(&self, queue: &str, outcome: &Outcome, ran: bool) {
        let kind = match &outcome.status {
            ExitStatus::Exited(0) => "exit_zero".to_string(),
            ExitStatus::Exited(_) => "exit_nonzero".to_string(),
            ExitStatus::Failed(failure) => format!("{:?}", failure.kind),
        };
        self.attempt_ends
            .get_or_create(&EndLabels {
                queue: queue.to_string(),
                outcome: kind,
            })
            .inc();
        if !ran {
            return;
        }
        let label = queue_label(queue);
        self.attempt_seconds
            .get_or_create(&label)
            .observe(outcome.wall_time.as_secs_f64());
        if let Some(fuel) = outcome.fuel_consumed {
            self.attempt_fuel.get_or_create(&label).observe(fuel as f64);
        }
        self.attempt_peak_memory
            .get_or_create(&label)
            .observe(outcome.peak_memory_bytes as f64);
        for (stream, stats) in [("stdout", outcome.stdout), ("stderr", outcome.stderr)] {
            if stats.bytes_dropped > 0 {
                self.log_bytes_dropped
                    .get_or_create(&StreamLabels {
                        queue: queue.to_string(),
                        stream,
                    })
                    .inc_by(stats.bytes_dropped);
            }
        }
    }
}

fn queue_label(queue: &str) -> QueueLabel {
    QueueLabel {
        queue: queue.to_string(),
    }
}

impl Batch {
    /// Adds the service's metrics to `registry`, all named `wasmbatch_…`. Counters and
    /// histograms are shared with the service, which updates them as it runs. Gauges are read
    /// from it at each scrape, and a scrape after the service has closed finds none.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let shared = &self.shared;
        let metrics = shared.lock().metrics.clone();
        registry.register(
            "wasmbatch_job_submits",
            "SubmitJob calls accepted, by job queue (an array job counts once)",
            metrics.submits.clone(),
        );
        registry.register(
            "wasmbatch_placements",
            "Attempts placed on capacity, by job queue",
            metrics.placements.clone(),
        );
        registry.register(
            "wasmbatch_attempt_ends",
            "Attempts ended, by job queue and outcome (exit_zero, exit_nonzero, or the failure's \
             kind: OutOfFuel, Timeout, MemoryLimit, Killed, HostLost, ModuleInvalid, …)",
            metrics.attempt_ends.clone(),
        );
        registry.register_with_unit(
            "wasmbatch_attempt_duration",
            "Wall-clock time of attempts that started, by job queue",
            Unit::Seconds,
            metrics.attempt_seconds.clone(),
        );
        registry.register(
            "wasmbatch_attempt_fuel",
            "Fuel consumed by attempts that started with a fuel budget, by job queue",
            metrics.attempt_fuel.clone(),
        );
        registry.register_with_unit(
            "wasmbatch_attempt_peak_memory",
            "Peak linear memory of attempts that started, by job queue",
            Unit::Bytes,
            metrics.attempt_peak_memory.clone(),
        );
        registry.register_with_unit(
            "wasmbatch_log_dropped",
            "Output bytes guests wrote past their attempt's output caps, by job queue and stream",
            Unit::Bytes,
            metrics.log_bytes_dropped.clone(),
        );
        let commits = shared.store.commit_metrics();
        registry.register_with_unit(
            "wasmbatch_store_commit",
            "Time of each store commit (one redb transaction with its fsync)",
            Unit::Seconds,
            commits.seconds.clone(),
        );
        registry.register(
            "wasmbatch_store_commit_records",
            "Records written by each store commit",
            commits.records.clone(),
        );
        registry.register_collector(Box::new(Readings(Arc::downgrade(shared))));
    }
}

/// The gauges, read from the service at each scrape.
#[derive(Debug)]
struct Readings(Weak<Shared>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    queue: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvironmentLabel {
    environment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShareLabels {
    queue: String,
    share: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
    environment: String,
}

type Gauges<L> = Family<L, Gauge<f64, AtomicU64>>;

/// Encodes `family` under `name`.
fn family<L, M>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    family: &Family<L, M>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug,
    M: EncodeMetric + prometheus_client::metrics::TypedMetric + Default + std::fmt::Debug,
{
    let metric = encoder.encode_descriptor(name, help, unit, family.metric_type())?;
    family.encode(metric)
}

impl Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(shared) = self.0.upgrade() else {
            return Ok(());
        };
        let jobs: Gauges<JobLabels> = Family::default();
        let env_vcpus: Gauges<EnvironmentLabel> = Family::default();
        let env_vcpus_used: Gauges<EnvironmentLabel> = Family::default();
        let share_usage: Gauges<ShareLabels> = Family::default();
        let share_vcpus: Gauges<ShareLabels> = Family::default();
        let worker_vcpus: Gauges<WorkerLabels> = Family::default();
        let worker_vcpus_used: Gauges<WorkerLabels> = Family::default();
        let worker_memory: Gauges<WorkerLabels> = Family::default();
        let (running_here, workers) = {
            let mut state = shared.lock();
            let state = &mut *state;
            for (queue, counts) in &state.counts {
                for (status, n) in JobStatus::ALL.iter().zip(counts) {
                    jobs.get_or_create(&JobLabels {
                        queue: queue.clone(),
                        status: status.as_str(),
                    })
                    .set(*n as f64);
                }
            }
            for (name, slot) in &state.envs {
                let label = EnvironmentLabel {
                    environment: name.clone(),
                };
                env_vcpus.get_or_create(&label).set(slot.max_vcpus());
                env_vcpus_used.get_or_create(&label).set(slot.used_vcpus);
            }
            let now = crate::batch::now();
            for (queue, slot) in &mut state.queues {
                for share in slot.line.snapshot(|_| None, now, 0).shares {
                    let label = ShareLabels {
                        queue: queue.clone(),
                        share: share.share_identifier,
                    };
                    share_usage
                        .get_or_create(&label)
                        .set(share.usage_vcpu_seconds);
                    share_vcpus.get_or_create(&label).set(share.vcpus_in_use);
                }
            }
            for (name, worker) in &state.workers {
                let label = WorkerLabels {
                    worker: name.clone(),
                    environment: worker.environment.clone(),
                };
                worker_vcpus.get_or_create(&label).set(worker.vcpus);
                worker_vcpus_used
                    .get_or_create(&label)
                    .set(worker.used_vcpus);
                worker_memory
                    .get_or_create(&label)
                    .set(worker.memory_mib as f64 * 1_048_576.0);
            }
            (state.running.len(), state.workers.len())
        };
        family(
            &mut encoder,
            "wasmbatch_jobs",
            "Jobs the service holds, by job queue and status (array parents left out; their \
             children count)",
            None,
            &jobs,
        )?;
        family(
            &mut encoder,
            "wasmbatch_compute_environment_vcpus",
            "vCPUs of each compute environment (maxvCpus; for UNMANAGED, its workers' total)",
            None,
            &env_vcpus,
        )?;
        family(
            &mut encoder,
            "wasmbatch_compute_environment_vcpus_in_use",
            "vCPUs held by attempts, by compute environment",
            None,
            &env_vcpus_used,
        )?;
        family(
            &mut encoder,
            "wasmbatch_share_usage_vcpu_seconds",
            "Fair-share usage (vCPU-seconds, decayed over the policy's window), by queue and share",
            None,
            &share_usage,
        )?;
        family(
            &mut encoder,
            "wasmbatch_share_vcpus_in_use",
            "vCPUs held by a share's attempts, by queue and share",
            None,
            &share_vcpus,
        )?;
        let executor = shared.executor.slots();
        let slots = [
            (
                "wasmbatch_executor_slots_in_use",
                "Attempts running in this process's executor",
                executor.0,
            ),
            (
                "wasmbatch_executor_slots",
                "Attempts this process's executor runs at once at most",
                executor.1,
            ),
            (
                "wasmbatch_local_attempts",
                "Attempts on MANAGED capacity in flight (placed, loading or running)",
                running_here as u64,
            ),
            (
                "wasmbatch_workers",
                "Remote workers with a live lease (cluster mode)",
                workers as u64,
            ),
        ];
        for (name, help, value) in slots {
            let gauge: Gauge = Gauge::default();
            gauge.set(value as i64);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        family(
            &mut encoder,
            "wasmbatch_worker_vcpus",
            "vCPUs a worker declared (cluster mode)",
            None,
            &worker_vcpus,
        )?;
        family(
            &mut encoder,
            "wasmbatch_worker_vcpus_in_use",
            "vCPUs held on a worker by its attempts (cluster mode)",
            None,
            &worker_vcpus_used,
        )?;
        family(
            &mut encoder,
            "wasmbatch_worker_memory",
            "Memory a worker declared (cluster mode)",
            Some(&Unit::Bytes),
            &worker_memory,
        )?;
        let cache = shared.executor.cache_stats();
        let compiles = ConstCounter::new(cache.compiled);
        let metric = encoder.encode_descriptor(
            "wasmbatch_module_compiles",
            "Modules compiled from their bytes (not read back from a compiled artifact)",
            None,
            compiles.metric_type(),
        )?;
        compiles.encode(metric)?;
        let compile_time = ConstCounter::new(shared.executor.compile_time().as_secs_f64());
        let metric = encoder.encode_descriptor(
            "wasmbatch_module_compile",
            "Time spent compiling modules",
            Some(&Unit::Seconds),
            compile_time.metric_type(),
        )?;
        compile_time.encode(metric)?;
        let loads = ConstCounter::new(cache.loaded_from_disk);
        let metric = encoder.encode_descriptor(
            "wasmbatch_module_artifact_loads",
            "Modules read back from a compiled artifact on disk",
            None,
            loads.metric_type(),
        )?;
        loads.encode(metric)
    }
}
