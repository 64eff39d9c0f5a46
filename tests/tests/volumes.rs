//! Job definitions' host volumes: directories under the service's volume root, mounted where the
//! definition says, shared by the jobs that name them (the map/reduce the demo runs); paths that
//! would leave the root, unknown volumes and other volume kinds are refused.

use std::time::Duration;

use serde_json::{Value, json};
use wasmbatch_runtime::model::{JobStatus, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig, Digest};
use wasmbatch_tests::{decode, guests, local_queue};

fn definition(name: &str, command: &[&str], read_only: bool) -> Value {
    json!({
        "jobDefinitionName": name, "type": "container",
        "containerProperties": {
            "image": "mapreduce", "command": command,
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}],
            "volumes": [{"name": "shared", "host": {"sourcePath": "/demo/shared"}}],
            "mountPoints": [{"sourceVolume": "shared", "containerPath": "/shared", "readOnly": read_only}]
        }
    })
}

async fn wait(batch: &Batch, id: &str) -> wasmbatch_runtime::model::Job {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let job = batch.describe_jobs(&[id.to_string()]).unwrap().remove(0);
            if job.status.is_terminal() {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the job did not end")
}

async fn log(batch: &Batch, id: &str) -> Vec<String> {
    let stream = batch.log_stream(id, None).unwrap();
    let events = batch.log_events(&stream).await.unwrap();
    events.into_iter().map(|e| e.message).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_maps_into_a_volume_and_a_dependent_job_reduces_it() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    local_queue(&batch, 4, "ENABLED").await;
    batch
        .push_module("mapreduce", guests::bytes(guests::wasip1::MAPREDUCE))
        .await
        .unwrap();
    for (name, command, read_only) in [
        ("map", &["map", "1", "/shared"][..], false),
        ("reduce", &["reduce", "4", "/shared"][..], true),
        ("map-read-only", &["map", "1", "/shared"][..], true),
    ] {
        batch
            .register_job_definition(decode(definition(name, command, read_only)))
            .await
            .unwrap();
    }
    let submit = |name: &str, extra: Value| {
        let mut request = json!({"jobName": name, "jobQueue": "main", "jobDefinition": name});
        for (k, v) in extra.as_object().unwrap() {
            request[k] = v.clone();
        }
        decode::<SubmitJob>(request)
    };
    let map = batch
        .submit_job(submit("map", json!({"arrayProperties": {"size": 4}})))
        .await
        .unwrap()
        .job_id;
    let reduce = batch
        .submit_job(submit("reduce", json!({"dependsOn": [{"jobId": map}]})))
        .await
        .unwrap()
        .job_id;
    assert_eq!(wait(&batch, &map).await.status, JobStatus::Succeeded);
    let reduced = wait(&batch, &reduce).await;
    assert_eq!(reduced.status, JobStatus::Succeeded, "{reduced:?}");

    // The parts are on the host, under the volume root, one per child.
    let shared = dir.path().join("volumes/demo/shared");
    let mut all = String::new();
    for i in 0..4 {
        let part = std::fs::read_to_string(shared.join(format!("part-{i}"))).unwrap();
        assert_eq!(part.len(), 64, "a hex digest");
        assert_eq!(
            log(&batch, &format!("{map}:{i}")).await,
            [format!("part {i}: {part}")]
        );
        all.push_str(&part);
    }
    assert_eq!(
        log(&batch, &reduce).await,
        [format!(
            "4 parts reduced: {}",
            Digest::of(all.as_bytes()).hex()
        )]
    );

    // Read-only means read-only.
    let denied = batch
        .submit_job(submit("map-read-only", json!({})))
        .await
        .unwrap()
        .job_id;
    let denied = wait(&batch, &denied).await;
    assert_eq!(denied.status, JobStatus::Failed, "{denied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_that_leave_the_root_or_do_not_resolve_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let cases = [
        (
            json!([{"name": "v", "host": {"sourcePath": "/data/../../etc"}}]),
            json!([{"sourceVolume": "v", "containerPath": "/etc"}]),
            "containerProperties.volumes[0].host.sourcePath",
        ),
        (
            json!([{"name": "v", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]),
            json!([]),
            "containerProperties.volumes[0].efsVolumeConfiguration",
        ),
        (
            json!([{"name": "v", "host": {"sourcePath": "data"}}]),
            json!([{"sourceVolume": "w", "containerPath": "/data"}]),
            "containerProperties.mountPoints[0].sourceVolume",
        ),
        (
            json!([{"name": "v", "host": {"sourcePath": "data"}}]),
            json!([{"sourceVolume": "v", "containerPath": "/scratch"}]),
            "containerProperties.mountPoints[0].containerPath",
        ),
        (
            json!([{"name": "v", "host": {"sourcePath": "data"}}]),
            json!([{"sourceVolume": "v", "containerPath": "relative"}]),
            "containerProperties.mountPoints[0].containerPath",
        ),
        (
            json!([{"name": "v", "host": {"sourcePath": "a"}}, {"name": "v", "host": {"sourcePath": "b"}}]),
            json!([]),
            "containerProperties.volumes[1].name",
        ),
    ];
    for (volumes, mounts, field) in cases {
        let request = json!({
            "jobDefinitionName": "bad", "type": "container",
            "containerProperties": {"image": "x", "volumes": volumes, "mountPoints": mounts}
        });
        let error = batch
            .register_job_definition(decode(request))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.starts_with(field), "{error} should name {field}");
    }
    assert!(batch.describe_job_definitions(&[], None, None).is_empty());
    assert!(!dir.path().join("volumes").exists(), "nothing was created");
}

/// A volume that cannot be made (a file stands where its directory should be) fails the attempt
/// before the guest runs, saying which volume and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_that_cannot_be_created_fails_the_attempt_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    local_queue(&batch, 1, "ENABLED").await;
    batch
        .push_module("mapreduce", guests::bytes(guests::wasip1::MAPREDUCE))
        .await
        .unwrap();
    std::fs::create_dir_all(dir.path().join("volumes")).unwrap();
    std::fs::write(
        dir.path().join("volumes/blocked"),
        b"a file, not a directory",
    )
    .unwrap();
    let mut request = definition("blocked", &["map", "1", "/shared"], false);
    request["containerProperties"]["volumes"][0]["host"]["sourcePath"] = json!("blocked/inner");
    batch
        .register_job_definition(decode(request))
        .await
        .unwrap();
    let id = batch
        .submit_job(decode(
            json!({"jobName": "b", "jobQueue": "main", "jobDefinition": "blocked"}),
        ))
        .await
        .unwrap()
        .job_id;
    let job = wait(&batch, &id).await;
    assert_eq!(job.status, JobStatus::Failed);
    let reason = job.status_reason.unwrap();
    assert!(
        reason.starts_with("CannotCreateContainerError: volume blocked/inner for /shared"),
        "{reason}"
    );
}
