//! A guest sees its scratch directory and the directories it was granted, and nothing else of
//! the host: not by `..`, not by absolute paths, not through symlinks, not over sockets.

use std::path::Path;

use wasmbatch_runtime::{Access, AttemptSpec, DirGrant, ExitStatus};
use wasmbatch_tests::{CollectedOutput, executor, executor_with, guests};

fn grant(host: &Path, guest: &str, access: Access) -> DirGrant {
    DirGrant::path(host, guest, access)
}

#[tokio::test]
async fn the_escape_guest_reaches_nothing_outside_its_grants() {
    let (executor, _dir) = executor();
    let granted = tempfile::tempdir().unwrap();
    std::fs::write(granted.path().join("given.txt"), "yours").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", granted.path().join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../", granted.path().join("up-link")).unwrap();
    for path in [guests::wasip1::ESCAPE, guests::wasip2::ESCAPE] {
        let output = CollectedOutput::new();
        let spec = AttemptSpec {
            args: [
                "escape",
                "/data/given.txt",
                "/data/abs-link",
                "/data/up-link/etc/passwd",
                "/data/../../etc/passwd",
                "/data/..",
            ]
            .map(String::from)
            .to_vec(),
            grants: vec![grant(granted.path(), "/data", Access::ReadOnly)],
            output: output.sink(),
            ..AttemptSpec::default()
        };
        let outcome = executor.run_wasm(guests::bytes(path), spec).await;
        assert_eq!(outcome.status, ExitStatus::Exited(0), "{path}");
        let lines = output.stdout();
        // The guest can read what it was given, so the DENIED lines below mean something.
        assert!(
            lines.contains(&"OPENED /data/given.txt".to_string()),
            "{path}: {lines:?}"
        );
        let escaped: Vec<_> = lines
            .iter()
            .filter(|l| l.starts_with("OPENED") && *l != "OPENED /data/given.txt")
            .collect();
        assert!(escaped.is_empty(), "{path} reached {escaped:?}");
        for target in [
            "/etc/passwd",
            "/data/abs-link",
            "/data/up-link/etc/passwd",
            "tcp:127.0.0.1:22",
        ] {
            assert!(
                lines.contains(&format!("DENIED {target}")),
                "{path}: no DENIED {target} in {lines:?}"
            );
        }
    }
}

#[tokio::test]
async fn scratch_is_private_read_write_and_removed_afterwards() {
    let (executor, data_dir) = executor();
    for path in [
        guests::wasip1::SCRATCH_IO,
        guests::wasip2::SCRATCH_IO,
        guests::wasip1::SCRATCH_IO,
    ] {
        let output = CollectedOutput::new();
        let spec = AttemptSpec {
            args: vec!["scratch-io".into(), "/scratch".into()],
            stdin: Some(b"hello scratch".to_vec()),
            output: output.sink(),
            ..AttemptSpec::default()
        };
        let outcome = executor.run_wasm(guests::bytes(path), spec).await;
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(0),
            "{path}: {:?}",
            output.lines()
        );
        // Each attempt finds its scratch dir empty: only the file it just wrote is there, none
        // of what the attempt before it left.
        assert_eq!(
            output.stdout(),
            [
                "scratch says: HELLO SCRATCH",
                "/scratch: output.txt",
                "write /scratch/written-by-guest.txt: ok"
            ]
        );
    }
    drop(executor);
    // Removal of a non-empty scratch dir happens on the blocking pool; give it a moment.
    let scratch_root = data_dir.path().join("scratch");
    for _ in 0..200 {
        if std::fs::read_dir(&scratch_root).unwrap().next().is_none() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "scratch directories were left behind in {}",
        scratch_root.display()
    );
}

#[tokio::test]
async fn a_module_that_cannot_open_a_path_is_given_no_scratch_directory() {
    // Kept directories show which attempts were given one.
    let (executor, data_dir) = executor_with(|c| c.keep_scratch = true);
    let given = || {
        std::fs::read_dir(data_dir.path().join("scratch"))
            .unwrap()
            .count()
    };
    // hello imports fd_write and nothing that names or lists a directory.
    let output = CollectedOutput::new();
    let spec = AttemptSpec {
        output: output.sink(),
        ..AttemptSpec::default()
    };
    let outcome = executor
        .run_wasm(guests::bytes(guests::wasip1::HELLO), spec)
        .await;
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    assert!(!output.stdout().is_empty(), "it ran and wrote");
    assert_eq!(given(), 0, "hello was given a scratch directory");
    let outcome = executor
        .run_wasm(
            guests::bytes(guests::wasip1::SCRATCH_IO),
            AttemptSpec {
                stdin: Some(b"x".to_vec()),
                ..AttemptSpec::default()
            },
        )
        .await;
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    assert_eq!(given(), 1, "a module that opens paths is given one");
}

#[tokio::test]
async fn kept_scratch_holds_what_the_guest_wrote() {
    let (executor, data_dir) = executor_with(|c| c.keep_scratch = true);
    let spec = AttemptSpec {
        stdin: Some(b"keep me".to_vec()),
        ..AttemptSpec::default()
    };
    let outcome = executor
        .run_wasm(guests::bytes(guests::wasip1::SCRATCH_IO), spec)
        .await;
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    let kept: Vec<_> = std::fs::read_dir(data_dir.path().join("scratch"))
        .unwrap()
        .collect();
    assert_eq!(kept.len(), 1);
    let written =
        std::fs::read_to_string(kept[0].as_ref().unwrap().path().join("output.txt")).unwrap();
    assert_eq!(written, "KEEP ME");
}

#[tokio::test]
async fn grants_are_read_only_or_read_write_as_given() {
    let (executor, _dir) = executor();
    for (access, expect_write) in [(Access::ReadOnly, false), (Access::ReadWrite, true)] {
        let granted = tempfile::tempdir().unwrap();
        std::fs::write(granted.path().join("input.csv"), "1,2,3").unwrap();
        let output = CollectedOutput::new();
        let spec = AttemptSpec {
            args: vec!["scratch-io".into(), "/data".into()],
            grants: vec![grant(granted.path(), "/data", access)],
            output: output.sink(),
            ..AttemptSpec::default()
        };
        let outcome = executor
            .run_wasm(guests::bytes(guests::wasip1::SCRATCH_IO), spec)
            .await;
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(0),
            "{:?}",
            output.lines()
        );
        let lines = output.stdout();
        assert!(lines.contains(&"/data: input.csv".to_string()), "{lines:?}");
        let wrote = granted.path().join("written-by-guest.txt").exists();
        assert_eq!(wrote, expect_write, "{access:?}: {lines:?}");
        let report = if expect_write {
            "write /data/written-by-guest.txt: ok"
        } else {
            "write /data/written-by-guest.txt: denied"
        };
        assert!(
            lines.iter().any(|l| l.starts_with(report)),
            "{access:?}: {lines:?}"
        );
    }
}
