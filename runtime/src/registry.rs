//! Modules in OCI registries: the Wasm OCI artifact layout (CNCF TAG Runtime's, which wasmtime,
//! Spin, wasmCloud and `wkg` share: one `application/wasm` layer, an
//! `application/vnd.wasm.config.v0+json` config, an OCI image manifest), pulled for a job's
//! `image` and pushed by `wasmbatch push --registry`, with the operator's credentials.
//!
//! Credentials and the hosts allowed plain HTTP are the operator's, in
//! `<data_dir>/registries.json` ([`RegistrySettings`]), never a definition's: a caller names an
//! image, the server decides how it may reach the registry. Plain HTTP goes only to loopback or
//! to a host that file lists. The file is read at each pull, so a login takes effect at once.
//!
//! What comes back is checked before it is used: oci-client verifies the manifest and the layer
//! against their digests; here the layer's size is held to the module limit as it arrives, and
//! its hash checked once more. Nothing a registry answers is quoted back beyond its status and
//! error codes, since the registry's host is the caller's choice.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};

use crate::engine::Digest;
use crate::model::image::{ImageRef, RegistryRef};

/// The config's media type, which marks a Wasm artifact.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The one layer's media type: the module or component itself.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";

/// The format of `registries.json` this build writes and reads.
pub const SETTINGS_FORMAT: u32 = 1;
/// Its name in the data dir.
pub const SETTINGS_FILE: &str = "registries.json";

/// How long one pull may take, whatever the registry does.
const PULL_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A registry's answer to pushing or pulling, or why there was none.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference is not `host[:port]/repository[:tag]`.
    #[error("{0}")]
    Reference(String),
    /// The registry refused or failed, or could not be reached.
    #[error("{0}")]
    Registry(String),
    /// `registries.json` cannot be read or written.
    #[error("{path}: {reason}")]
    Settings {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// How to log in to one registry. Its `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RegistryLogin {
    /// HTTP basic: a user and a password (or an access token used as one, as ECR and GHCR take).
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// A bearer token, sent as is.
    Token {
        /// The token.
        token: String,
    },
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryLogin::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <hidden> }}")
            }
            RegistryLogin::Token { .. } => f.write_str("Token { token: <hidden> }"),
        }
    }
}

/// `<data_dir>/registries.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrySettings {
    /// [`SETTINGS_FORMAT`].
    pub format: u32,
    /// Registry (`host` or `host:port`, as images name it) → how to log in.
    #[serde(default)]
    pub logins: BTreeMap<String, RegistryLogin>,
    /// Registries besides loopback that may be reached over plain HTTP.
    #[serde(default)]
    pub plain_http: Vec<String>,
}

impl RegistrySettings {
    /// The settings in data dir `data_dir`: none when it has no file.
    pub fn read(data_dir: &Path) -> Result<RegistrySettings, RegistryError> {
        let path = data_dir.join(SETTINGS_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistrySettings {
                    format: SETTINGS_FORMAT,
                    ..Default::default()
                });
            }
            Err(e) => return Err(settings_error(&path, e)),
        };
        let settings: RegistrySettings =
            serde_json::from_slice(&bytes).map_err(|e| settings_error(&path, e))?;
        if settings.format != SETTINGS_FORMAT {
            return Err(settings_error(
                &path,
                format!(
                    "format {} is not one this build reads (format {SETTINGS_FORMAT})",
                    settings.format
                ),
            ));
        }
        Ok(settings)
    }

    /// Writes the settings to data dir `data_dir`, readable by this user only, replacing the
    /// file whole.
    pub fn write(&self, data_dir: &Path) -> Result<(), RegistryError> {
        let path = data_dir.join(SETTINGS_FILE);
        let tmp = data_dir.join(format!("{SETTINGS_FILE}.tmp{}", std::process::id()));
        let json = serde_json::to_vec_pretty(self).expect("settings serialize");
        let _ = std::fs::remove_file(&tmp);
        crate::private_files::create_new(&tmp)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, &json)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| settings_error(&path, e))
    }

    /// Whether `registry` may be reached over plain HTTP: loopback, or listed.
    pub fn allows_plain_http(&self, registry: &str) -> bool {
        is_loopback(registry) || self.plain_http.iter().any(|r| r == registry)
    }
}

fn settings_error(path: &Path, reason: impl ToString) -> RegistryError {
    RegistryError::Settings {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Whether `registry` (`host[:port]`) is this machine's loopback.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What a pull found: the manifest's digest and its one Wasm layer.
pub(crate) struct Manifest {
    /// `sha256:<hex>` of the manifest.
    pub(crate) digest: String,
    pub(crate) layer: OciDescriptor,
}

/// A registry, the login used there, and whether plain HTTP is allowed: what a client is for.
type ClientKey = (String, Option<RegistryLogin>, bool);

/// The server's way to registries: a client per registry and login, reused (building one loads
/// the system's roots), and the settings read from the data dir at each pull.
pub(crate) struct Registries {
    data_dir: PathBuf,
    clients: Mutex<HashMap<ClientKey, Client>>,
}

impl Registries {
    pub(crate) fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client and login for `image`'s registry.
    async fn client_for(&self, image: &RegistryRef) -> Result<(Client, RegistryAuth), String> {
        let data_dir = self.data_dir.clone();
        let settings = tokio::task::spawn_blocking(move || RegistrySettings::read(&data_dir))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let login = settings.logins.get(&image.registry).cloned();
        let plain = settings.allows_plain_http(&image.registry);
        let key = (image.registry.clone(), login.clone(), plain);
        // oci-client keeps the first login it is given for a registry: one client per login.
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() > 64 {
            clients.clear();
        }
        let client = match clients.get(&key) {
            Some(client) => client.clone(),
            None => {
                let client = client(&image.registry, plain).map_err(|e| e.to_string())?;
                clients.insert(key, client.clone());
                client
            }
        };
        Ok((client, auth(login.as_ref())))
    }

    /// The manifest `image` names (by tag or digest), checked to be a Wasm artifact whose layer
    /// fits in `max_bytes`.
    pub(crate) async fn manifest(
        &self,
        image: &RegistryRef,
        max_bytes: u64,
    ) -> Result<Manifest, String> {
        let reference = reference(image).map_err(|e| e.to_string())?;
        let (client, auth) = self.client_for(image).await?;
        let pulled =
            tokio::time::timeout(PULL_TIMEOUT, client.pull_image_manifest(&reference, &auth))
                .await
                .map_err(|_| {
                    format!("{image}: the registry did not answer within {PULL_TIMEOUT:?}")
                })?;
        let (manifest, digest) = pulled.map_err(|e| explain(image, &e, SERVER_LOGIN))?;
        let layer = wasm_layer(image, &manifest)?;
        let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if size > max_bytes {
            return Err(format!(
                "{image}: its module is {size} bytes, more than the limit of {max_bytes} bytes"
            ));
        }
        Ok(Manifest { digest, layer })
    }

    /// The bytes of `manifest`'s layer, checked against its digest and size.
    pub(crate) async fn layer(
        &self,
        image: &RegistryRef,
        manifest: &Manifest,
        max_bytes: u64,
    ) -> Result<Vec<u8>, String> {
        let reference = reference(image).map_err(|e| e.to_string())?;
        let (client, _) = self.client_for(image).await?;
        let mut out = Bounded {
            bytes: Vec::new(),
            limit: max_bytes.min(u64::try_from(manifest.layer.size).unwrap_or(u64::MAX)),
        };
        tokio::time::timeout(
            PULL_TIMEOUT,
            client.pull_blob(&reference, &manifest.layer, &mut out),
        )
        .await
        .map_err(|_| {
            format!("{image}: the registry did not send the module within {PULL_TIMEOUT:?}")
        })?
        .map_err(|e| explain(image, &e, SERVER_LOGIN))?;
        let digest = Digest::of(&out.bytes).to_string();
        if digest != manifest.layer.digest || out.bytes.len() as i64 != manifest.layer.size {
            return Err(format!(
                "{image}: the module sent is not the one its manifest names ({} bytes of {digest}, \
                 not {} bytes of {})",
                out.bytes.len(),
                manifest.layer.size,
                manifest.layer.digest
            ));
        }
        Ok(out.bytes)
    }
}

/// Where a pull's login comes from, said when the registry refuses it.
const SERVER_LOGIN: &str = " (the server's login for it, or none, from registries.json: \
                            `wasmbatch registry login`)";

/// What was pushed: the manifest's digest (what `image@…` pins) and the module's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// `sha256:<hex>` of the manifest.
    pub manifest_digest: String,
    /// `sha256:<hex>` of the module's bytes.
    pub module_digest: String,
}

/// Pushes `wasm` (a core module or a component) to `image` (`host[:port]/repository:tag`) as a
/// Wasm OCI artifact, logging in with `login` if given. Plain HTTP only when `plain_http` or the
/// registry is loopback.
pub async fn push(
    image: &str,
    wasm: Vec<u8>,
    login: Option<&RegistryLogin>,
    plain_http: bool,
) -> Result<PushedImage, RegistryError> {
    let ImageRef::Registry(target) = ImageRef::parse(image).map_err(RegistryError::Reference)?
    else {
        return Err(RegistryError::Reference(format!(
            "{image:?} is not a registry reference: write host[:port]/repository[:tag]"
        )));
    };
    if target.digest.is_some() {
        return Err(RegistryError::Reference(format!(
            "{image}: a push names a tag, not a digest (the registry gives the digest)"
        )));
    }
    let reference = reference(&target)?;
    let client = client(
        &target.registry,
        plain_http || is_loopback(&target.registry),
    )?;
    let module_digest = Digest::of(&wasm).to_string();
    let layer = ImageLayer::new(wasm, LAYER_MEDIA_TYPE.to_string(), None);
    let os = if is_component(&layer.data) {
        "wasip2"
    } else {
        "wasip1"
    };
    let config = WasmConfig {
        // Fixed, so the same module pushed twice has the same manifest digest.
        created: "1970-01-01T00:00:00Z".into(),
        author: None,
        architecture: "wasm".into(),
        os: os.into(),
        layer_digests: vec![module_digest.clone()],
        component: None,
    };
    let config = Config::new(
        serde_json::to_vec(&config).expect("the config serializes"),
        CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    let mut manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
    manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
    let pushed = tokio::time::timeout(
        PULL_TIMEOUT,
        client.push(&reference, &[layer], config, &auth(login), Some(manifest)),
    )
    .await
    .map_err(|_| {
        RegistryError::Registry(format!(
            "{image}: the registry did not take the push within {PULL_TIMEOUT:?}"
        ))
    })?
    .map_err(|e| RegistryError::Registry(explain(&target, &e, "")))?;
    let manifest_digest = pushed
        .manifest_url
        .rsplit('/')
        .next()
        .filter(|d| d.starts_with("sha256:"))
        .map(str::to_string)
        .ok_or_else(|| {
            RegistryError::Registry(format!(
                "{image}: the registry did not say the manifest's digest"
            ))
        })?;
    Ok(PushedImage {
        manifest_digest,
        module_digest,
    })
}

/// The config blob, as the layout (and oci-wasm) write it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    created: String,
    author: Option<String>,
    architecture: String,
    os: String,
    layer_digests: Vec<String>,
    component: Option<serde_json::Value>,
}

/// A component's preamble: version 0x0d, layer 1 (a core module's is version 1, layer 0).
fn is_component(wasm: &[u8]) -> bool {
    wasm.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00])
}

fn client(registry: &str, plain_http: bool) -> Result<Client, RegistryError> {
    static RING: OnceLock<()> = OnceLock::new();
    RING.get_or_init(|| {
        // reqwest takes the process's rustls provider; Err only means one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    Client::try_from(ClientConfig {
        protocol: if plain_http {
            ClientProtocol::HttpsExcept(vec![registry.to_string()])
        } else {
            ClientProtocol::Https
        },
        // A Wasm artifact is one manifest; an image index (several platforms) is refused.
        platform_resolver: None,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..Default::default()
    })
    .map_err(|e| RegistryError::Registry(format!("{registry}: cannot make a client: {e}")))
}

fn auth(login: Option<&RegistryLogin>) -> RegistryAuth {
    match login {
        None => RegistryAuth::Anonymous,
        Some(RegistryLogin::Basic { username, password }) => {
            RegistryAuth::Basic(username.clone(), password.clone())
        }
        Some(RegistryLogin::Token { token }) => RegistryAuth::Bearer(token.clone()),
    }
}

fn reference(image: &RegistryRef) -> Result<Reference, RegistryError> {
    let text = match (&image.tag, &image.digest) {
        (_, Some(digest)) => format!("{}@{digest}", image.name()),
        (tag, None) => format!(
            "{}:{}",
            image.name(),
            tag.as_deref().unwrap_or(crate::model::image::DEFAULT_TAG)
        ),
    };
    text.parse()
        .map_err(|e| RegistryError::Reference(format!("{image}: {e}")))
}

/// The one `application/wasm` layer of a Wasm artifact's manifest.
fn wasm_layer(image: &RegistryRef, manifest: &OciImageManifest) -> Result<OciDescriptor, String> {
    let wasm: Vec<&OciDescriptor> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == LAYER_MEDIA_TYPE)
        .collect();
    match (manifest.config.media_type.as_str(), &wasm[..]) {
        (CONFIG_MEDIA_TYPE, [layer]) if manifest.layers.len() == 1 => Ok((*layer).clone()),
        (config, _) => {
            let layers: Vec<&str> = manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect();
            Err(format!(
                "{image} is not a Wasm OCI artifact (config {config}, layers {layers:?}); \
                 wasmbatch runs WebAssembly modules, pushed with one {LAYER_MEDIA_TYPE} layer and \
                 a {CONFIG_MEDIA_TYPE} config"
            ))
        }
    }
}

/// Why a registry operation failed, in words that quote nothing the registry sent but its
/// status and error codes; `login_hint` follows a refused login.
fn explain(image: &RegistryRef, error: &OciDistributionError, login_hint: &str) -> String {
    let why = match error {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => format!("the registry refused the login{login_hint}"),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope.errors.iter().map(|e| code(&e.code)).collect();
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
                )
            }) {
                "not found in the registry".to_string()
            } else {
                format!("the registry refused it ({})", codes.join(", "))
            }
        }
        OciDistributionError::ServerError { code, .. } => {
            format!("the registry answered HTTP {code}")
        }
        OciDistributionError::DigestError(_) => {
            "what the registry sent does not match its digest (refused)".to_string()
        }
        OciDistributionError::RequestError(e) if e.is_connect() => {
            "the registry cannot be reached (connection failed)".to_string()
        }
        OciDistributionError::RequestError(e) if e.is_timeout() => {
            "the registry did not answer in time".to_string()
        }
        OciDistributionError::RequestError(_) => "the request to the registry failed".to_string(),
        other => {
            // oci-client's own descriptions name no registry content for these.
            let text = other.to_string();
            text.chars().take(200).collect()
        }
    };
    format!("{image}: {why}")
}

fn code(code: &OciErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{code:?}"))
}

/// A writer that holds what it is given, refusing more than `limit` bytes.
struct Bounded {
    bytes: Vec<u8>,
    limit: u64,
}

impl tokio::io::AsyncWrite for Bounded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.bytes.len() as u64 + buf.len() as u64 > self.limit {
            return Poll::Ready(Err(std::io::Error::other(format!(
                "more than the {} bytes the manifest announced",
                self.limit
            ))));
        }
        self.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_only_to_loopback_or_listed_hosts() {
        let settings = RegistrySettings {
            format: SETTINGS_FORMAT,
            plain_http: vec!["registry.lan:5000".into()],
            ..Default::default()
        };
        for registry in [
            "127.0.0.1:5000",
            "localhost",
            "[::1]:5000",
            "127.9.9.9",
            "registry.lan:5000",
        ] {
            assert!(settings.allows_plain_http(registry), "{registry}");
        }
        for registry in [
            "registry.lan",
            "10.0.0.1:5000",
            "localhost.example.com",
            "ghcr.io",
        ] {
            assert!(!settings.allows_plain_http(registry), "{registry}");
        }
    }

    #[test]
    fn only_a_wasm_artifact_is_pulled() {
        let image = match ImageRef::parse("registry.example.com/app:1").unwrap() {
            ImageRef::Registry(r) => r,
            ImageRef::Local(_) => unreachable!(),
        };
        let layer = |media_type: &str| OciDescriptor {
            media_type: media_type.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 10,
            ..Default::default()
        };
        let manifest = |config: &str, layers: Vec<OciDescriptor>| OciImageManifest {
            config: OciDescriptor {
                media_type: config.into(),
                ..layer(config)
            },
            layers,
            ..Default::default()
        };
        let wasm = manifest(CONFIG_MEDIA_TYPE, vec![layer(LAYER_MEDIA_TYPE)]);
        assert_eq!(
            wasm_layer(&image, &wasm).unwrap().media_type,
            LAYER_MEDIA_TYPE
        );
        let docker = manifest(
            "application/vnd.docker.container.image.v1+json",
            vec![layer("application/vnd.docker.image.rootfs.diff.tar.gzip")],
        );
        let refused = wasm_layer(&image, &docker).unwrap_err();
        assert!(refused.contains("is not a Wasm OCI artifact"), "{refused}");
        let two = manifest(
            CONFIG_MEDIA_TYPE,
            vec![layer(LAYER_MEDIA_TYPE), layer(LAYER_MEDIA_TYPE)],
        );
        assert!(wasm_layer(&image, &two).is_err());
    }

    #[test]
    fn settings_of_another_format_are_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SETTINGS_FILE), r#"{"format": 2}"#).unwrap();
        let error = RegistrySettings::read(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("format 2") && error.contains("format 1"),
            "{error}"
        );
        let login = RegistrySettings {
            format: SETTINGS_FORMAT,
            logins: [(
                "127.0.0.1:5000".to_string(),
                RegistryLogin::Basic {
                    username: "u".into(),
                    password: "p".into(),
                },
            )]
            .into(),
            plain_http: Vec::new(),
        };
        login.write(dir.path()).unwrap();
        assert_eq!(RegistrySettings::read(dir.path()).unwrap(), login);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SETTINGS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
        }
    }
}
