//! What a policy is asked about: a resource's canonical ARN, whatever spelling the caller uses,
//! and the host volumes a job definition mounts.
//!
//! An explicit Deny holds whatever spelling of a resource the caller uses. The attack of issue
//! 13: with `Allow batch:* on *` and `Deny batch:* on …:job-queue/production`, DeleteJobQueue
//! with `arn:aws-x:batch:…:job-queue/production` was authorised on the string as given and then
//! resolved by its last segment, and deleted the queue. Every operation that takes a reference is
//! tried here, through aws-sdk-batch signing with a real key against a server on a socket, with
//! a table of spellings; none may change anything, and the canonical ones must be denied.

use aws_sdk_batch::error::ProvideErrorMetadata;
use serde_json::json;
use wasmbatch_api::Access;
use wasmbatch_api::access::credentials::{CredentialsFile, credentials_path};
use wasmbatch_runtime::model::JobStatus;
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{
    decode, environment, finished, guests, job_queue, local_queue, module_and_definition,
};

const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";

/// Ways to write the resource `kind`/`name`, each with whether it is this service's canonical
/// spelling of it (a name counts: it resolves to the canonical ARN).
fn spellings(kind: &str, name: &str) -> Vec<(String, bool)> {
    let ours = format!("arn:aws:batch:{REGION}:{ACCOUNT}:{kind}/{name}");
    vec![
        (name.to_string(), true),
        (ours.clone(), true),
        (
            format!("arn:aws-x:batch:{REGION}:{ACCOUNT}:{kind}/{name}"),
            false,
        ),
        (
            format!("arn:aws-cn:batch:{REGION}:{ACCOUNT}:{kind}/{name}"),
            false,
        ),
        (
            format!("arn:aws:ecs:{REGION}:{ACCOUNT}:{kind}/{name}"),
            false,
        ),
        (
            format!("arn:aws:batch:eu-west-1:{ACCOUNT}:{kind}/{name}"),
            false,
        ),
        (
            format!("arn:aws:batch:{REGION}:111111111111:{kind}/{name}"),
            false,
        ),
        (format!("arn:aws:batch:::{kind}/{name}"), false),
        (format!("arn:aws:batch:{REGION}::{kind}/{name}"), false),
        (
            format!("arn::batch:{REGION}:{ACCOUNT}:{kind}/{name}"),
            false,
        ),
        (ours.to_uppercase(), false),
        (
            format!(
                "arn:aws:batch:{}:{ACCOUNT}:{kind}/{name}",
                REGION.to_uppercase()
            ),
            false,
        ),
        (
            format!(
                "arn:aws:batch:{REGION}:{ACCOUNT}:{kind}/{}",
                name.to_uppercase()
            ),
            false,
        ),
        (format!("{ours}/"), false),
        (format!("{name}/"), false),
        (
            format!("arn:aws:batch:{REGION}:{ACCOUNT}:{kind}/x/{name}"),
            false,
        ),
        (
            format!("arn:aws:batch:{REGION}:{ACCOUNT}:{kind}/../{name}"),
            false,
        ),
        (format!(" {ours}"), false),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_holds_for_every_spelling_of_an_arn() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    environment(&batch, "shared", 2, "ENABLED").await;
    environment(&batch, "prod-env", 2, "DISABLED").await;
    job_queue(&batch, "production", 5, "shared").await;
    job_queue(&batch, "open", 5, "shared").await;
    module_and_definition(
        &batch,
        "hello",
        guests::wasip1::HELLO,
        &["hi"],
        16,
        json!({}),
    )
    .await;
    module_and_definition(
        &batch,
        "prod-def",
        guests::wasip1::HELLO,
        &["p"],
        16,
        json!({}),
    )
    .await;
    let production_job = batch
        .submit_job(decode(
            json!({"jobName": "p", "jobQueue": "production", "jobDefinition": "hello"}),
        ))
        .await
        .unwrap()
        .job_id;
    assert_eq!(
        finished(&batch, &production_job).await.status,
        JobStatus::Succeeded
    );
    // Unused, so that a DeleteSchedulingPolicy that got through would really delete it.
    batch
        .create_scheduling_policy(decode(json!({"name": "prod-policy",
            "fairsharePolicy": {"computeReservation": 10}, "tags": {"team": "prod"}})))
        .await
        .unwrap();
    // Disabled, so that a DeleteJobQueue that got through would really delete it.
    batch
        .update_job_queue(decode(
            json!({"jobQueue": "production", "state": "DISABLED"}),
        ))
        .await
        .unwrap();

    let client = serve(
        &batch,
        dir.path(),
        "mallory",
        json!({"Statement": [
            {"Effect": "Allow", "Action": "batch:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "batch:*", "Resource": [
                "arn:aws:batch:*:*:job-queue/production",
                "arn:aws:batch:*:*:compute-environment/prod-env",
                "arn:aws:batch:*:*:job-definition/prod-def*",
                "arn:aws:batch:*:*:scheduling-policy/prod-policy"
            ]}
        ]}),
    )
    .await;
    let before = snapshot(&batch, &production_job);

    // Each outcome: (operation, spelling, canonical, error code or "ok").
    let mut outcomes: Vec<(&str, String, bool, String)> = Vec::new();
    fn code<T, E: ProvideErrorMetadata>(result: Result<T, E>) -> String {
        match result {
            Ok(_) => "ok".into(),
            Err(e) => e.code().unwrap_or("no code").to_string(),
        }
    }
    for (spelling, canonical) in spellings("job-queue", "production") {
        let s = spelling.clone();
        let tries = [
            (
                "UpdateJobQueue",
                code(
                    client
                        .update_job_queue()
                        .job_queue(&s)
                        .priority(999)
                        .send()
                        .await,
                ),
            ),
            (
                "DeleteJobQueue",
                code(client.delete_job_queue().job_queue(&s).send().await),
            ),
            (
                "SubmitJob",
                code(
                    client
                        .submit_job()
                        .job_name("x")
                        .job_queue(&s)
                        .job_definition("hello")
                        .send()
                        .await,
                ),
            ),
            (
                "ListJobs",
                code(client.list_jobs().job_queue(&s).send().await),
            ),
        ];
        for (operation, outcome) in tries {
            outcomes.push((operation, spelling.clone(), canonical, outcome));
        }
    }
    for (spelling, canonical) in spellings("compute-environment", "prod-env") {
        let s = spelling.clone();
        let tries = [
            (
                "UpdateComputeEnvironment",
                code(
                    client
                        .update_compute_environment()
                        .compute_environment(&s)
                        .state(aws_sdk_batch::types::CeState::Enabled)
                        .send()
                        .await,
                ),
            ),
            (
                "DeleteComputeEnvironment",
                code(
                    client
                        .delete_compute_environment()
                        .compute_environment(&s)
                        .send()
                        .await,
                ),
            ),
        ];
        for (operation, outcome) in tries {
            outcomes.push((operation, spelling.clone(), canonical, outcome));
        }
    }
    for (spelling, canonical) in spellings("job-definition", "prod-def:1") {
        let s = spelling.clone();
        let tries = [
            (
                "DeregisterJobDefinition",
                code(
                    client
                        .deregister_job_definition()
                        .job_definition(&s)
                        .send()
                        .await,
                ),
            ),
            (
                "SubmitJob",
                code(
                    client
                        .submit_job()
                        .job_name("x")
                        .job_queue("open")
                        .job_definition(&s)
                        .send()
                        .await,
                ),
            ),
        ];
        for (operation, outcome) in tries {
            outcomes.push((operation, spelling.clone(), canonical, outcome));
        }
    }
    for (spelling, canonical) in spellings("scheduling-policy", "prod-policy") {
        let s = spelling.clone();
        let fairshare = aws_sdk_batch::types::FairsharePolicy::builder()
            .compute_reservation(99)
            .build();
        let described = client.describe_scheduling_policies().arns(&s).send().await;
        let tries = [
            (
                "UpdateSchedulingPolicy",
                code(
                    client
                        .update_scheduling_policy()
                        .arn(&s)
                        .fairshare_policy(fairshare)
                        .send()
                        .await,
                ),
            ),
            (
                "DeleteSchedulingPolicy",
                code(client.delete_scheduling_policy().arn(&s).send().await),
            ),
            (
                "DescribeSchedulingPolicies",
                match described {
                    // Another name, which no policy has.
                    Ok(o) if o.scheduling_policies().is_empty() => NOTHING.into(),
                    other => code(other),
                },
            ),
        ];
        for (operation, outcome) in tries {
            outcomes.push((operation, spelling.clone(), canonical, outcome));
        }
    }
    // The tag operations take ARNs only; a job is judged by its own ARN and its queue's.
    let arn_spellings = spellings("job-queue", "production")
        .into_iter()
        .chain(spellings("compute-environment", "prod-env"))
        .chain(spellings("scheduling-policy", "prod-policy"))
        .chain(spellings("job-definition", "prod-def:1"))
        .chain(spellings("job", &production_job))
        .filter(|(s, _)| s.to_ascii_lowercase().starts_with("arn:"));
    for (spelling, canonical) in arn_spellings {
        let s = spelling.clone();
        let tries = [
            (
                "TagResource",
                code(
                    client
                        .tag_resource()
                        .resource_arn(&s)
                        .tags("owner", "mallory")
                        .send()
                        .await,
                ),
            ),
            (
                "UntagResource",
                code(
                    client
                        .untag_resource()
                        .resource_arn(&s)
                        .tag_keys("team")
                        .send()
                        .await,
                ),
            ),
            (
                "ListTagsForResource",
                code(
                    client
                        .list_tags_for_resource()
                        .resource_arn(&s)
                        .send()
                        .await,
                ),
            ),
        ];
        for (operation, outcome) in tries {
            outcomes.push((operation, spelling.clone(), canonical, outcome));
        }
    }

    let mut wrong = Vec::new();
    for (operation, spelling, canonical, outcome) in &outcomes {
        let expected: &[&str] = if *canonical {
            &["AccessDeniedException"]
        } else {
            // Not ours: refused as not an ARN of this service, or (another name) not found.
            &["ClientException", "AccessDeniedException", NOTHING]
        };
        if !expected.contains(&outcome.as_str()) {
            wrong.push(format!("{operation}({spelling:?}) -> {outcome}"));
        }
    }
    assert!(wrong.is_empty(), "a spelling got past the Deny: {wrong:#?}");
    assert!(outcomes.len() > 200, "{} tries", outcomes.len());
    assert_eq!(snapshot(&batch, &production_job), before, "state changed");
}

/// A describe that answered, with nothing in it.
const NOTHING: &str = "ok, nothing described";

/// What the attack would change: the queue, the environment, the definition, the scheduling
/// policy and their tags, and the jobs on the production queue and of the production definition.
fn snapshot(batch: &Batch, production_job: &str) -> serde_json::Value {
    let queue = batch.describe_job_queues(&["production".into()]);
    let env = batch.describe_compute_environments(&["prod-env".into()]);
    let definition = batch.describe_job_definitions(&["prod-def:1".into()], None, None);
    let jobs: Vec<_> = ["production", "open"]
        .iter()
        .flat_map(|queue| {
            [
                JobStatus::Submitted,
                JobStatus::Runnable,
                JobStatus::Succeeded,
            ]
            .into_iter()
            .flat_map(move |status| {
                batch
                    .list_jobs(&decode(json!({"jobQueue": queue, "jobStatus": status})))
                    .unwrap()
                    .jobs
                    .into_iter()
                    .map(|j| j.job_id)
            })
        })
        .collect();
    json!({
        "queue": queue,
        "env": env,
        "definition": definition,
        "jobs": jobs,
        "policy": batch.describe_scheduling_policies(&["prod-policy".into()]).unwrap(),
        "jobTags": batch.describe_jobs(&[production_job.to_string()]).unwrap()[0].tags,
    })
}

/// Serves `batch` on a socket with one key, `name`, holding `policy`, and returns an
/// aws-sdk-batch client signing with it.
async fn serve(
    batch: &Batch,
    data_dir: &std::path::Path,
    name: &str,
    policy: serde_json::Value,
) -> aws_sdk_batch::Client {
    let path = credentials_path(data_dir);
    let key =
        CredentialsFile::create_key(&path, name, serde_json::from_value(policy).unwrap()).unwrap();
    let access = Access::from_file(&path).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(wasmbatch_api::serve(
        listener,
        batch.clone(),
        access,
        std::future::pending(),
    ));
    aws_sdk_batch::Client::from_conf(
        aws_sdk_batch::Config::builder()
            .behavior_version(aws_sdk_batch::config::BehaviorVersion::latest())
            .region(aws_sdk_batch::config::Region::new(REGION))
            .credentials_provider(aws_sdk_batch::config::Credentials::new(
                &key.access_key_id,
                &key.secret_access_key,
                None,
                None,
                "test",
            ))
            .endpoint_url(&endpoint)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build(),
    )
}

/// One team's key cannot mount another team's directory: registering a definition that mounts
/// `sourcePath P` needs `batch:UseVolume` on `…:volume/P` as well as RegisterJobDefinition, for
/// every volume it names, however the path is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_key_cannot_mount_another_teams_volume() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let client = serve(
        &batch,
        dir.path(),
        "team-a",
        json!({"Statement": [
            {"Effect": "Allow", "Action": "batch:RegisterJobDefinition",
             "Resource": "arn:aws:batch:*:*:job-definition/*"},
            {"Effect": "Allow", "Action": "batch:UseVolume",
             "Resource": "arn:aws:batch:*:*:volume/team-a/*"},
            {"Effect": "Allow", "Action": "batch:PullImage",
             "Resource": "arn:aws:batch:*:*:module/hello"}
        ]}),
    )
    .await;
    let register = |name: &'static str, sources: &'static [&'static str]| {
        let client = client.clone();
        async move {
            let mut properties = aws_sdk_batch::types::ContainerProperties::builder()
                .image("hello")
                .resource_requirements(
                    aws_sdk_batch::types::ResourceRequirement::builder()
                        .r#type(aws_sdk_batch::types::ResourceType::Memory)
                        .value("16")
                        .build(),
                );
            for (i, source) in sources.iter().enumerate() {
                let volume = format!("v{i}");
                properties = properties
                    .volumes(
                        aws_sdk_batch::types::Volume::builder()
                            .name(&volume)
                            .host(
                                aws_sdk_batch::types::Host::builder()
                                    .source_path(*source)
                                    .build(),
                            )
                            .build(),
                    )
                    .mount_points(
                        aws_sdk_batch::types::MountPoint::builder()
                            .source_volume(&volume)
                            .container_path(format!("/v{i}"))
                            .build(),
                    );
            }
            client
                .register_job_definition()
                .job_definition_name(name)
                .r#type(aws_sdk_batch::types::JobDefinitionType::Container)
                .container_properties(properties.build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().unwrap_or("no code").to_string())
        }
    };
    assert_eq!(register("own", &["team-a/data"]).await, Ok(()));
    assert_eq!(
        register("own-spelled", &["/team-a/./data//x/"]).await,
        Ok(())
    );
    for (name, sources) in [
        ("other-team", &["team-b/data"][..]),
        ("one-of-two", &["team-a/data", "team-b/data"][..]),
        ("the-root", &["/"][..]),
        ("the-team-dir-itself", &["team-a"][..]),
    ] {
        let refused = register(name, sources).await;
        assert!(
            matches!(
                refused.as_ref().map_err(String::as_str),
                Err("AccessDeniedException" | "ClientException")
            ),
            "{name}: {refused:?}"
        );
    }
    assert_eq!(
        register("escape", &["team-a/../team-b"]).await,
        Err("ClientException".to_string())
    );
    assert_eq!(registered(&batch), ["own", "own-spelled"]);
}

/// The names of the definitions `batch` holds: what got through.
fn registered(batch: &Batch) -> Vec<String> {
    batch
        .describe_job_definitions(&[], None, None)
        .into_iter()
        .map(|d| d.job_definition_name)
        .collect()
}

/// RegisterJobDefinition of `image` (16 MiB, so that it can run) through `client`: `Ok` or the
/// error's code.
async fn register_image(
    client: aws_sdk_batch::Client,
    name: &str,
    image: String,
) -> Result<(), String> {
    client
        .register_job_definition()
        .job_definition_name(name)
        .r#type(aws_sdk_batch::types::JobDefinitionType::Container)
        .container_properties(
            aws_sdk_batch::types::ContainerProperties::builder()
                .image(image)
                .resource_requirements(
                    aws_sdk_batch::types::ResourceRequirement::builder()
                        .r#type(aws_sdk_batch::types::ResourceType::Memory)
                        .value("16")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.code().unwrap_or("no code").to_string())
}

/// The server pulls registry images with its own login (`registries.json`), so a key that may
/// register definitions could otherwise run any private image that login reaches. The attack:
/// team A's key registers a definition whose image is team B's repository, in any spelling of
/// it (a tag, a digest, another tag), and has the server pull it. A repository is a resource
/// (`…:registry/<host>/<repository>`, tag and digest left out) that needs `batch:PullImage`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_key_cannot_pull_another_teams_registry_image_with_the_servers_login() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let client = serve(
        &batch,
        dir.path(),
        "team-a",
        json!({"Statement": [
            {"Effect": "Allow", "Action": "batch:RegisterJobDefinition",
             "Resource": "arn:aws:batch:*:*:job-definition/*"},
            {"Effect": "Allow", "Action": "batch:PullImage",
             "Resource": "arn:aws:batch:*:*:registry/registry.example.com/team-a/*"}
        ]}),
    )
    .await;
    let register = |name: &'static str, image: String| register_image(client.clone(), name, image);
    let digest = format!("sha256:{}", "ab".repeat(32));
    let host = "registry.example.com";
    assert_eq!(
        register("own", format!("{host}/team-a/render:1.4")).await,
        Ok(())
    );
    assert_eq!(
        register("own-pinned", format!("{host}/team-a/render@{digest}")).await,
        Ok(())
    );
    for (name, image) in [
        ("other-team", format!("{host}/team-b/render:1.4")),
        ("other-pinned", format!("{host}/team-b/render@{digest}")),
        (
            "other-tagged-and-pinned",
            format!("{host}/team-b/render:x@{digest}"),
        ),
        ("other-registry", format!("{host}:443/team-a/render:1.4")),
        ("the-team-prefix", format!("{host}/team-a-evil/render")),
    ] {
        assert_eq!(
            register(name, image.clone()).await,
            Err("AccessDeniedException".to_string()),
            "{image}"
        );
    }
    assert_eq!(
        register("escape", format!("{host}/team-a/../team-b/render")).await,
        Err("ClientException".to_string())
    );
    // A module pushed to this server is a module's ARN, not a registry's.
    assert_eq!(
        register("local", "render:1.4".to_string()).await,
        Err("AccessDeniedException".to_string())
    );
    assert_eq!(registered(&batch), ["own", "own-pinned"]);
}

/// Modules pushed to this server share one namespace, and a definition runs its module with the
/// server's rights, so a key that may register definitions could otherwise run another team's
/// module (and whatever it carries) by naming it, even with a Deny on that module. The attack:
/// team A's key registers definitions whose image is team B's module, by name, tag and digest,
/// then submits one. A module is a resource (`…:module/<name>`) that needs `batch:PullImage`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_key_cannot_run_another_teams_module_by_naming_it_in_a_definition() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    local_queue(&batch, 2, "ENABLED").await;
    job_queue(&batch, "team-a", 1, "local").await;
    let secret = batch
        .push_module("team-b-secret", guests::bytes(guests::wasip1::HELLO))
        .await
        .unwrap();
    batch
        .push_module("team-a-hello", guests::bytes(guests::wasip1::HELLO))
        .await
        .unwrap();
    let client = serve(
        &batch,
        dir.path(),
        "team-a",
        json!({"Statement": [
            {"Effect": "Allow", "Action": ["batch:RegisterJobDefinition", "batch:SubmitJob"],
             "Resource": ["arn:aws:batch:*:*:job-definition/*", "arn:aws:batch:*:*:job-queue/team-a"]},
            {"Effect": "Allow", "Action": "batch:PullImage",
             "Resource": "arn:aws:batch:*:*:module/team-a-*"},
            {"Effect": "Deny", "Action": "batch:*",
             "Resource": "arn:aws:batch:*:*:module/team-b-*"}
        ]}),
    )
    .await;
    let register = |name: &'static str, image: String| register_image(client.clone(), name, image);
    let digest = &secret.digest;
    for (name, image) in [
        ("by-name", "team-b-secret".to_string()),
        ("by-tag", "team-b-secret:latest".to_string()),
        ("by-digest", format!("team-b-secret@{digest}")),
        ("tag-and-digest", format!("team-b-secret:x@{digest}")),
    ] {
        assert_eq!(
            register(name, image.clone()).await,
            Err("AccessDeniedException".to_string()),
            "{image}"
        );
    }
    // Its own module, by any spelling, registers and runs.
    assert_eq!(register("own", "team-a-hello".to_string()).await, Ok(()));
    assert_eq!(
        register("own-pinned", format!("team-a-hello@{digest}")).await,
        Ok(())
    );
    assert_eq!(registered(&batch), ["own", "own-pinned"]);
    let submitted = client
        .submit_job()
        .job_name("mine")
        .job_queue("team-a")
        .job_definition("own")
        .send()
        .await
        .unwrap();
    let job = finished(&batch, submitted.job_id().unwrap()).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
}

/// A dependency tells the dependent job how another ended ("Dependent Job failed: <id>") and
/// that it exists. A key kept to its own queue must not learn either about another queue's job by
/// naming it in `dependsOn`: the same refusal as for an id that names nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_on_another_teams_job_is_refused_like_describing_it() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    local_queue(&batch, 2, "ENABLED").await;
    job_queue(&batch, "team-b", 1, "local").await;
    module_and_definition(
        &batch,
        "hello",
        guests::wasip1::HELLO,
        &["hi"],
        16,
        json!({}),
    )
    .await;
    let submit = |queue: &str| {
        decode::<wasmbatch_runtime::model::SubmitJob>(
            json!({"jobName": "j", "jobQueue": queue, "jobDefinition": "hello"}),
        )
    };
    let bobs = batch.submit_job(submit("team-b")).await.unwrap().job_id;
    let alices = batch.submit_job(submit("main")).await.unwrap().job_id;
    let client = serve(
        &batch,
        dir.path(),
        "alice",
        json!({"Statement": {"Effect": "Allow",
            "Action": ["batch:SubmitJob", "batch:DescribeJobs"],
            "Resource": ["arn:aws:batch:*:*:job-queue/main", "arn:aws:batch:*:*:job-definition/*"]}}),
    )
    .await;
    let after = |id: &str| {
        client
            .submit_job()
            .job_name("after")
            .job_queue("main")
            .job_definition("hello")
            .depends_on(
                aws_sdk_batch::types::JobDependency::builder()
                    .job_id(id)
                    .build(),
            )
            .send()
    };
    let made_up = "00000000-0000-4000-8000-000000000000";
    for id in [bobs.as_str(), made_up] {
        let refused = after(id).await.unwrap_err();
        assert_eq!(refused.code(), Some("AccessDeniedException"), "{id}");
    }
    after(&alices)
        .await
        .expect("her own job may be depended on");
}

/// One team's key cannot spend another team's share of a fair-share queue: the share a job
/// names is charged for its capacity, so a team submitting under `blue` would take blue's
/// capacity and leave its own usage untouched. A key kept to its share with IAM's
/// `batch:ShareIdentifier` condition is refused for any other share, however it is spelled, and
/// nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_key_cannot_submit_under_another_teams_share() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    environment(&batch, "local", 2, "DISABLED").await;
    let policy = batch
        .create_scheduling_policy(decode(json!({"name": "teams"})))
        .await
        .unwrap();
    batch
        .create_job_queue(decode(json!({
            "jobQueueName": "shared", "priority": 1, "schedulingPolicyArn": policy.arn,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}]
        })))
        .await
        .unwrap();
    module_and_definition(&batch, "hello", guests::wasip1::HELLO, &[], 16, json!({})).await;
    let client = serve(
        &batch,
        dir.path(),
        "red-team",
        json!({"Statement": {"Effect": "Allow", "Action": "batch:SubmitJob",
            "Resource": ["arn:aws:batch:*:*:job-queue/shared", "arn:aws:batch:*:*:job-definition/*"],
            "Condition": {"StringLike": {"batch:ShareIdentifier": ["red", "redteam*"]}}}}),
    )
    .await;
    let submit = |share: &str| {
        client
            .submit_job()
            .job_name("j")
            .job_queue("shared")
            .job_definition("hello")
            .share_identifier(share)
            .send()
    };
    for share in ["blue", "Red", "redte", "blu*", "xred", "redx"] {
        let refused = submit(share).await.unwrap_err();
        assert_eq!(refused.code(), Some("AccessDeniedException"), "{share}");
    }
    let refused = client
        .submit_job()
        .job_name("no-share")
        .job_queue("shared")
        .job_definition("hello")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some("AccessDeniedException"),
        "a share is the condition"
    );
    assert!(
        batch.job_counts("shared").unwrap().is_empty(),
        "nothing was queued"
    );
    submit("red").await.expect("its own share");
    submit("redteam7").await.expect("its own prefix");
    assert_eq!(
        batch
            .job_counts("shared")
            .unwrap()
            .get(&JobStatus::Runnable),
        Some(&2)
    );
}

/// A queue spends the capacity of the environments it names: one team's key allowed to manage
/// its own queues cannot create a queue on another team's environment, nor move its queue
/// there, nor attach another team's scheduling policy; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_key_cannot_point_its_queue_at_another_teams_environment() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    environment(&batch, "red-env", 2, "ENABLED").await;
    environment(&batch, "prod-env", 2, "ENABLED").await;
    let theirs = batch
        .create_scheduling_policy(decode(json!({"name": "prod-policy"})))
        .await
        .unwrap();
    let ours = batch
        .create_scheduling_policy(decode(json!({"name": "red-policy"})))
        .await
        .unwrap();
    let client = serve(
        &batch,
        dir.path(),
        "red-team",
        json!({"Statement": {"Effect": "Allow",
            "Action": ["batch:CreateJobQueue", "batch:UpdateJobQueue"],
            "Resource": ["arn:aws:batch:*:*:job-queue/red-*",
                         "arn:aws:batch:*:*:compute-environment/red-*",
                         "arn:aws:batch:*:*:scheduling-policy/red-*"]}}),
    )
    .await;
    let order = |env: &str| {
        aws_sdk_batch::types::ComputeEnvironmentOrder::builder()
            .order(1)
            .compute_environment(env)
            .build()
    };
    for env in [
        "prod-env",
        &format!("arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/prod-env"),
    ] {
        let refused = client
            .create_job_queue()
            .job_queue_name("red-grab")
            .priority(1)
            .compute_environment_order(order(env))
            .send()
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some("AccessDeniedException"), "{env}");
    }
    let refused = client
        .create_job_queue()
        .job_queue_name("red-fair")
        .priority(1)
        .scheduling_policy_arn(&theirs.arn)
        .compute_environment_order(order("red-env"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("AccessDeniedException"));
    assert!(batch.describe_job_queues(&[]).is_empty(), "nothing created");

    client
        .create_job_queue()
        .job_queue_name("red-work")
        .priority(1)
        .scheduling_policy_arn(&ours.arn)
        .compute_environment_order(order("red-env"))
        .send()
        .await
        .expect("its own environment and policy");
    let refused = client
        .update_job_queue()
        .job_queue("red-work")
        .compute_environment_order(order("prod-env"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("AccessDeniedException"));
    let queue = &batch.describe_job_queues(&["red-work".into()])[0];
    assert!(
        queue.compute_environment_order[0]
            .compute_environment
            .ends_with("/red-env"),
        "{queue:?}"
    );
}
