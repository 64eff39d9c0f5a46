//! The data dir is private to the user the service runs as (issue 13): the directory itself
//! 0700 (tightened if it was looser), every directory in it 0700 and every file the service
//! writes 0600 — the database, modules, staged uploads, compiled artifacts — so another local
//! user can neither read tenants' programs and output nor plant files beside them.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use wasmbatch_runtime::model::JobStatus;
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{guests, local_queue, module_and_definition, run_job};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Every path under `dir`, not descending into what guests wrote (inside a scratch directory or
/// a volume, whose files are the job's).
fn ours(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        let guests_own = dir.ends_with("scratch") || path.ends_with("volumes/team/shared");
        if path.is_dir() && !guests_own {
            ours(&path, out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_everything_the_service_writes_in_it_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = BatchConfig::new(&data_dir);
    // Kept, so its directory can be looked at after the job.
    config.executor.keep_scratch = true;
    let batch = Batch::open(config).await.unwrap();
    assert_eq!(mode(&data_dir), 0o700, "an existing data dir is tightened");

    // A staged upload is private while it is being written.
    let mut upload = batch.upload_module("streamed").await.unwrap();
    upload
        .write(&guests::bytes(guests::wasip1::EXIT_CODE))
        .await
        .unwrap();
    let staged: Vec<PathBuf> = std::fs::read_dir(data_dir.join("modules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect();
    assert_eq!(staged.len(), 1, "{staged:?}");
    assert_eq!(mode(&staged[0]), 0o600);
    upload.finish().await.unwrap();

    local_queue(&batch, 1, "ENABLED").await;
    module_and_definition(
        &batch,
        "hello",
        guests::wasip1::HELLO,
        &["hello"],
        64,
        serde_json::json!({"containerProperties": {
            "image": "hello", "command": ["hello"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}],
            "volumes": [{"name": "shared", "host": {"sourcePath": "/team/shared"}}],
            "mountPoints": [{"sourceVolume": "shared", "containerPath": "/shared"}]
        }}),
    )
    .await;
    let (job, _) = run_job(&batch, "hello").await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");

    let mut paths = Vec::new();
    ours(&data_dir, &mut paths);
    for dir in [
        "wasmbatch.redb",
        "modules",
        "compiled",
        "scratch",
        "volumes/team/shared",
    ] {
        assert!(
            paths.contains(&data_dir.join(dir)),
            "{dir} was made: {paths:?}"
        );
    }
    assert!(
        paths
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "cwasm"))
    );
    assert!(
        paths
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "wasm"))
    );
    for path in &paths {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode(path),
            expected,
            "{} is {:o}",
            path.display(),
            mode(path)
        );
    }
}
