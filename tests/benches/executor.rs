//! Prints how fast the executor starts and runs jobs, beside its baselines, measured in one run:
//!
//! - hello (wasip1): `Executor::run` from the warm pool; a bare wasmtime loop with the same
//!   pooling engine (Engine + InstancePre + Store + `_start`, nothing else: the floor); the bare
//!   loop with the on-demand allocator; compile per job (a naive embedder); spawning the natively
//!   built hello as a process per job.
//! - compute kernel (sha256 over generated data): native vs wasm with epochs only vs wasm with
//!   fuel metering on.
//! - kill latency: from `KillSwitch::kill` to the outcome of a spinning guest.
//!
//! Run with `cargo bench -p wasmbatch-tests --bench executor` (add `-- --quick` for a short run).
//! Machines are shared and noisy: read the ratios, not the absolute times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmbatch_runtime::{AttemptSpec, Executor, ExecutorConfig, ExitStatus, KillSwitch, Limits};
use wasmbatch_tests::stats::{Sample, table};
use wasmbatch_tests::{CollectedOutput, guests};
use wasmtime::{
    Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig, Store,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::SinkOutputStream;

#[derive(Clone, Copy)]
enum Allocator {
    OnDemand,
    /// wasmtime's pooling allocator as it comes.
    Pooling,
    /// Pooling, resetting dirty pages with memset found by PAGEMAP_SCAN, as the executor does.
    PoolingKeepResident,
}

fn bare_engine(allocator: Allocator) -> Engine {
    let mut config = wasmtime::Config::new();
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(16)
        .total_memories(16)
        .total_tables(16)
        .total_stacks(16);
    match allocator {
        Allocator::OnDemand => {}
        Allocator::Pooling => {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        Allocator::PoolingKeepResident => {
            pool.pagemap_scan(wasmtime::Enabled::Auto)
                .linear_memory_keep_resident(2 << 20)
                .table_keep_resident(2 << 20);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
    }
    Engine::new(&config).unwrap()
}

/// The floor: what it takes wasmtime itself to instantiate and run hello, with nothing around it.
async fn bare_loop(engine: &Engine, module: &Module, n: usize) -> Vec<Duration> {
    let mut linker: Linker<WasiP1Ctx> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |ctx| ctx).unwrap();
    let pre = linker.instantiate_pre(module).unwrap();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let wasi = WasiCtxBuilder::new()
            .args(&["hello.wasm", "bench"])
            .stdout(SinkOutputStream)
            .build_p1();
        let mut store = Store::new(engine, wasi);
        let instance = pre.instantiate_async(&mut store).await.unwrap();
        let main = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .unwrap();
        main.call_async(&mut store, ()).await.unwrap();
        // Tearing the instance down is part of every job's cost, as it is in `Executor::run`.
        drop(store);
        times.push(start.elapsed());
    }
    times
}

async fn compile_per_job(engine: &Engine, bytes: &[u8], n: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let module = Module::new(engine, bytes).unwrap();
        times.extend(
            bare_loop(engine, &module, 1)
                .await
                .into_iter()
                .map(|_| start.elapsed()),
        );
    }
    times
}

fn process_per_job(path: &str, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            let out = std::process::Command::new(path)
                .args(["bench"])
                .output()
                .unwrap();
            assert!(out.status.success());
            start.elapsed()
        })
        .collect()
}

async fn executor_runs(
    executor: &Executor,
    bytes: &[u8],
    args: &[&str],
    limits: Limits,
    n: usize,
) -> Vec<Duration> {
    let module = executor.load(bytes.to_vec()).await.unwrap();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let spec = AttemptSpec {
            args: args.iter().map(|a| a.to_string()).collect(),
            limits,
            ..AttemptSpec::default()
        };
        let start = Instant::now();
        let outcome = executor.run(&module, spec).await;
        times.push(start.elapsed());
        assert_eq!(outcome.status, ExitStatus::Exited(0));
    }
    times
}

/// hello's latency alone, then while 8 guests spin beside it on the same executor. Each hello
/// is spawned onto the runtime's 2 worker threads, as the scheduler runs attempts (the bench's
/// main task has a thread of its own). The spinners start there too; past
/// `long_attempt_after` (5 ms) they go on on the executor's long-attempt threads at nice 5,
/// so hello takes a core as soon as it is ready rather than waiting behind each spinner's
/// epoch tick, as it did while every guest shared the runtime (p99 2.1 ms then).
async fn isolation_under_load(executor: &Executor, hello: &[u8], n: usize) -> [Sample; 2] {
    let hello = executor.load(hello.to_vec()).await.unwrap();
    let spawned_runs = |n: usize| {
        let (executor, hello) = (executor.clone(), hello.clone());
        async move {
            let mut times = Vec::with_capacity(n);
            for _ in 0..n {
                let spec = AttemptSpec {
                    args: vec!["hello.wasm".into(), "bench".into()],
                    ..AttemptSpec::default()
                };
                let start = Instant::now();
                let (executor, hello) = (executor.clone(), hello.clone());
                let outcome = tokio::spawn(async move { executor.run(&hello, spec).await })
                    .await
                    .unwrap();
                times.push(start.elapsed());
                assert_eq!(outcome.status, ExitStatus::Exited(0));
            }
            times
        }
    };
    let alone = spawned_runs(n).await;
    let spin = executor
        .load(guests::bytes(guests::wasip1::SPIN))
        .await
        .unwrap();
    let kills: Vec<KillSwitch> = (0..8).map(|_| KillSwitch::new()).collect();
    let outputs: Vec<CollectedOutput> = (0..8).map(|_| CollectedOutput::new()).collect();
    let spinners: Vec<_> = kills
        .iter()
        .zip(&outputs)
        .map(|(kill, output)| {
            let spec = AttemptSpec {
                kill: Some(kill.clone()),
                output: output.sink(),
                ..AttemptSpec::default()
            };
            let (executor, spin) = (executor.clone(), spin.clone());
            tokio::spawn(async move { executor.run(&spin, spec).await })
        })
        .collect();
    while outputs.iter().any(|o| o.stdout().is_empty()) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let loaded = spawned_runs(n).await;
    for kill in &kills {
        kill.kill("bench over");
    }
    for spinner in spinners {
        let outcome = spinner.await.unwrap();
        assert!(outcome.failure().is_some(), "the spinners ran until killed");
    }
    [
        Sample {
            name: "hello alone (baseline)",
            times: alone,
        },
        Sample {
            name: "hello while 8 guests spin",
            times: loaded,
        },
    ]
}

async fn kill_latency(executor: &Executor, n: usize) -> Vec<Duration> {
    let spin = executor
        .load(guests::bytes(guests::wasip1::SPIN))
        .await
        .unwrap();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let kill = KillSwitch::new();
        let output = CollectedOutput::new();
        let spec = AttemptSpec {
            kill: Some(kill.clone()),
            output: output.sink(),
            ..AttemptSpec::default()
        };
        let attempt = tokio::spawn({
            let (executor, spin) = (executor.clone(), spin.clone());
            async move { executor.run(&spin, spec).await }
        });
        while output.stdout().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let start = Instant::now();
        kill.kill("bench");
        let outcome = attempt.await.unwrap();
        times.push(start.elapsed());
        assert!(outcome.failure().is_some());
    }
    times
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = |full: usize, quick_n: usize| if quick { quick_n } else { full };
    let hello = guests::bytes(guests::wasip1::HELLO);
    let data_dir = tempfile::tempdir().unwrap();
    let executor = Executor::new(ExecutorConfig::new(data_dir.path())).unwrap();
    let no_fuel_dir = tempfile::tempdir().unwrap();
    let mut no_fuel_config = ExecutorConfig::new(no_fuel_dir.path());
    no_fuel_config.fuel_metering = false;
    let no_fuel = Executor::new(no_fuel_config).unwrap();

    // `--profile`: only the executor's hello loop, for `perf record`.
    if std::env::args().any(|a| a == "--profile") {
        let args = ["hello.wasm", "bench"];
        executor_runs(&executor, &hello, &args, Limits::default(), 50_000).await;
        return;
    }
    println!(
        "# wasmbatch executor benchmark{}",
        if quick { " (quick)" } else { "" }
    );
    println!(
        "\nhello: {} bytes (wasip1); machine: {} cores; wasmtime 48",
        hello.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let n = scale(5000, 500);
    let pooled = bare_engine(Allocator::Pooling);
    let pooled_module = Module::new(&pooled, &hello).unwrap();
    let resident = bare_engine(Allocator::PoolingKeepResident);
    let resident_module = Module::new(&resident, &hello).unwrap();
    let on_demand = bare_engine(Allocator::OnDemand);
    let on_demand_module = Module::new(&on_demand, &hello).unwrap();
    // Warm up every path once so page faults and lazy init are not counted.
    bare_loop(&pooled, &pooled_module, 200).await;
    bare_loop(&on_demand, &on_demand_module, 200).await;
    bare_loop(&resident, &resident_module, 200).await;
    executor_runs(
        &executor,
        &hello,
        &["hello.wasm", "bench"],
        Limits::default(),
        200,
    )
    .await;

    // Interleave the two closest scenarios in rounds so that noise hits both alike.
    let (mut exec, mut floor, mut tuned) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        exec.extend(
            executor_runs(
                &executor,
                &hello,
                &["hello.wasm", "bench"],
                Limits::default(),
                n / 10,
            )
            .await,
        );
        floor.extend(bare_loop(&pooled, &pooled_module, n / 10).await);
        tuned.extend(bare_loop(&resident, &resident_module, n / 10).await);
    }
    let cold_start = [
        Sample {
            name: "Executor::run, warm pool (fuel + epochs + limits + capture; hello opens no path, so is given no scratch dir)",
            times: exec,
        },
        Sample {
            name: "bare wasmtime loop, pooling allocator (floor)",
            times: floor,
        },
        Sample {
            name: "bare wasmtime loop, pooling + memset reset of dirty pages (the executor's pool)",
            times: tuned,
        },
        Sample {
            name: "bare wasmtime loop, on-demand allocator",
            times: bare_loop(&on_demand, &on_demand_module, n).await,
        },
        Sample {
            name: "compile per job (naive embedder)",
            times: compile_per_job(&on_demand, &hello, scale(20, 5)).await,
        },
        Sample {
            name: "native hello, one process per job",
            times: process_per_job(guests::native::HELLO, scale(500, 100)),
        },
    ];
    table(
        "Cold start: instantiate + run hello",
        &cold_start,
        &[("floor", 1), ("tuned floor", 2), ("process", 5)],
    );
    for (sample, key) in cold_start.iter().zip([
        "cold_start.executor",
        "cold_start.bare_pooling",
        "cold_start.bare_tuned",
        "cold_start.bare_on_demand",
        "cold_start.compile_per_job",
        "cold_start.process",
    ]) {
        sample.record(key);
    }

    scratch_cost(&executor, scale(5000, 500)).await;

    let mib = if quick { "4" } else { "32" };
    let kernel_n = scale(7, 3);
    let args = ["sha256", mib];
    let sha = guests::bytes(guests::wasip1::SHA256);
    let unlimited = Limits {
        fuel: None,
        ..Limits::default()
    };
    executor_runs(&executor, &sha, &args, unlimited, 1).await;
    executor_runs(&no_fuel, &sha, &args, unlimited, 1).await;
    let (mut native, mut epochs, mut fuel) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..kernel_n {
        native.extend(process_per_job_args(guests::native::SHA256, &args[1..]));
        epochs.extend(executor_runs(&no_fuel, &sha, &args, unlimited, 1).await);
        fuel.extend(executor_runs(&executor, &sha, &args, unlimited, 1).await);
    }
    let kernel = [
        Sample {
            name: "native (process)",
            times: native,
        },
        Sample {
            name: "wasm, epochs only",
            times: epochs,
        },
        Sample {
            name: "wasm, epochs + fuel metering",
            times: fuel,
        },
    ];
    table(
        &format!("Compute kernel: sha256 over {mib} MiB"),
        &kernel,
        &[("native", 0), ("epochs only", 1)],
    );
    for (sample, key) in kernel
        .iter()
        .zip(["compute.native", "compute.epochs", "compute.fuel"])
    {
        sample.record(key);
    }

    let kill = [Sample {
        name: "kill a spinning guest (epoch tick 1 ms)",
        times: kill_latency(&executor, scale(50, 10)).await,
    }];
    table("Kill latency: KillSwitch::kill → outcome", &kill, &[]);

    let [alone, loaded] = isolation_under_load(&executor, &hello, scale(2000, 300)).await;
    // Baseline: the same executor without the long-attempt threads, every guest on one runtime.
    let one_runtime_dir = tempfile::tempdir().unwrap();
    let mut one_runtime = ExecutorConfig::new(one_runtime_dir.path());
    one_runtime.long_attempt_after = None;
    let one_runtime = Executor::new(one_runtime).unwrap();
    let [_, mut shared] = isolation_under_load(&one_runtime, &hello, scale(2000, 300)).await;
    shared.name = "hello while 8 guests spin, all on one runtime (long_attempt_after: None)";
    let isolation = [alone, loaded, shared];
    table(
        "Isolation under load: hello beside 8 spinning guests (goal: p99 < 1 ms)",
        &isolation,
        &[("alone", 0), ("one runtime", 2)],
    );
    isolation[0].record("isolation.alone");
    isolation[1].record("isolation.loaded");
    isolation[2].record("isolation.one_runtime");
    let _ = Arc::new(());
}

/// What a scratch directory adds to an attempt: the same one-line hello, written in WAT, with
/// and without an import of `path_open` (never called), which is what gets a module one.
async fn scratch_cost(executor: &Executor, n: usize) {
    let hello = |path_import: &str| {
        wat::parse_str(format!(
            r#"(module
                 (import "wasi_snapshot_preview1" "fd_write"
                   (func $fd_write (param i32 i32 i32 i32) (result i32)))
                 {path_import}
                 (memory (export "memory") 1)
                 (data (i32.const 16) "Hello, world!\n")
                 (func (export "_start")
                   (i32.store (i32.const 0) (i32.const 16))
                   (i32.store (i32.const 4) (i32.const 14))
                   (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
        ))
        .unwrap()
    };
    let without = hello("");
    let with = hello(
        r#"(import "wasi_snapshot_preview1" "path_open"
             (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"#,
    );
    let args = ["hello.wasm"];
    executor_runs(executor, &without, &args, Limits::default(), 100).await;
    executor_runs(executor, &with, &args, Limits::default(), 100).await;
    let (mut plain, mut given) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        plain.extend(executor_runs(executor, &without, &args, Limits::default(), n / 10).await);
        given.extend(executor_runs(executor, &with, &args, Limits::default(), n / 10).await);
    }
    table(
        "A scratch directory's cost: a WAT hello, Executor::run",
        &[
            Sample {
                name: "imports fd_write only: no scratch dir",
                times: plain,
            },
            Sample {
                name: "imports path_open too: given a scratch dir (reused, checked empty after)",
                times: given,
            },
        ],
        &[("no scratch dir", 0)],
    );
}

fn process_per_job_args(path: &str, args: &[&str]) -> Vec<Duration> {
    let start = Instant::now();
    let out = std::process::Command::new(path)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    vec![start.elapsed()]
}
