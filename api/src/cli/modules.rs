//! `wasmbatch push` and `wasmbatch modules`: the server's module store, or an OCI registry; and
//! `wasmbatch registry login`: the server's credentials for registries.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;
use std::io::Read as _;

use super::client::{Connection, Endpoint, Output, print_json, table, text};

/// Push a .wasm module to the server, so jobs can name it as their image.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wasmbatch push hello.wasm\n  wasmbatch push render.wasm --tag 1.4    (jobs name it render:1.4)\n  wasmbatch push target/wasm32-wasip1/release/sha256.wasm --name sha256\n  wasmbatch push render.wasm --registry registry.example.com/team/render:1.4 --username ci --password-stdin"
)]
pub struct Push {
    /// The module: a WASI command (wasip1) or component (wasip2).
    file: PathBuf,
    /// The name jobs use; the file's name without `.wasm` by default.
    #[arg(long)]
    name: Option<String>,
    /// The tag to point at it (jobs name it NAME:TAG); `latest` by default, which is what NAME
    /// alone means.
    #[arg(long, conflicts_with = "registry")]
    tag: Option<String>,
    /// Push to an OCI registry instead (`host[:port]/repository[:tag]`), as a Wasm OCI artifact
    /// that any server (and any cluster worker) can pull: jobs then name this reference.
    #[arg(long, value_name = "REFERENCE", conflicts_with = "name")]
    registry: Option<String>,
    /// The registry user (with --registry); the password is read from standard input.
    #[arg(long, requires = "registry")]
    username: Option<String>,
    /// Read the registry password (or token, without --username) from standard input.
    #[arg(long, requires = "registry")]
    password_stdin: bool,
    /// Allow plain HTTP to a registry that is not loopback (loopback always may).
    #[arg(long, requires = "registry")]
    plain_http: bool,
    #[command(flatten)]
    connection: Connection,
}

impl Push {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        if let Some(reference) = &self.registry {
            return self.to_registry(reference).await;
        }
        let name = match self.name {
            Some(name) => name,
            None => self
                .file
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
                .with_context(|| {
                    format!(
                        "{}: cannot tell a name from it; give --name",
                        self.file.display()
                    )
                })?,
        };
        let file = tokio::fs::File::open(&self.file)
            .await
            .with_context(|| format!("cannot open {}", self.file.display()))?;
        let size = file.metadata().await?.len();
        let reference = match &self.tag {
            Some(tag) => format!("{name}:{tag}"),
            None => name,
        };
        let server = Endpoint::new(&self.connection)?;
        let pushed = server.push(&reference, file, size).await?;
        match self.connection.output {
            Output::Json => print_json(&pushed),
            Output::Table => println!(
                "pushed {}:{} {} ({} bytes)",
                text(&pushed["name"]),
                tags(&pushed["tags"]),
                text(&pushed["digest"]),
                text(&pushed["size"])
            ),
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Push {
    async fn to_registry(&self, reference: &str) -> anyhow::Result<ExitCode> {
        let wasm = tokio::fs::read(&self.file)
            .await
            .with_context(|| format!("cannot read {}", self.file.display()))?;
        let login = login(self.username.clone(), self.password_stdin)?;
        let pushed =
            wasmbatch_runtime::registry::push(reference, wasm, login.as_ref(), self.plain_http)
                .await?;
        match self.connection.output {
            Output::Json => print_json(&serde_json::json!({
                "image": reference,
                "manifestDigest": pushed.manifest_digest,
                "moduleDigest": pushed.module_digest,
            })),
            Output::Table => println!(
                "pushed {reference} {} (module {})",
                pushed.manifest_digest, pushed.module_digest
            ),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A login from `--username` and a secret read from standard input: basic with a user, a
/// bearer token without one.
pub(super) fn login(
    username: Option<String>,
    secret_stdin: bool,
) -> anyhow::Result<Option<wasmbatch_runtime::registry::RegistryLogin>> {
    use wasmbatch_runtime::registry::RegistryLogin;
    if !secret_stdin {
        anyhow::ensure!(
            username.is_none(),
            "--username needs --password-stdin: a password is never taken as an argument"
        );
        return Ok(None);
    }
    let mut secret = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().take(64 << 10), &mut secret)
        .context("reading the password from standard input")?;
    let secret = secret.trim_end_matches(['\n', '\r']).to_string();
    anyhow::ensure!(!secret.is_empty(), "standard input held no password");
    Ok(Some(match username {
        Some(username) => RegistryLogin::Basic {
            username,
            password: secret,
        },
        None => RegistryLogin::Token { token: secret },
    }))
}

/// List the modules pushed to the server.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  wasmbatch modules --output json")]
pub struct Modules {
    #[command(flatten)]
    connection: Connection,
}

impl Modules {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let server = Endpoint::new(&self.connection)?;
        let reply = server.get("/v1/modules").await?;
        if self.connection.output == Output::Json {
            print_json(&reply);
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = reply["modules"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|m: &Value| {
                let tagged: Vec<String> = m["tags"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(tag, digest)| format!("{tag}={}", short(digest)))
                    .collect();
                vec![
                    text(&m["name"]),
                    if tagged.is_empty() {
                        "-".into()
                    } else {
                        tagged.join(",")
                    },
                    text(&m["digest"]),
                    text(&m["size"]),
                    m["pushedAt"].as_i64().map_or("-".into(), super::jobs::time),
                ]
            })
            .collect();
        table(&["NAME", "TAGS", "LATEST PUSH", "BYTES", "PUSHED"], &rows);
        Ok(ExitCode::SUCCESS)
    }
}

/// `sha256:` and the first 12 hex digits, as `docker images` shortens them.
fn short(digest: &Value) -> String {
    let digest = digest.as_str().unwrap_or("-");
    digest.get(..19).unwrap_or(digest).to_string()
}

/// A push's tags, as `a,b`.
fn tags(tags: &Value) -> String {
    let tags: Vec<String> = tags.as_array().into_iter().flatten().map(text).collect();
    tags.join(",")
}

/// The server's logins to OCI registries (`<data-dir>/registries.json`), which it pulls jobs'
/// registry images with. A running server reads the file at each pull.
#[derive(Debug, clap::Args)]
pub struct Registry {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RegistryCommand {
    Login(Login),
    Logout(Logout),
}

/// Save a login to a registry for the server (the password or token from standard input).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  echo \"$PASSWORD\" | wasmbatch registry login registry.example.com --username ci --password-stdin\n  wasmbatch registry login registry.lan:5000 --plain-http    (no login, plain HTTP allowed)"
)]
struct Login {
    /// The registry, as images name it: `host` or `host:port`.
    registry: String,
    /// The user; the password is read from standard input.
    #[arg(long)]
    username: Option<String>,
    /// Read the password (or, without --username, a bearer token) from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Allow plain HTTP to this registry (loopback always may).
    #[arg(long)]
    plain_http: bool,
    /// The data dir of the server the login is for.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// Remove a registry's login (and its plain-HTTP allowance) from the server's settings.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  wasmbatch registry logout registry.example.com")]
struct Logout {
    /// The registry: `host` or `host:port`.
    registry: String,
    /// The data dir of the server.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl Registry {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        use wasmbatch_runtime::model::image::ImageRef;
        use wasmbatch_runtime::registry::RegistrySettings;
        match self.command {
            RegistryCommand::Login(login) => {
                // The same host rules as an image's: checked on a reference that names it.
                ImageRef::parse(&format!("{}/x", login.registry))
                    .map_err(|e| anyhow::anyhow!("registry {:?}: {e}", login.registry))?;
                let data_dir = login.data_dir.unwrap_or_else(super::default_data_dir);
                let credentials = self::login(login.username, login.password_stdin)?;
                let mut settings = RegistrySettings::read(&data_dir)?;
                match credentials {
                    Some(credentials) => {
                        settings.logins.insert(login.registry.clone(), credentials);
                    }
                    None => {
                        settings.logins.remove(&login.registry);
                    }
                }
                settings.plain_http.retain(|r| *r != login.registry);
                if login.plain_http {
                    settings.plain_http.push(login.registry.clone());
                }
                std::fs::create_dir_all(&data_dir)
                    .with_context(|| format!("cannot create {}", data_dir.display()))?;
                settings.write(&data_dir)?;
                println!(
                    "saved {} for {} in {}",
                    if settings.logins.contains_key(&login.registry) {
                        "a login"
                    } else {
                        "no login"
                    },
                    login.registry,
                    data_dir
                        .join(wasmbatch_runtime::registry::SETTINGS_FILE)
                        .display()
                );
            }
            RegistryCommand::Logout(logout) => {
                let data_dir = logout.data_dir.unwrap_or_else(super::default_data_dir);
                let mut settings = RegistrySettings::read(&data_dir)?;
                let had = settings.logins.remove(&logout.registry).is_some();
                settings.plain_http.retain(|r| *r != logout.registry);
                settings.write(&data_dir)?;
                println!(
                    "{} {}",
                    if had {
                        "removed the login for"
                    } else {
                        "there was no login for"
                    },
                    logout.registry
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
