//! The module store as image users expect it: tags that move (`render:1.4`, `render` meaning
//! `render:latest`), pins by digest, and every attempt reporting the digest it ran, whatever
//! its image said; a data dir from before tags; and a tag in a path that must not change what a
//! policy is checked against.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use redb::ReadableTable as _;
use serde_json::{Value, json};
use wasmbatch_api::Access;
use wasmbatch_api::access::credentials::{CredentialsFile, credentials_path};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::router::{answer, post};
use wasmbatch_tests::{guests, local_queue};

fn push(reference: &str, path: &str) -> Request<Body> {
    Request::put(format!("/v1/modules/{reference}"))
        .header("content-type", "application/wasm")
        .body(Body::from(guests::bytes(path)))
        .unwrap()
}

fn delete(reference: &str) -> Request<Body> {
    Request::delete(format!("/v1/modules/{reference}"))
        .body(Body::empty())
        .unwrap()
}

fn definition(name: &str, image: &str) -> Request<Body> {
    post(
        "registerjobdefinition",
        json!({"jobDefinitionName": name, "type": "container",
            "containerProperties": {"image": image, "command": ["0"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]}})
        .to_string(),
    )
}

/// Submits a job of `definition` through the routes and returns it once it has ended, as
/// DescribeJobs reports it.
async fn run(app: &axum::Router, definition: &str) -> Value {
    let (status, _, submitted) = answer(
        app,
        post(
            "submitjob",
            json!({"jobName": definition, "jobQueue": "main", "jobDefinition": definition})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{submitted}");
    let id = submitted["jobId"].clone();
    for _ in 0..1000 {
        let (_, _, reply) =
            answer(app, post("describejobs", json!({"jobs": [id]}).to_string())).await;
        let job = reply["jobs"][0].clone();
        if job["status"] == "SUCCEEDED" || job["status"] == "FAILED" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("job {id} did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_move_as_image_tags_do_and_every_attempt_reports_the_digest_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    local_queue(&batch, 2, "ENABLED").await;
    let app = wasmbatch_api::app(batch.clone(), Access::local());

    let (status, _, hello) = answer(&app, push("tool", guests::wasip1::HELLO)).await;
    assert_eq!(status, StatusCode::OK, "{hello}");
    assert_eq!(
        hello["tags"],
        json!(["latest"]),
        "a push without a tag moves latest"
    );
    let hello = hello["digest"].as_str().unwrap().to_string();
    let (status, _, exit) = answer(&app, push("tool:1.4", guests::wasip1::EXIT_CODE)).await;
    assert_eq!(status, StatusCode::OK, "{exit}");
    assert_eq!(exit["tags"], json!(["1.4"]));
    let exit = exit["digest"].as_str().unwrap().to_string();
    assert_ne!(hello, exit);

    let (_, _, listed) = answer(
        &app,
        Request::get("/v1/modules").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        listed["modules"][0]["tags"],
        json!({"1.4": exit, "latest": hello}),
        "{listed}"
    );

    for (name, image) in [
        ("untagged", "tool"),
        ("latest", "tool:latest"),
        ("tagged", "tool:1.4"),
        ("pinned", &format!("tool@{hello}")),
    ] {
        let (status, _, reply) = answer(&app, definition(name, image)).await;
        assert_eq!(status, StatusCode::OK, "{image}: {reply}");
    }
    let ran = |job: &Value| {
        assert_eq!(job["status"], "SUCCEEDED", "{job}");
        assert_eq!(
            job["attempts"][0]["container"]["imageDigest"],
            job["container"]["imageDigest"]
        );
        job["container"]["imageDigest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        ran(&run(&app, "untagged").await),
        hello,
        "NAME is NAME:latest"
    );
    assert_eq!(ran(&run(&app, "latest").await), hello);
    let before = run(&app, "tagged").await;
    assert_eq!(ran(&before), exit);
    assert_eq!(ran(&run(&app, "pinned").await), hello);
    assert_eq!(
        before["container"]["image"], "tool:1.4",
        "the image is reported as the definition wrote it"
    );

    // The tag moves: the next job of the same definition runs the new module, and the job
    // before still reports what it ran.
    let (status, _, moved) = answer(&app, push("tool:1.4", guests::wasip1::HELLO)).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(ran(&run(&app, "tagged").await), hello);
    let (_, _, again) = answer(
        &app,
        post(
            "describejobs",
            json!({"jobs": [before["jobId"]]}).to_string(),
        ),
    )
    .await;
    assert_eq!(ran(&again["jobs"][0]), exit);

    // The old version is no tag's now, so it can go; one a tag points at cannot.
    let (status, _, reply) = answer(&app, delete(&format!("tool@{exit}"))).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (_, _, reply) = answer(&app, push("other", guests::wasip1::EXIT_CODE)).await;
    let exit = reply["digest"].as_str().unwrap().to_string();
    let (_, _, reply) = answer(&app, push("other:keep", guests::wasip1::EXIT_CODE)).await;
    assert_eq!(reply["tags"], json!(["keep", "latest"]));
    let (status, _, reply) = answer(&app, push("other", guests::wasip1::HELLO)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (status, _, reply) = answer(&app, delete(&format!("other@{exit}"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("tagged other:keep"),
        "{reply}"
    );

    // Deleting a tag leaves the name and its versions; a job naming the tag fails saying so.
    let (status, _, reply) = answer(&app, delete("tool:1.4")).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["tags"], json!({"latest": hello}));
    let failed = run(&app, "tagged").await;
    assert_eq!(failed["status"], "FAILED");
    let reason = failed["attempts"][0]["statusReason"].as_str().unwrap();
    assert!(
        reason.starts_with("CannotPullContainerError: ")
            && reason.contains("module tool has no tag \"1.4\"; its tags: latest"),
        "{reason}"
    );
    assert!(
        failed["container"].get("imageDigest").is_none(),
        "it ran nothing: {failed}"
    );
    let (status, _, reply) = answer(&app, delete("tool:1.4")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");

    // Tags are durable.
    batch.close("test").await.unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let other = batch.module("other").unwrap();
    assert_eq!(other.tags.get("keep"), Some(&exit));
    assert_eq!(other.tags.get("latest"), Some(&hello));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tags_and_references_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let app = wasmbatch_api::app(batch.clone(), Access::local());
    for reference in [
        "tool:.hidden",
        "tool:a:b",
        &format!("tool:{}", "t".repeat(129)),
    ] {
        let (status, _, reply) = answer(&app, push(reference, guests::wasip1::HELLO)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reference}: {reply}");
        assert!(
            reply["message"].as_str().unwrap().contains("tag"),
            "{reference}: {reply}"
        );
    }
    for (image, problem) in [
        (
            "amazon/amazon-ecs-agent",
            "docker.io/amazon/amazon-ecs-agent",
        ),
        ("tool@sha256:abc", "sha256:<64 hex digits>"),
        ("registry.example.com/Tool:1", "lowercase"),
    ] {
        let (status, _, reply) = answer(&app, definition("d", image)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{image}: {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(
            message.contains("containerProperties.image") && message.contains(problem),
            "{image}: {message}"
        );
    }
    assert!(batch.modules().is_empty(), "nothing was stored");
    assert!(batch.describe_job_definitions(&[], None, None).is_empty());
}

/// Store format 5 had no tags: `NAME` meant the name's latest push. Opened by this build, each
/// name's latest push becomes its tag `latest`, so a definition naming `NAME` runs what it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_store_format_5_opens_with_each_latest_push_tagged_latest() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let old = batch
        .push_module("tool", guests::bytes(guests::wasip1::EXIT_CODE))
        .await
        .unwrap();
    let new = batch
        .push_module("tool", guests::bytes(guests::wasip1::HELLO))
        .await
        .unwrap();
    batch.close("downgrade").await.unwrap();
    // What format 5 wrote: the record without `tags`.
    {
        let db = redb::Database::open(dir.path().join("wasmbatch.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut modules = txn
                .open_table(redb::TableDefinition::<&str, &[u8]>::new("modules"))
                .unwrap();
            let mut record: Value =
                serde_json::from_slice(modules.get("tool").unwrap().unwrap().value()).unwrap();
            record.as_object_mut().unwrap().remove("tags").unwrap();
            modules
                .insert("tool", record.to_string().as_bytes())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    wasmbatch_tests::rewrite_store_format(dir.path(), 5, &[]);

    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let tool = batch.module("tool").unwrap();
    assert_eq!(tool.tags.len(), 1, "{tool:?}");
    assert_eq!(tool.tags["latest"], new.digest);
    assert_eq!(tool.history, [old.digest.clone(), new.digest.clone()]);
    local_queue(&batch, 2, "ENABLED").await;
    let app = wasmbatch_api::app(batch.clone(), Access::local());
    answer(&app, definition("untagged", "tool")).await;
    let job = run(&app, "untagged").await;
    assert_eq!(job["container"]["imageDigest"], new.digest.as_str());
    batch.close("upgraded").await.unwrap();
    assert_eq!(wasmbatch_tests::store_format(dir.path()), 6);
}

/// The attack: with `Allow batch:*` on every module but `Deny` on `module/release`, a caller
/// pushes `release:evil` or deletes `release:latest`, hoping the tag makes the ARN checked
/// `module/release:evil`, which the Deny does not name. The ARN is the module's name alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_in_the_path_does_not_escape_a_deny_on_the_module() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let released = batch
        .push_module("release", guests::bytes(guests::wasip1::HELLO))
        .await
        .unwrap();
    let path = credentials_path(dir.path());
    let key = CredentialsFile::create_key(
        &path,
        "team",
        serde_json::from_value(json!({"Statement": [
            {"Effect": "Allow", "Action": "batch:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "batch:*",
             "Resource": "arn:aws:batch:us-east-1:000000000000:module/release"}
        ]}))
        .unwrap(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(wasmbatch_api::serve(
        listener,
        batch.clone(),
        Access::from_file(&path).unwrap(),
        std::future::pending(),
    ));
    let send = |method: &'static str, reference: &str, body: Vec<u8>| {
        let head = wasmbatch_tests::wire::signed_head(
            &key.access_key_id,
            &key.secret_access_key,
            method,
            &address.to_string(),
            &format!("/v1/modules/{reference}"),
            "application/wasm",
            Some(&body),
        );
        async move { wasmbatch_tests::wire::exchange(address, &head, &body).await }
    };
    let evil = guests::bytes(guests::wasip1::EXIT_CODE);
    for reference in ["release:evil", "release:latest", "release"] {
        let refused = send("PUT", reference, evil.clone()).await;
        assert_eq!(refused.status, 403, "PUT {reference}: {refused:?}");
        assert_eq!(refused.error_type(), "AccessDeniedException");
    }
    for reference in [
        "release:latest",
        &format!("release@{}", released.digest),
        "release",
    ] {
        let refused = send("DELETE", reference, Vec::new()).await;
        assert_eq!(refused.status, 403, "DELETE {reference}: {refused:?}");
    }
    let refused = send("GET", "release:latest", Vec::new()).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let release = batch.module("release").unwrap();
    assert_eq!(release.tags.len(), 1, "nothing changed: {release:?}");
    assert_eq!(release.tags["latest"], released.digest);
    // The same key may push any other module, tagged.
    let allowed = send("PUT", "scratch:1", evil).await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert!(batch.module("scratch").unwrap().tags.contains_key("1"));
}

/// Writes the server's login to `registry` into data dir `dir`, as `wasmbatch registry login`
/// does.
fn login(dir: &std::path::Path, registry: &str, username: &str, password: &str) {
    use wasmbatch_runtime::registry::{RegistryLogin, RegistrySettings};
    let mut settings = RegistrySettings::read(dir).unwrap();
    settings.logins.insert(
        registry.to_string(),
        RegistryLogin::Basic {
            username: username.into(),
            password: password.into(),
        },
    );
    settings.write(dir).unwrap();
}

/// Pushes guest `path` to `image` as `wasmbatch push --registry` does; the manifest's digest.
async fn push_to_registry(image: &str, path: &str, user: Option<(&str, &str)>) -> String {
    let login =
        user.map(
            |(username, password)| wasmbatch_runtime::registry::RegistryLogin::Basic {
                username: username.into(),
                password: password.into(),
            },
        );
    wasmbatch_runtime::registry::push(image, guests::bytes(path), login.as_ref(), false)
        .await
        .unwrap_or_else(|e| panic!("pushing {image}: {e}"))
        .manifest_digest
}

fn status_reason(job: &Value) -> String {
    job["attempts"][0]["statusReason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_image_runs_by_tag_and_by_digest_and_a_moved_tag_is_seen_at_placement() {
    let mut registry = wasmbatch_tests::registry::Registry::start_with_user("ci", "s3cret");
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &host, "ci", "s3cret");
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    local_queue(&batch, 2, "ENABLED").await;
    let app = wasmbatch_api::app(batch.clone(), Access::local());

    let tagged = format!("{host}/team/tool:1.0");
    let first = push_to_registry(&tagged, guests::wasip1::HELLO, Some(("ci", "s3cret"))).await;
    let pinned = format!("{host}/team/tool@{first}");
    for (name, image) in [("tagged", &tagged), ("pinned", &pinned)] {
        let (status, _, reply) = answer(&app, definition(name, image)).await;
        assert_eq!(status, StatusCode::OK, "{image}: {reply}");
    }
    let before = run(&app, "tagged").await;
    assert_eq!(before["status"], "SUCCEEDED", "{before}");
    assert_eq!(
        before["container"]["imageDigest"],
        first.as_str(),
        "{before}"
    );
    assert_eq!(before["container"]["image"], tagged.as_str());
    let (_, lines) = wasmbatch_tests::run_job(&batch, "pinned").await;
    assert!(
        lines.iter().any(|l| l.starts_with("hello from wasmbatch")),
        "the pulled module ran: {lines:?}"
    );

    // The tag moves in the registry; the next placement sees it (jobs placed within a second
    // of each other share one answer, so wait that out).
    let second = push_to_registry(&tagged, guests::wasip1::EXIT_CODE, Some(("ci", "s3cret"))).await;
    assert_ne!(first, second);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let after = run(&app, "tagged").await;
    assert_eq!(after["status"], "SUCCEEDED", "{after}");
    assert_eq!(after["container"]["imageDigest"], second.as_str());
    let (_, _, again) = answer(
        &app,
        post(
            "describejobs",
            json!({"jobs": [before["jobId"]]}).to_string(),
        ),
    )
    .await;
    assert_eq!(again["jobs"][0]["container"]["imageDigest"], first.as_str());

    // Pulled modules are kept like pushed ones, under their repository's name.
    let kept = batch.module(&format!("{host}/team/tool")).unwrap();
    assert_eq!(kept.history.len(), 2, "{kept:?}");
    assert_eq!(kept.manifests.len(), 2, "{kept:?}");
    assert_eq!(Some(&kept.tags["1.0"]), kept.manifests.get(&second));

    // A component (wasip2) travels the same way.
    let component = format!("{host}/team/tool-p2:1");
    push_to_registry(&component, guests::wasip2::HELLO, Some(("ci", "s3cret"))).await;
    answer(&app, definition("component", &component)).await;
    let ran = run(&app, "component").await;
    assert_eq!(ran["status"], "SUCCEEDED", "{ran}");

    // The registry goes down: a pinned image pulled before still runs; a tag cannot be
    // resolved, and the attempt says why as AWS does.
    registry.stop();
    let pinned_job = run(&app, "pinned").await;
    assert_eq!(pinned_job["status"], "SUCCEEDED", "{pinned_job}");
    assert_eq!(pinned_job["container"]["imageDigest"], first.as_str());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let down = run(&app, "tagged").await;
    assert_eq!(down["status"], "FAILED", "{down}");
    let reason = status_reason(&down);
    assert!(
        reason.starts_with("CannotPullContainerError: ") && reason.contains("cannot be reached"),
        "{reason}"
    );

    // What was pulled outlives a restart.
    batch.close("test").await.unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let app = wasmbatch_api::app(batch.clone(), Access::local());
    let restarted = run(&app, "pinned").await;
    assert_eq!(restarted["status"], "SUCCEEDED", "{restarted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_login_a_tampered_module_or_a_missing_tag_fails_the_attempt_saying_so() {
    let registry = wasmbatch_tests::registry::Registry::start_with_user("ci", "s3cret");
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    local_queue(&batch, 2, "ENABLED").await;
    let app = wasmbatch_api::app(batch.clone(), Access::local());
    let image = format!("{host}/team/tool:1.0");
    push_to_registry(&image, guests::wasip1::HELLO, Some(("ci", "s3cret"))).await;
    for (name, image) in [
        ("tool", image.clone()),
        ("missing", format!("{host}/team/tool:2.0")),
    ] {
        let (status, _, reply) = answer(&app, definition(name, &image)).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }
    let fails_with = |job: &Value, words: &str| {
        assert_eq!(job["status"], "FAILED", "{job}");
        let reason = status_reason(job);
        assert!(
            reason.starts_with("CannotPullContainerError: ") && reason.contains(words),
            "{reason:?} should say {words:?}"
        );
        assert!(job["container"].get("imageDigest").is_none(), "{job}");
    };

    // No login, then a wrong one: the server's settings are read at each pull.
    fails_with(&run(&app, "tool").await, "refused the login");
    login(dir.path(), &host, "ci", "hunter2-not-it");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let wrong = run(&app, "tool").await;
    fails_with(&wrong, "refused the login");
    assert!(
        !status_reason(&wrong).contains("hunter2"),
        "a secret is never quoted: {wrong}"
    );

    // The right login, but the module's blob was changed in the registry's storage.
    login(dir.path(), &host, "ci", "s3cret");
    // The layer is the module's bytes, so its digest is theirs.
    let layer =
        wasmbatch_runtime::engine::Digest::of(&guests::bytes(guests::wasip1::HELLO)).to_string();
    registry.tamper_blob(&layer);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    fails_with(&run(&app, "tool").await, "does not match its digest");
    let kept = batch.module(&format!("{host}/team/tool"));
    assert!(kept.is_none(), "nothing tampered with is kept: {kept:?}");
    assert!(
        !dir.path()
            .join(format!(
                "modules/{}.wasm",
                layer.trim_start_matches("sha256:")
            ))
            .exists()
    );

    fails_with(&run(&app, "missing").await, "not found in the registry");
}

/// A WASI command that does nothing, made different from every other by `n`.
fn nothing(n: usize) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (memory (export "memory") 1) (func (export "_start")) (data (i32.const 0) "v{n}"))"#
    ))
    .unwrap()
}

/// A repository whose images a caller keeps changing must not fill the server's disk: the
/// server keeps at most eight pulled versions of it (a tagged one always), dropping the oldest
/// with their files, and a dropped version that is asked for again is pulled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_that_keeps_changing_keeps_at_most_eight_versions_here() {
    let registry = wasmbatch_tests::registry::Registry::start();
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    local_queue(&batch, 2, "ENABLED").await;
    let app = wasmbatch_api::app(batch.clone(), Access::local());
    let mut pinned = Vec::new();
    for n in 0..11 {
        let image = format!("{host}/churn/app:v{n}");
        let digest = wasmbatch_runtime::registry::push(&image, nothing(n), None, false)
            .await
            .unwrap()
            .manifest_digest;
        let name = format!("v{n}");
        answer(
            &app,
            definition(&name, &format!("{host}/churn/app@{digest}")),
        )
        .await;
        let job = run(&app, &name).await;
        assert_eq!(job["status"], "SUCCEEDED", "{job}");
        pinned.push((name, wasmbatch_runtime::engine::Digest::of(&nothing(n))));
    }
    let kept = batch.module(&format!("{host}/churn/app")).unwrap();
    assert_eq!(kept.history.len(), 8, "{kept:?}");
    assert_eq!(kept.manifests.len(), 8, "{kept:?}");
    let file = |digest: &wasmbatch_runtime::engine::Digest| {
        dir.path().join(format!("modules/{}.wasm", digest.hex()))
    };
    for (_, digest) in &pinned[..3] {
        assert!(
            !file(digest).exists(),
            "the oldest versions' files are gone"
        );
    }
    for (_, digest) in &pinned[3..] {
        assert!(file(digest).exists());
    }
    // Asked for again, the first is pulled again (and another old one makes room).
    let again = run(&app, &pinned[0].0).await;
    assert_eq!(again["status"], "SUCCEEDED", "{again}");
    assert!(file(&pinned[0].1).exists());
    assert_eq!(
        batch
            .module(&format!("{host}/churn/app"))
            .unwrap()
            .history
            .len(),
        8
    );

    // A pulled module is described and deleted by its name, slashes and port included.
    let path = format!("{host}/churn/app");
    let (status, _, described) = answer(
        &app,
        Request::get(format!("/v1/modules/{path}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{described}");
    assert_eq!(described["name"], path.as_str());
    let (status, _, reply) = answer(&app, delete(&path)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(batch.module(&path).is_none());
    assert!(!file(&pinned[0].1).exists(), "its files went with it");
}
