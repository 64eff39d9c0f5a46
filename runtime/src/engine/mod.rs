//! The engine: runs one attempt of a WASI program under limits and reports its [`Outcome`].
//!
//! One [`Executor`] per process owns the wasmtime `Engine` (async, pooling allocator,
//! copy-on-write memory images, epoch interruption, fuel), the module cache and the epoch
//! ticker. Each attempt gets a fresh `Store` from the pool, a private scratch directory, captured
//! output, and its limits: a memory cap, an optional fuel budget, a wall-clock deadline and a
//! kill switch. Guests run as async tasks that yield at every epoch tick, so a spinning guest
//! never holds a tokio worker; one that has run for a while goes on on threads of lower OS
//! priority (`lanes`), so a new attempt does not wait behind it.
//!
//! Files: `config` (sizing), `module_cache` (digest → compiled, linked module), `ledger` (which
//! compiled artifacts may be loaded), `wasi` (store state and linkers), `limits` (memory cap),
//! `output` (stdout/stderr capture), `attempt` (an attempt's inputs), `outcome` (how it ended),
//! `epoch` (the ticker), `lanes` (where attempts run), `error`.

mod attempt;
mod config;
mod epoch;
mod error;
mod lanes;
mod ledger;
mod limits;
mod module_cache;
mod outcome;
mod output;
mod scratch;
mod wasi;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

pub use attempt::{Access, AttemptSpec, DirGrant, HostDir, KillSwitch, Limits};
pub use config::ExecutorConfig;
pub use error::{ExecutorError, LoadError};
pub use ledger::{ArtifactDigest, ArtifactLedger, MemoryLedger};
pub use module_cache::{CacheStats, Digest, JobModule, ModuleKind};
pub use outcome::{ExitStatus, Failure, FailureKind, Outcome};
pub use output::{DiscardOutput, LOG_EVENT_OVERHEAD, OutputSink, StreamKind, StreamStats};

use limits::MemoryLimiter;
use module_cache::{ModuleCache, Pre};
use outcome::{AttemptEnd, Interruption};
use output::{CapturedStream, OutputCap};
use scratch::{Scratch, ScratchDirs};
use wasi::{AttemptState, Linkers, P2Wasi};

/// Where the attempt's scratch directory appears in the guest.
pub const SCRATCH_GUEST_PATH: &str = "/scratch";

/// Runs WASI modules under limits. Cheap to clone; clones share the engine, pool and cache.
///
/// ```no_run
/// use wasmbatch_runtime::{AttemptSpec, Executor, ExecutorConfig, Limits};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let executor = Executor::new(ExecutorConfig::new("/var/lib/my-app/wasm"))?;
/// let module = executor.load(std::fs::read("hello.wasm")?).await?;
/// let spec = AttemptSpec {
///     args: vec!["hello.wasm".into(), "world".into()],
///     limits: Limits { memory_bytes: 64 << 20, fuel: Some(50_000_000), ..Limits::default() },
///     output: std::sync::Arc::new(|stream, line: &str| println!("[{stream}] {line}")),
///     ..AttemptSpec::default()
/// };
/// let outcome = executor.run(&module, spec).await;
/// println!("exit code {:?}, fuel used {:?}", outcome.exit_code(), outcome.fuel_consumed);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    config: ExecutorConfig,
    cache: ModuleCache,
    /// One permit per pool slot: an attempt waits here instead of failing when the pool is full.
    slots: Semaphore,
    scratch: ScratchDirs,
    lanes: lanes::Lanes,
}

impl Executor {
    /// Builds the engine, the pool and the caches, and starts the epoch ticker. Compiled
    /// artifacts are vouched for by a fresh [`MemoryLedger`]: artifacts already in
    /// `<data_dir>/compiled` (another process's, or this one's before a restart) are not
    /// trusted, so each module is compiled once per executor and its artifact rewritten. Use
    /// [`Executor::with_ledger`] with a ledger that outlives the executor to reuse them.
    pub fn new(config: ExecutorConfig) -> Result<Self, ExecutorError> {
        Self::with_ledger(config, Arc::new(MemoryLedger::new()))
    }

    /// As [`Executor::new`], with `ledger` deciding which compiled artifacts on disk may be
    /// loaded (it records each artifact the executor writes, and only those are loaded). A
    /// [`Batch`](crate::Batch) passes one kept in its database.
    pub fn with_ledger(
        config: ExecutorConfig,
        ledger: Arc<dyn ArtifactLedger>,
    ) -> Result<Self, ExecutorError> {
        config.validate()?;
        let engine =
            Engine::new(&config.wasmtime()).map_err(|e| ExecutorError::Engine(format!("{e:#}")))?;
        let linkers =
            Arc::new(Linkers::new(&engine).map_err(|e| ExecutorError::Engine(format!("{e:#}")))?);
        let scratch_root = config.data_dir.join("scratch");
        let artifact_dir = config.data_dir.join("compiled");
        for dir in [&scratch_root, &artifact_dir] {
            crate::private_files::create_dir_all(dir)
                .and_then(|()| crate::private_files::tighten(dir))
                .map_err(|source| ExecutorError::DataDir {
                    path: dir.clone(),
                    source,
                })?;
        }
        epoch::start_ticker(&engine, config.epoch_tick);
        let cache = ModuleCache::new(
            engine.clone(),
            linkers,
            artifact_dir,
            config.max_concurrent_compiles,
            module_cache::CompileLimits {
                max_functions: config.max_module_functions,
                max_time: config.max_compile_time,
            },
            ledger,
        );
        let scratch = ScratchDirs::new(
            scratch_root,
            config.keep_scratch,
            config.max_concurrent_attempts as usize,
        );
        let lanes = match config.long_attempt_after {
            None => lanes::Lanes::single(),
            Some(_) => {
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                lanes::Lanes::with_long_lane(threads, config.long_attempt_nice).map_err(|e| {
                    ExecutorError::Engine(format!("starting the long-attempt threads: {e}"))
                })?
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                lanes,
                slots: Semaphore::new(config.max_concurrent_attempts as usize),
                engine,
                config,
                cache,
                scratch,
            }),
        })
    }

    /// The configuration the executor was built with.
    pub fn config(&self) -> &ExecutorConfig {
        &self.inner.config
    }

    /// Loads a module or component from its bytes: from memory if this digest was loaded
    /// before, else from its compiled artifact on disk, else by compiling it (off the async
    /// workers). Concurrent loads of one digest compile it once.
    pub async fn load(&self, bytes: impl Into<Arc<[u8]>>) -> Result<JobModule, LoadError> {
        self.inner.cache.load(bytes.into()).await
    }

    /// Forgets module `digest` (removed from the module store): its loaded form and its
    /// compiled artifacts on disk, off the async workers.
    pub async fn forget(&self, digest: Digest) {
        let executor = self.clone();
        let _ = tokio::task::spawn_blocking(move || executor.inner.cache.forget(digest)).await;
    }

    /// Attempts running now, and the most that run at once
    /// ([`ExecutorConfig::max_concurrent_attempts`]).
    pub fn slots(&self) -> (u64, u64) {
        let most = u64::from(self.inner.config.max_concurrent_attempts);
        let free = self.inner.slots.available_permits() as u64;
        (most.saturating_sub(free), most)
    }

    /// Time spent compiling modules so far (not reading compiled artifacts back).
    pub fn compile_time(&self) -> std::time::Duration {
        self.inner.cache.compile_time()
    }

    /// How the module cache has answered so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Loads `bytes` and runs one attempt; a module that does not load gives a
    /// [`FailureKind::ModuleInvalid`] outcome instead of an error.
    pub async fn run_wasm(&self, bytes: impl Into<Arc<[u8]>>, spec: AttemptSpec) -> Outcome {
        match self.load(bytes).await {
            Ok(module) => self.run(&module, spec).await,
            Err(e) => Outcome::not_started(FailureKind::ModuleInvalid, e.to_string()),
        }
    }

    /// Runs one attempt of `module` and reports how it ended. Never panics on guest behaviour;
    /// every way an attempt can end is an [`Outcome`]. Dropping the future stops the attempt.
    pub async fn run(&self, module: &JobModule, spec: AttemptSpec) -> Outcome {
        let demote = lanes::Demote::default();
        let attempt = {
            let (this, module, demote) = (self.clone(), module.clone(), demote.clone());
            async move { this.run_here(&module, spec, demote).await }
        };
        self.inner.lanes.run(attempt, &demote).await
    }

    /// [`Executor::run`], on whichever runtime polls it; `demote` is set once it has run for
    /// [`ExecutorConfig::long_attempt_after`].
    async fn run_here(
        &self,
        module: &JobModule,
        spec: AttemptSpec,
        demote: lanes::Demote,
    ) -> Outcome {
        if let Err(refused) = self.check(&spec) {
            return refused;
        }
        let _slot = self
            .inner
            .slots
            .acquire()
            .await
            .expect("the slot semaphore is never closed");
        let started = Instant::now();
        // A module that cannot open a path could not use one; making, opening and checking it
        // was a fifth of a hello's warm start (issue 18).
        let scratch = match module.0.opens_paths.then(|| self.inner.scratch.take()) {
            None => None,
            Some(Ok(scratch)) => Some(scratch),
            Some(Err(e)) => {
                return Outcome::not_started(
                    FailureKind::HostError,
                    format!("could not create the scratch directory: {e}"),
                );
            }
        };
        let cap = OutputCap {
            bytes: self.inner.config.output_cap_bytes,
            events: self.inner.config.output_cap_events,
        };
        let stdout = CapturedStream::new(StreamKind::Stdout, spec.output.clone(), cap);
        let stderr = CapturedStream::new(StreamKind::Stderr, spec.output.clone(), cap);
        let mut wasi = match wasi_builder(&spec, scratch.as_ref(), &stdout, &stderr) {
            Ok(builder) => builder,
            Err(refused) => return refused,
        };
        let limiter = MemoryLimiter::new(
            spec.limits.memory_bytes,
            self.inner.config.max_table_elements,
        );
        let ended = match &module.0.pre {
            Pre::Core(pre) => {
                let state = AttemptState {
                    wasi: wasi.build_p1(),
                    limiter,
                };
                self.drive(state, &spec, started, &demote, async |store| {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
                    start.call_async(&mut *store, ()).await
                })
                .await
            }
            Pre::Component(pre) => {
                let state = AttemptState {
                    wasi: P2Wasi {
                        ctx: wasi.build(),
                        table: Default::default(),
                    },
                    limiter,
                };
                self.drive(state, &spec, started, &demote, async |store| {
                    let command = pre.instantiate_async(&mut *store).await?;
                    match command.wasi_cli_run().call_run(&mut *store).await? {
                        Ok(()) => Ok(()),
                        Err(()) => Err(wasmtime::Error::new(I32Exit(1))),
                    }
                })
                .await
            }
        };
        drop(scratch);
        Outcome {
            status: ended.status,
            wall_time: started.elapsed(),
            fuel_consumed: ended.fuel_consumed,
            peak_memory_bytes: ended.peak_memory_bytes,
            stdout: stdout.finish(),
            stderr: stderr.finish(),
        }
    }

    /// Refuses a spec the executor cannot honour, before it takes a slot.
    fn check(&self, spec: &AttemptSpec) -> Result<(), Outcome> {
        let config = &self.inner.config;
        let refuse = |reason: String| Err(Outcome::not_started(FailureKind::InvalidSpec, reason));
        if spec.limits.memory_bytes > config.max_memory_bytes {
            return refuse(format!(
                "memory limit of {} is more than the executor's largest memory, {}",
                outcome::bytes(spec.limits.memory_bytes),
                outcome::bytes(config.max_memory_bytes)
            ));
        }
        if spec.limits.fuel.is_some() && !config.fuel_metering {
            return refuse("a fuel budget was given but this executor does not meter fuel".into());
        }
        if let Some(grant) = spec
            .grants
            .iter()
            .find(|g| g.guest_path == SCRATCH_GUEST_PATH)
        {
            return refuse(format!(
                "directory grant of {} may not use the guest path {SCRATCH_GUEST_PATH}, which is the scratch directory",
                grant.host
            ));
        }
        Ok(())
    }

    /// Runs `body` in a fresh store under the attempt's limits, and reads what it used.
    async fn drive<W: Send + 'static>(
        &self,
        state: AttemptState<W>,
        spec: &AttemptSpec,
        started: Instant,
        demote: &lanes::Demote,
        body: impl AsyncFnOnce(&mut Store<AttemptState<W>>) -> wasmtime::Result<()>,
    ) -> Ended {
        let metering = self.inner.config.fuel_metering;
        let limits = spec.limits;
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|state| &mut state.limiter);
        let fuel_given = limits.fuel.unwrap_or(u64::MAX);
        if metering {
            store
                .set_fuel(fuel_given)
                .expect("fuel is enabled on this engine");
        }
        let deadline = started + limits.timeout;
        let kill = spec.kill.clone();
        // At every tick a running guest checks its kill switch and deadline, then yields to
        // the tokio scheduler so other attempts on this worker make progress. A tick is seen
        // only while wasm runs, so the count of them is the time it has held a core.
        store.set_epoch_deadline(1);
        let ticker_kill = kill.clone();
        let long_after = self.inner.config.long_attempt_after.map(|after| {
            (after.as_nanos() / self.inner.config.epoch_tick.as_nanos()).max(1) as u64
        });
        let demote = demote.clone();
        let mut ticks = 0u64;
        store.epoch_deadline_callback(move |_| {
            if ticker_kill.as_ref().is_some_and(KillSwitch::is_killed) {
                return Err(wasmtime::Error::new(Interruption::Killed));
            }
            if Instant::now() >= deadline {
                return Err(wasmtime::Error::new(Interruption::Timeout));
            }
            ticks += 1;
            if long_after == Some(ticks) {
                demote.set();
            }
            Ok(UpdateDeadline::Yield(1))
        });

        // A guest blocked in a host call (a sleep, a read) runs no wasm and sees no ticks, so
        // the deadline and the kill switch are also watched from outside; dropping the guest's
        // future stops it.
        let result = {
            let guest = body(&mut store);
            let killed = async {
                match &kill {
                    Some(kill) => kill.killed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                result = guest => result,
                () = killed => Err(wasmtime::Error::new(Interruption::Killed)),
                () = tokio::time::sleep_until(deadline.into()) => Err(wasmtime::Error::new(Interruption::Timeout)),
            }
        };

        let fuel_consumed = metering.then(|| fuel_given - store.get_fuel().unwrap_or(0));
        let limiter = &store.data().limiter;
        let kill_reason = || kill.as_ref().map(KillSwitch::reason).unwrap_or_default();
        let end = AttemptEnd {
            refusal: limiter.refusal(),
            fuel_budget: limits.fuel,
            fuel_consumed,
            timeout: limits.timeout,
            kill_reason: &kill_reason,
        };
        Ended {
            status: outcome::classify(result, &end),
            fuel_consumed,
            peak_memory_bytes: limiter.peak_memory(),
        }
    }
}

/// What `drive` learnt from the store.
struct Ended {
    status: ExitStatus,
    fuel_consumed: Option<u64>,
    peak_memory_bytes: u64,
}

/// The WASI context of an attempt: its argv, env, stdio, scratch directory and grants, and
/// nothing else (no inherited environment, no network).
fn wasi_builder(
    spec: &AttemptSpec,
    scratch: Option<&Scratch<'_>>,
    stdout: &CapturedStream,
    stderr: &CapturedStream,
) -> Result<WasiCtxBuilder, Outcome> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .args(&spec.args)
        .envs(&spec.env)
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if let Some(stdin) = &spec.stdin {
        builder.stdin(MemoryInputPipe::new(stdin.clone()));
    }
    if let Some(scratch) = scratch {
        builder
            .preopened_dir(scratch.path(), SCRATCH_GUEST_PATH, FsPerms::ReadWrite)
            .map_err(|e| {
                Outcome::not_started(
                    FailureKind::HostError,
                    format!("could not open the scratch directory: {e:#}"),
                )
            })?;
    }
    for grant in &spec.grants {
        let perms = match grant.access {
            Access::ReadOnly => FsPerms::ReadOnly,
            Access::ReadWrite => FsPerms::ReadWrite,
        };
        builder
            .preopened_dir(grant.host.open_path(), &grant.guest_path, perms)
            .map_err(|e| {
                Outcome::not_started(
                    FailureKind::InvalidSpec,
                    format!(
                        "directory grant {} -> {}: cannot open the host directory: {e:#}",
                        grant.host, grant.guest_path
                    ),
                )
            })?;
    }
    Ok(builder)
}
