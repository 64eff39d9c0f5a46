//! How an [`Executor`](super::Executor) is sized: the instance pool, the largest memory a job may
//! ask for, fuel metering, the epoch tick, output caps. Every field has a default.

use std::path::PathBuf;
use std::time::Duration;

use super::error::ExecutorError;

/// Linear memory and table bytes per pool slot kept resident between jobs.
const RESIDENT_BYTES: usize = 2 << 20;

/// Configuration of an [`Executor`](super::Executor). Start from [`ExecutorConfig::new`] and
/// change what you need.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Where scratch directories (`scratch/`) and compiled modules (`compiled/`) live.
    pub data_dir: PathBuf,
    /// Attempts that may run at once; the instance pool is sized for this many. Further
    /// attempts wait for a slot rather than fail.
    pub max_concurrent_attempts: u32,
    /// The largest linear memory any attempt may ask for, in bytes (at most 4 GiB, wasm32's
    /// whole address space). Each pool slot reserves this much address space, not RAM.
    pub max_memory_bytes: u64,
    /// The most elements any table may have.
    pub max_table_elements: usize,
    /// Meter fuel in every attempt. Needed for fuel budgets and the fuel-used figure; costs some
    /// speed in compute-heavy guests.
    pub fuel_metering: bool,
    /// How often the epoch advances: the granularity of timeouts and kills for a spinning guest,
    /// and how often it yields to other tasks.
    pub epoch_tick: Duration,
    /// Bytes kept per output stream per attempt, each line counted as its length plus
    /// [`LOG_EVENT_OVERHEAD`](crate::LOG_EVENT_OVERHEAD) (as CloudWatch counts a batch); later
    /// output is dropped after a marker line.
    pub output_cap_bytes: u64,
    /// Lines kept per output stream per attempt; later output is dropped after a marker line.
    /// A kept line costs memory while the attempt runs and a stored record after, whatever its
    /// length (about 100 bytes for an empty one), so short lines are bounded by their number.
    pub output_cap_events: u64,
    /// Keep each attempt's scratch directory after it ends (for debugging).
    pub keep_scratch: bool,
    /// Compilations that may run at once, each on its own thread of the blocking pool (one
    /// core each: one module's functions are not spread over the machine, so a module that is
    /// slow to compile occupies one slot, not every core and every other compile).
    pub max_concurrent_compiles: usize,
    /// The most functions a module may define (a component's core modules counted together).
    /// Compile time grows with the count even when every function is empty, so this refuses
    /// the cheapest compile-time bomb before any compiling starts.
    pub max_module_functions: u32,
    /// The longest one compilation may take. Cranelift cannot be stopped midway, so a compile
    /// that passes this is abandoned: the load fails at once, and the compiler finishes in the
    /// background still holding its compile slot (so abandoned compiles never outnumber
    /// `max_concurrent_compiles`) and keeps nothing it made.
    pub max_compile_time: Duration,
    /// Largest wasm call stack, in bytes; deeper recursion traps with a stack overflow.
    pub max_wasm_stack_bytes: usize,
    /// An attempt whose guest has run this long (counted in epoch ticks while wasm runs, not
    /// while it waits in a host call) goes on on the executor's long-attempt threads, which
    /// run at nice [`long_attempt_nice`](Self::long_attempt_nice), so a new attempt takes a
    /// core at once instead of waiting a tick behind each. `None`: every attempt stays on
    /// the runtime that started it.
    pub long_attempt_after: Option<Duration>,
    /// The nice value (1 to 19) of the long-attempt threads: at 5, a long attempt gets about
    /// a quarter of a core that a fresh one also wants, and all of one nothing else does.
    pub long_attempt_nice: i32,
}

impl ExecutorConfig {
    /// Defaults, with `data_dir` as given.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            max_concurrent_attempts: 256,
            max_memory_bytes: 4 << 30,
            max_table_elements: 100_000,
            fuel_metering: true,
            epoch_tick: Duration::from_millis(1),
            output_cap_bytes: 8 << 20,
            // The two caps meet at lines of about 58 bytes (8 MiB / 100,000 - 26): ordinary
            // output is bounded by bytes, a flood of short lines by this count, at about 10 MB
            // of memory and store per stream. Ten GetLogEvents pages of the largest size.
            output_cap_events: 100_000,
            keep_scratch: false,
            max_concurrent_compiles: 2,
            // 100,000 empty functions take ~6.5 s to compile on 2 cores (release build); large
            // real programs (interpreters, databases) define tens of thousands.
            max_module_functions: 100_000,
            max_compile_time: Duration::from_secs(60),
            max_wasm_stack_bytes: 1 << 20,
            // Five ticks: far longer than a short job's whole run (tens of µs), short enough
            // that a spinning guest leaves the fresh attempts' threads almost at once.
            long_attempt_after: Some(Duration::from_millis(5)),
            long_attempt_nice: 5,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ExecutorError> {
        let invalid = |field, problem: &str| {
            Err(ExecutorError::InvalidConfig {
                field,
                problem: problem.to_string(),
            })
        };
        if self.max_concurrent_attempts == 0 {
            return invalid("max_concurrent_attempts", "must be at least 1");
        }
        if self.max_memory_bytes == 0 || self.max_memory_bytes > 4 << 30 {
            return invalid(
                "max_memory_bytes",
                &format!("is {}, must be between 1 and 4 GiB", self.max_memory_bytes),
            );
        }
        if self.epoch_tick.is_zero() {
            return invalid("epoch_tick", "must be longer than zero");
        }
        if self.max_concurrent_compiles == 0 {
            return invalid("max_concurrent_compiles", "must be at least 1");
        }
        if self.max_module_functions == 0 {
            return invalid("max_module_functions", "must be at least 1");
        }
        if self.max_compile_time.is_zero() {
            return invalid("max_compile_time", "must be longer than zero");
        }
        if self.max_wasm_stack_bytes < 64 << 10 {
            return invalid("max_wasm_stack_bytes", "must be at least 64 KiB");
        }
        if self.long_attempt_after.is_some_and(|after| after.is_zero()) {
            return invalid("long_attempt_after", "must be longer than zero (or None)");
        }
        if !(1..=19).contains(&self.long_attempt_nice) {
            return invalid("long_attempt_nice", "must be between 1 and 19");
        }
        Ok(())
    }

    /// The wasmtime configuration these settings make.
    pub(crate) fn wasmtime(&self) -> wasmtime::Config {
        let attempts = self.max_concurrent_attempts;
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        // A wasip2 component made by Rust holds a few core instances (the program, the
        // preview-1 adapter, shims) and up to two memories; leave room above that.
        pool.total_component_instances(attempts)
            .total_core_instances(attempts * 8)
            .max_core_instances_per_component(32)
            .total_memories(attempts * 2)
            .max_memories_per_component(4)
            .total_tables(attempts * 8)
            .max_tables_per_component(16)
            .total_stacks(attempts)
            .max_memory_size(self.max_memory_bytes as usize)
            .table_elements(self.max_table_elements)
            // Reset the pages a job dirtied with memset, found with Linux's PAGEMAP_SCAN, rather
            // than madvise: no TLB-shootdown IPIs and no page faults for the next job. Falls
            // back to madvise where the ioctl is missing, and past the resident size.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(RESIDENT_BYTES)
            .table_keep_resident(RESIDENT_BYTES);

        let mut config = wasmtime::Config::new();
        config
            .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool))
            .memory_init_cow(true)
            .epoch_interruption(true)
            .consume_fuel(self.fuel_metering)
            .max_wasm_stack(self.max_wasm_stack_bytes)
            // The host side of a call (WASI, our captures) runs on the same fiber stack.
            .async_stack_size(self.max_wasm_stack_bytes + (1 << 20));
        config
    }
}
