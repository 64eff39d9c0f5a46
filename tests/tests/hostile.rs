//! The hostile-guest suite: modules that try to hurt the host or the jobs beside them, run
//! through the whole service (`Batch`: push, definition, queue, placement, attempt, record) while
//! ordinary jobs run next to them. Each hostile attempt must fail, or be contained, with a
//! statusReason that names what happened; the ordinary jobs must finish correctly, and before the
//! hostile ones that run long.

use std::time::Duration;

use serde_json::json;
use wasmbatch_runtime::model::{Job, JobStatus, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{decode, finished, guests, local_queue};

/// The statusReason of an attempt whose guest exited by itself, whatever the code.
const EXITED: &str = "Essential container in task exited";

/// A service with an 8-vCPU environment, the queue `main`, and the definition `neighbour`: the
/// hello guest, 1 vCPU, 64 MiB.
async fn service(adjust: impl FnOnce(&mut BatchConfig)) -> (Batch, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BatchConfig::new(dir.path());
    adjust(&mut config);
    let batch = Batch::open(config).await.unwrap();
    local_queue(&batch, 8, "ENABLED").await;
    batch
        .push_module("hello", guests::bytes(guests::wasip1::HELLO))
        .await
        .unwrap();
    define(&batch, "neighbour", "hello", &["neighbour"], json!({})).await;
    (batch, dir)
}

/// Registers definition `name` running module `image` with `command` (the arguments after the
/// program's name, which is the module's), 1 vCPU and 64 MiB, plus
/// the members in `extra` (which replace `containerProperties` members of the same name).
async fn define(
    batch: &Batch,
    name: &str,
    image: &str,
    command: &[&str],
    extra: serde_json::Value,
) {
    let mut definition = json!({
        "jobDefinitionName": name, "type": "container",
        "containerProperties": {"image": image, "command": command,
            "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                     {"type": "MEMORY", "value": "64"}]}
    });
    for (key, value) in extra.as_object().unwrap() {
        match key.as_str() {
            "containerProperties" => {
                for (inner, value) in value.as_object().unwrap() {
                    definition[key][inner] = value.clone();
                }
            }
            _ => definition[key] = value.clone(),
        }
    }
    batch
        .register_job_definition(decode(definition))
        .await
        .unwrap();
}

/// Pushes `wasm` as module `name`, defines it (see [`define`]) and submits one job of it.
async fn hostile(
    batch: &Batch,
    name: &str,
    wasm: Vec<u8>,
    command: &[&str],
    extra: serde_json::Value,
) -> String {
    prepare(batch, name, wasm, command, extra).await;
    submit(batch, name, name).await
}

/// Pushes `wasm` as module `name` and defines it (see [`define`]).
async fn prepare(
    batch: &Batch,
    name: &str,
    wasm: Vec<u8>,
    command: &[&str],
    extra: serde_json::Value,
) {
    batch.push_module(name, wasm).await.unwrap();
    define(batch, name, name, command, extra).await;
}

async fn submit(batch: &Batch, name: &str, definition: &str) -> String {
    batch
        .submit_job(SubmitJob {
            job_name: name.into(),
            job_queue: "main".into(),
            job_definition: definition.into(),
            ..SubmitJob::default()
        })
        .await
        .unwrap()
        .job_id
}

/// Submits `n` ordinary jobs.
async fn neighbours(batch: &Batch, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(submit(batch, &format!("neighbour-{i}"), "neighbour").await);
    }
    ids
}

async fn log(batch: &Batch, job: &Job) -> Vec<String> {
    let stream = batch.log_stream(&job.job_id, None).unwrap();
    let events = batch.log_events(&stream).await.unwrap();
    events.into_iter().map(|e| e.message).collect()
}

/// Waits for the ordinary jobs and checks that each ran correctly; returns them.
async fn neighbours_succeeded(batch: &Batch, ids: &[String]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for id in ids {
        let job = finished(batch, id).await;
        assert_eq!(
            job.status,
            JobStatus::Succeeded,
            "a neighbour failed: {job:?}"
        );
        assert_eq!(job.attempts.len(), 1, "{job:?}");
        let lines = log(batch, &job).await;
        assert_eq!(
            lines.first().map(String::as_str),
            Some(r#"hello from wasmbatch: args=["hello", "neighbour"]"#),
            "{job:?}"
        );
        jobs.push(job);
    }
    jobs
}

/// The one attempt of a failed job: asserts FAILED with exactly `status_reason`.
fn failed_with(job: &Job, status_reason: &str) {
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(job.status_reason.as_deref(), Some(status_reason), "{job:?}");
    let attempt = job.attempts.last().unwrap();
    assert_eq!(
        attempt.status_reason.as_deref(),
        Some(status_reason),
        "{job:?}"
    );
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

/// A core module whose `_start` is `body`, with one page of memory (exported, as WASI expects)
/// and `proc_exit` imported as `$exit`.
fn command(body: &str) -> Vec<u8> {
    wat(&format!(
        r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (func (export "_start") {body}))"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_guests_are_stopped_by_their_limits_while_neighbours_finish() {
    let (batch, _dir) = service(|_| {}).await;
    // Long enough that the neighbours are done well before, even on a loaded machine.
    let timeout = json!({"timeout": {"attemptDurationSeconds": 10},
                         "retryStrategy": {"attempts": 3}});
    // An infinite loop that never calls the host: only the epoch deadline can stop it. A
    // timed-out attempt is not retried, whatever the retry strategy says (as in AWS Batch).
    prepare(
        &batch,
        "spin",
        command("(loop $l (br $l))"),
        &["spin"],
        timeout.clone(),
    )
    .await;
    // The same loop with a fuel budget and a long timeout: the budget stops it.
    prepare(
        &batch,
        "burn",
        command("(loop $l (br $l))"),
        &["burn"],
        json!({"containerProperties": {"resourceRequirements": [
            {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"},
            {"type": "FUEL", "value": "100000000"}]}}),
    )
    .await;
    // Sleeping a day inside a host call, as a preview-1 module and as a component.
    let day = ["86400000"];
    prepare(
        &batch,
        "sleep-p1",
        guests::bytes(guests::wasip1::SLEEP),
        &day,
        timeout.clone(),
    )
    .await;
    prepare(
        &batch,
        "sleep-p2",
        guests::bytes(guests::wasip2::SLEEP),
        &day,
        timeout,
    )
    .await;
    // Everything is compiled: the runaways and the neighbours start together.
    let spin = submit(&batch, "spin", "spin").await;
    let burn = submit(&batch, "burn", "burn").await;
    let sleep_p1 = submit(&batch, "sleep-p1", "sleep-p1").await;
    let sleep_p2 = submit(&batch, "sleep-p2", "sleep-p2").await;
    let ordinary = neighbours(&batch, 12).await;

    let ordinary = neighbours_succeeded(&batch, &ordinary).await;
    let timed_out = "Job attempt duration exceeded timeout of 10s";
    let mut runaways = Vec::new();
    for id in [&spin, &sleep_p1, &sleep_p2] {
        let job = finished(&batch, id).await;
        failed_with(&job, timed_out);
        assert_eq!(
            job.attempts.len(),
            1,
            "a timed-out job is not retried: {job:?}"
        );
        runaways.push(job);
    }
    let burn = finished(&batch, &burn).await;
    failed_with(&burn, "fuel budget of 100000000 exhausted (used 100000000)");
    assert_eq!(burn.attempts[0].fuel_consumed, Some(100_000_000));

    // The neighbours did not wait for the runaways: every one was done before any runaway
    // was stopped.
    let last_neighbour = ordinary.iter().filter_map(|j| j.stopped_at).max().unwrap();
    let first_runaway = runaways.iter().filter_map(|j| j.stopped_at).min().unwrap();
    assert!(
        last_neighbour < first_runaway,
        "neighbours ended at {last_neighbour}, a runaway at {first_runaway}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_guests_fail_with_the_cause_named_while_neighbours_finish() {
    let (batch, _dir) = service(|_| {}).await;
    let limit = 64u64 << 20;
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "recurse",
            wat(r#"(module (memory (export "memory") 1)
                   (func $f (export "_start") (call $f)))"#),
            "wasm call stack exhausted (stack overflow)".into(),
        ),
        // Grows a page at a time: every page up to the job's 64 MiB is granted, the next one
        // stops the attempt (as a container's OOM kill would) rather than failing quietly.
        (
            "grow",
            command(
                "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) (call $exit (i32.const 3))",
            ),
            format!(
                "memory limit of 64 MiB ({limit} bytes) exceeded: the guest tried to grow its \
                 linear memory to {} bytes",
                limit + 65536
            ),
        ),
        (
            "grow-4gib",
            command("(drop (memory.grow (i32.const 65535)))"),
            format!(
                "memory limit of 64 MiB ({limit} bytes) exceeded: the guest tried to grow its \
                 linear memory to {} bytes",
                4u64 << 30
            ),
        ),
        (
            "table-grow",
            wat(r#"(module (memory (export "memory") 1) (table 1 funcref)
                   (func (export "_start")
                     (drop (table.grow (ref.null func) (i32.const 10000000)))))"#),
            "table limit of 100000 elements exceeded: the guest tried to grow a table to 10000001"
                .into(),
        ),
        (
            "divide",
            command("(drop (i32.div_u (i32.const 1) (i32.const 0)))"),
            "wasm trap: integer divide by zero".into(),
        ),
        (
            "out-of-bounds",
            command("(drop (i32.load (i32.const 70000)))"),
            "wasm trap: out of bounds memory access".into(),
        ),
        (
            "abort",
            command("unreachable"),
            "wasm trap: `unreachable` executed (the guest panicked or aborted)".into(),
        ),
    ];
    let mut hostile_ids = Vec::new();
    for (name, wasm, _) in &cases {
        hostile_ids.push(hostile(&batch, name, wasm.clone(), &[name], json!({})).await);
    }
    // Statuses a shell cannot report, from a preview-1 module and from a component: each is
    // the job's exit code, as a container's would be.
    let mut exits = Vec::new();
    batch
        .push_module("exit-p1", guests::bytes(guests::wasip1::EXIT_CODE))
        .await
        .unwrap();
    batch
        .push_module("exit-p2", guests::bytes(guests::wasip2::EXIT_CODE))
        .await
        .unwrap();
    for (image, codes) in [
        ("exit-p1", &[-1, 126, 127, 137, 255, 256, i32::MIN][..]),
        // A component's exit-with-code carries a u8.
        ("exit-p2", &[126, 255][..]),
    ] {
        for &code in codes {
            let name = format!("{image}-{}", code.unsigned_abs());
            let code_text = code.to_string();
            define(&batch, &name, image, &[&code_text], json!({})).await;
            exits.push((code, submit(&batch, &name, &name).await));
        }
    }
    let ordinary = neighbours(&batch, 8).await;

    neighbours_succeeded(&batch, &ordinary).await;
    for ((name, _, reason), id) in cases.iter().zip(&hostile_ids) {
        let job = finished(&batch, id).await;
        failed_with(&job, reason);
        assert_eq!(job.attempts[0].exit_code, None, "{name}: {job:?}");
    }
    let grow = finished(&batch, &hostile_ids[1]).await;
    assert_eq!(grow.attempts[0].peak_memory_bytes, Some(limit), "{grow:?}");
    for (code, id) in exits {
        let job = finished(&batch, &id).await;
        failed_with(&job, EXITED);
        assert_eq!(job.attempts[0].exit_code, Some(code), "{job:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_stays_under_its_own_memory_maximum_is_not_stopped() {
    let (batch, _dir) = service(|_| {}).await;
    // memory.grow past the module's own declared maximum returns -1, as the spec says; the
    // guest handles it (exits 0) and nothing of ours steps in.
    let wasm = wat(r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1 4)
        (func (export "_start")
          (if (i32.ne (memory.grow (i32.const 3)) (i32.const 1)) (then (call $exit (i32.const 1))))
          (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then (call $exit (i32.const 2))))))"#);
    let id = hostile(&batch, "own-max", wasm, &["own-max"], json!({})).await;
    let job = finished(&batch, &id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    assert_eq!(job.attempts[0].peak_memory_bytes, Some(4 * 65536));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_output_is_capped_and_the_guest_finishes() {
    let (batch, dir) = service(|_| {}).await;
    // Writes 1 GiB to stdout and 1 GiB to stderr, 1 MiB at a time, and fails (exit 1 or 2)
    // if a write is refused: the flood must be swallowed, not pushed back on the guest.
    let flood = wat(r#"(module
        (import "wasi_snapshot_preview1" "fd_write"
          (func $write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 17)
        (func (export "_start") (local $written i64)
          (memory.fill (i32.const 1024) (i32.const 120) (i32.const 1048576))
          (i32.store (i32.const 0) (i32.const 1024))
          (i32.store (i32.const 4) (i32.const 1048576))
          (loop $l
            (if (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
              (then (call $exit (i32.const 1))))
            (local.set $written
              (i64.add (local.get $written) (i64.extend_i32_u (i32.load (i32.const 8)))))
            (if (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8))
              (then (call $exit (i32.const 2))))
            (br_if $l (i64.lt_u (local.get $written) (i64.const 1073741824))))))"#);
    let id = hostile(&batch, "flood", flood, &["flood"], json!({})).await;
    let ordinary = neighbours(&batch, 8).await;

    neighbours_succeeded(&batch, &ordinary).await;
    let job = finished(&batch, &id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    let cap = batch.executor().config().output_cap_bytes;
    let lines = log(&batch, &job).await;
    for stream in ["stdout", "stderr"] {
        let marker =
            format!("[wasmbatch: {stream} truncated after {cap} bytes; later output is dropped]");
        assert!(lines.contains(&marker), "no {marker:?}");
    }
    let kept: u64 = lines.iter().map(|l| l.len() as u64).sum();
    assert!(kept <= 2 * cap + 1024, "{kept} bytes of log kept");
    // Nothing of the other 2 GiB reached the disk.
    let on_disk = disk_usage(dir.path());
    assert!(on_disk < 256 << 20, "the data dir holds {on_disk} bytes");
}

fn disk_usage(path: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            disk_usage(&entry.path())
        } else {
            std::os::unix::fs::MetadataExt::blocks(&meta) * 512
        };
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_reach_no_host_file_or_socket_through_paths_links_or_the_network() {
    let (batch, _dir) = service(|_| {}).await;
    // Host things a guest would like: a file and a directory outside anything granted.
    let outside = tempfile::tempdir().unwrap();
    let canary = outside.path().join("canary.txt");
    std::fs::write(&canary, "host secret").unwrap();
    let canary_dir = outside.path().join("dir");
    std::fs::create_dir(&canary_dir).unwrap();
    std::fs::write(canary_dir.join("inner.txt"), "host secret").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let listening = listener.local_addr().unwrap();

    let up = "../".repeat(20);
    let targets = [
        format!("plant:/scratch/abs={}", canary.display()),
        format!("plant:/scratch/up={up}{}", canary.display()),
        format!("plant:/scratch/dir={}", canary_dir.display()),
        format!("{}/inner.txt", "/scratch/dir"),
        canary.display().to_string(),
        format!("tcp:{listening}"),
        "listen:0.0.0.0:0".into(),
        "udp:0.0.0.0:0".into(),
    ];
    let mut ids = Vec::new();
    for (name, path) in [
        ("escape-p1", guests::wasip1::ESCAPE),
        ("escape-p2", guests::wasip2::ESCAPE),
    ] {
        let command: Vec<_> = targets.iter().map(String::as_str).collect();
        ids.push((
            name,
            hostile(&batch, name, guests::bytes(path), &command, json!({})).await,
        ));
    }
    let ordinary = neighbours(&batch, 4).await;

    neighbours_succeeded(&batch, &ordinary).await;
    for (name, id) in ids {
        let job = finished(&batch, &id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{name}: {job:?}");
        let lines = log(&batch, &job).await;
        let reached: Vec<_> = lines.iter().filter(|l| l.starts_with("OPENED")).collect();
        assert!(reached.is_empty(), "{name} reached {reached:?}");
        for target in targets.iter().map(|t| t.split('=').next().unwrap()) {
            let target = target.strip_prefix("plant:").unwrap_or(target);
            assert!(
                lines.iter().any(|l| l == &format!("DENIED {target}")
                    || (l.starts_with("DENIED plant:") && l.contains(target))),
                "{name}: no DENIED line for {target} in {lines:?}"
            );
        }
    }
    // Nothing connected, and removing the guests' scratch directories (links and all) left
    // what the links pointed at alone.
    assert!(listener.accept().is_err(), "a guest connected to the host");
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "host secret");
    assert_eq!(
        std::fs::read_to_string(canary_dir.join("inner.txt")).unwrap(),
        "host secret"
    );
}

/// A module that defines `n` empty functions.
fn functions(n: usize) -> Vec<u8> {
    wat(&format!(
        r#"(module (memory (export "memory") 1) (func (export "_start")) {})"#,
        "(func)".repeat(n - 1)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_that_cannot_run_are_refused_at_push_and_change_nothing() {
    let (batch, _dir) = service(|_| {}).await;
    let hello = guests::bytes(guests::wasip1::HELLO);
    let limit = batch.executor().config().max_module_functions as usize;
    let bomb_reason = format!(
        "defines {} functions; the limit is {limit} (max_module_functions)",
        limit + 1
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "is not WebAssembly"),
        (
            "elf",
            b"\x7fELF\x02\x01\x01\0".to_vec(),
            "is not WebAssembly",
        ),
        (
            "unknown-version",
            b"\0asm\x02\0\0\0".to_vec(),
            "unknown version",
        ),
        ("truncated", hello[..hello.len() / 2].to_vec(), "is invalid"),
        (
            "garbled",
            {
                let mut garbled = hello.clone();
                for byte in garbled.iter_mut().skip(64).step_by(97) {
                    *byte ^= 0x5a;
                }
                garbled
            },
            "is invalid",
        ),
        (
            "missing-import",
            wat(r#"(module (import "env" "launch_missiles" (func))
                   (memory (export "memory") 1) (func (export "_start")))"#),
            "cannot be linked: unknown import: `env::launch_missiles` has not been defined",
        ),
        (
            "wrong-signature",
            wat(
                r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
                   (memory (export "memory") 1) (func (export "_start")))"#,
            ),
            "cannot be linked",
        ),
        (
            "no-start",
            wat(r#"(module (memory (export "memory") 1) (func (export "main")))"#),
            "is not a WASI command",
        ),
        (
            "huge-table",
            wat(
                r#"(module (memory (export "memory") 1) (table 10000000 funcref)
                   (func (export "_start")))"#,
            ),
            "table",
        ),
        ("function-bomb", functions(limit + 1), &bomb_reason),
    ];
    let modules_before = batch.modules();
    let compiled_before = batch.executor().cache_stats().compiled;
    for (name, wasm, expected) in cases {
        let error = batch.push_module(name, wasm).await.unwrap_err();
        assert!(error.is_client_error(), "{name}: {error}");
        let message = error.to_string();
        eprintln!("{name}: {message}");
        assert!(message.contains(expected), "{name}: {message}");
        assert!(message.contains("module"), "{name}: {message}");
    }
    assert_eq!(batch.modules(), modules_before);
    // The bomb was refused by counting, not by compiling: only the three that compile and then
    // fail to link (missing import, wrong signature, no `_start`) reached the end of a compile.
    let compiled = batch.executor().cache_stats().compiled - compiled_before;
    assert_eq!(compiled, 3, "compiled {compiled} of the refused modules");
    // A job naming a refused module is refused too, and the service still runs others.
    let error = batch
        .register_job_definition(decode(json!({
            "jobDefinitionName": "bomb", "type": "container",
            "containerProperties": {"image": "function-bomb", "command": ["x"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                         {"type": "MEMORY", "value": "64"}]}})))
        .await;
    if error.is_ok() {
        let id = submit(&batch, "bomb", "bomb").await;
        let job = finished(&batch, &id).await;
        assert_eq!(job.status, JobStatus::Failed, "{job:?}");
        assert!(
            job.status_reason
                .as_deref()
                .unwrap()
                .starts_with("CannotPullContainerError:"),
            "{job:?}"
        );
    }
    let ordinary = neighbours(&batch, 2).await;
    neighbours_succeeded(&batch, &ordinary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_that_runs_too_long_is_abandoned_while_jobs_run() {
    // The ordinary module is compiled under the default limit; the service then restarts with
    // a limit no real compile fits in (it reloads that module from its compiled artifact).
    let (batch, dir) = service(|_| {}).await;
    batch.close("restart").await.unwrap();
    let mut config = BatchConfig::new(dir.path());
    config.executor.max_compile_time = Duration::from_millis(1);
    let batch = Batch::open(config).await.unwrap();
    // No machine compiles this in 1 ms: 5,000 nested blocks in one function (a release build
    // takes ~15 ms, a debug build ~0.7 s; Cranelift's cost grows faster than the depth).
    let depth = 5_000;
    let bomb = wat(&format!(
        r#"(module (memory (export "memory") 1) (func (export "_start") {} {}))"#,
        "block ".repeat(depth),
        "end ".repeat(depth)
    ));
    let compiled_before = batch.executor().cache_stats().compiled;
    let push = tokio::spawn({
        let batch = batch.clone();
        let bomb = bomb.clone();
        async move { batch.push_module("nested", bomb).await }
    });
    // The service keeps answering and running jobs while the compiler works.
    let ordinary = neighbours(&batch, 8).await;
    let error = push.await.unwrap().unwrap_err();
    assert!(error.is_client_error(), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("was still compiling after 0.001s, the limit (max_compile_time); compilation was abandoned"),
        "{message}"
    );
    assert!(batch.module("nested").is_none());
    neighbours_succeeded(&batch, &ordinary).await;

    // The abandoned compile runs to its end in the background (Cranelift cannot be stopped)
    // but keeps nothing: no compiled artifact, so pushing it again is refused again.
    tokio::time::timeout(Duration::from_secs(120), async {
        while batch.executor().cache_stats().compiled == compiled_before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the abandoned compile never finished");
    let digest = wasmbatch_runtime::Digest::of(&bomb).hex();
    let artifacts: Vec<_> = std::fs::read_dir(dir.path().join("compiled"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&digest))
        .collect();
    assert!(artifacts.is_empty(), "{artifacts:?}");
    let again = batch.push_module("nested", bomb).await.unwrap_err();
    assert!(
        again.to_string().contains("compilation was abandoned"),
        "{again}"
    );
}

/// The attack of issue 13: a job with a read-write volume plants a relative link
/// (`up -> ../../../..…`) in it, and a later definition names `sourcePath: "t/up/<host dir>"`.
/// The text of that path is harmless, so the service must not let the system resolve it: each
/// component is opened without following links, the attempt fails with
/// CannotCreateContainerError naming the volume, and nothing is created outside the root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_planted_in_a_volume_does_not_lead_a_later_volume_to_host_files() {
    let (batch, dir) = service(|_| {}).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "host secret").unwrap();
    let up = "../".repeat(64);
    let volume = |source: &str| {
        json!({"containerProperties": {
            "volumes": [{"name": "v", "host": {"sourcePath": source}}],
            "mountPoints": [{"sourceVolume": "v", "containerPath": "/data", "readOnly": false}]
        }})
    };
    let planter = hostile(
        &batch,
        "planter",
        guests::bytes(guests::wasip1::ESCAPE),
        &[&format!("plant:/data/up={up}")],
        volume("t"),
    )
    .await;
    let planted = finished(&batch, &planter).await;
    assert_eq!(planted.status, JobStatus::Succeeded, "{planted:?}");
    assert!(
        log(&batch, &planted)
            .await
            .contains(&"PLANTED /data/up".to_string()),
        "wasmtime let the guest plant a relative link, as the attack needs"
    );
    assert!(dir.path().join("volumes/t/up").is_symlink());

    let host_dir = outside
        .path()
        .strip_prefix("/")
        .unwrap()
        .display()
        .to_string();
    let created = format!("{host_dir}/made-by-the-attack");
    let neighbours = neighbours(&batch, 4).await;
    let mut attempts = Vec::new();
    for (i, target) in [
        "t/up".to_string(),
        "t/up/etc".to_string(),
        format!("t/up/{host_dir}"),
        format!("t/up/{created}"),
    ]
    .iter()
    .enumerate()
    {
        let name = format!("through-link-{i}");
        define(
            &batch,
            &name,
            "planter",
            &["/data/secret", "/data/passwd", "plant:/data/x=/"],
            volume(target),
        )
        .await;
        attempts.push((target.clone(), submit(&batch, &name, &name).await));
    }
    for (target, id) in attempts {
        let job = finished(&batch, &id).await;
        assert_eq!(job.status, JobStatus::Failed, "{target}: {job:?}");
        assert_eq!(
            job.status_reason.as_deref(),
            Some(
                format!(
                    "CannotCreateContainerError: volume {target} for /data: \"up\" is a symbolic link, which volumes do not follow"
                )
                .as_str()
            ),
            "{target}"
        );
        assert!(
            job.attempts.iter().all(|a| a.started_at.is_none()),
            "{target}: the guest never ran: {job:?}"
        );
    }
    assert!(!outside.path().join("made-by-the-attack").exists());
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "host secret"
    );
    neighbours_succeeded(&batch, &neighbours).await;
}

/// A volume root that would hold the data dir, or share it with the database, compiled code or
/// scratch, is refused when the service opens: a guest's volume must not reach any of them.
#[tokio::test]
async fn a_volume_root_that_nests_into_the_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for root in [
        dir.path().to_path_buf(),
        dir.path().join("scratch"),
        dir.path().join("compiled"),
        dir.path().parent().unwrap().to_path_buf(),
    ] {
        let mut config = BatchConfig::new(dir.path());
        config.volume_root = root.clone();
        let refused = Batch::open(config).await.err().expect("refused");
        assert!(
            refused
                .to_string()
                .starts_with("volume_root: the volume root"),
            "{}: {refused}",
            root.display()
        );
    }
}
