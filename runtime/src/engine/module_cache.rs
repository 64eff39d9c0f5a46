//! Modules by content: each is named by the sha256 of its bytes, compiled at most once per
//! digest (off the async workers, a bounded number at a time, each within a function count and
//! a time limit), kept in memory as a ready-to-use `InstancePre`, and kept on disk as a
//! compiled artifact so a restarted process does not compile it again. An artifact is loaded
//! only if its bytes hash to the digest the [`ArtifactLedger`] recorded when it was written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::{OnceCell, Semaphore};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::error::LoadError;
use super::ledger::{ArtifactDigest, ArtifactLedger};
use super::wasi::{ComponentState, CoreState, Linkers};

/// A module's identity: the sha256 of its bytes, shown as `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest a hasher fed the whole module arrives at.
    pub(crate) fn from_hasher(hasher: Sha256) -> Self {
        Self(hasher.finalize().into())
    }

    /// Parses `sha256:<64 hex digits>`.
    pub fn parse(text: &str) -> Option<Self> {
        let hex_digits = text.strip_prefix("sha256:")?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Which kind of WASI program a module is, told from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModuleKind {
    /// A core module with WASI preview-1 imports and a `_start` export (`wasm32-wasip1`).
    Preview1,
    /// A component exporting `wasi:cli/run` (`wasm32-wasip2`).
    Preview2,
}

/// A module loaded and linked, ready to start attempts from. Cheap to clone.
#[derive(Clone)]
pub struct JobModule(pub(crate) Arc<Loaded>);

pub(crate) struct Loaded {
    pub(crate) digest: Digest,
    pub(crate) pre: Pre,
    /// Whether it imports a way to name or list a directory ([`opens_paths`]): only then does an
    /// attempt get a scratch directory, which one that cannot open a path could never use.
    pub(crate) opens_paths: bool,
}

/// Whether a preview-1 module with these imports can reach a preopened directory: every use of
/// one goes through a `path_*` function, `fd_readdir`, or the `fd_prestat_*` pair a guest finds
/// its preopens by. A module importing none of them can still only write its stdout and stderr.
fn core_opens_paths(module: &wasmtime::Module) -> bool {
    module.imports().any(|import| {
        let name = import.name();
        name.starts_with("path_")
            || matches!(
                name,
                "fd_readdir" | "fd_prestat_get" | "fd_prestat_dir_name"
            )
    })
}

/// Whether a component can reach a preopened directory: only through `wasi:filesystem`.
fn component_opens_paths(component: &Component, engine: &wasmtime::Engine) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:filesystem/"))
}

pub(crate) enum Pre {
    Core(wasmtime::InstancePre<CoreState>),
    Component(CommandPre<ComponentState>),
}

impl JobModule {
    /// The digest of the module's bytes.
    pub fn digest(&self) -> Digest {
        self.0.digest
    }

    /// Whether it is a preview-1 module or a preview-2 component.
    pub fn kind(&self) -> ModuleKind {
        match self.0.pre {
            Pre::Core(_) => ModuleKind::Preview1,
            Pre::Component(_) => ModuleKind::Preview2,
        }
    }
}

impl std::fmt::Debug for JobModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobModule")
            .field("digest", &self.digest())
            .field("kind", &self.kind())
            .finish()
    }
}

/// How often the cache compiled, read from disk, or reused what it had.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Modules compiled from their bytes.
    pub compiled: u64,
    /// Modules read back from a compiled artifact on disk.
    pub loaded_from_disk: u64,
    /// Loads answered from memory.
    pub reused: u64,
    /// Artifacts found on disk but not loaded, because the ledger had no digest for them or
    /// their bytes did not match it (planted, changed, or written by another process); each
    /// was compiled again and overwritten, and is counted in `compiled` too.
    pub untrusted_artifacts: u64,
}

pub(crate) struct ModuleCache {
    engine: Engine,
    linkers: Arc<Linkers>,
    artifact_dir: PathBuf,
    /// Ties artifacts to this engine's settings and wasmtime version: an artifact made by
    /// another is never loaded (and would be refused by wasmtime anyway).
    compatibility: String,
    /// One cell per digest, so concurrent loads of one module compile it once.
    modules: Mutex<HashMap<Digest, Arc<OnceCell<JobModule>>>>,
    compile_slots: Arc<Semaphore>,
    limits: CompileLimits,
    /// The digests of the artifacts this cache wrote: the only ones it loads.
    ledger: Arc<dyn ArtifactLedger>,
    compiled: Arc<AtomicU64>,
    compile_nanos: Arc<AtomicU64>,
    loaded_from_disk: Arc<AtomicU64>,
    reused: AtomicU64,
    untrusted_artifacts: Arc<AtomicU64>,
}

/// What one compilation may cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompileLimits {
    pub(crate) max_functions: u32,
    pub(crate) max_time: Duration,
}

impl ModuleCache {
    pub(crate) fn new(
        engine: Engine,
        linkers: Arc<Linkers>,
        artifact_dir: PathBuf,
        max_concurrent_compiles: usize,
        limits: CompileLimits,
        ledger: Arc<dyn ArtifactLedger>,
    ) -> Self {
        let compatibility = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        };
        Self {
            engine,
            linkers,
            artifact_dir,
            compatibility,
            modules: Mutex::new(HashMap::new()),
            compile_slots: Arc::new(Semaphore::new(max_concurrent_compiles)),
            limits,
            ledger,
            compiled: Arc::default(),
            compile_nanos: Arc::default(),
            loaded_from_disk: Arc::default(),
            reused: AtomicU64::new(0),
            untrusted_artifacts: Arc::default(),
        }
    }

    /// Time spent compiling modules (Cranelift, not an artifact's read or write).
    pub(crate) fn compile_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.compile_nanos.load(Ordering::Relaxed))
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            loaded_from_disk: self.loaded_from_disk.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            untrusted_artifacts: self.untrusted_artifacts.load(Ordering::Relaxed),
        }
    }

    pub(crate) async fn load(&self, bytes: Arc<[u8]>) -> Result<JobModule, LoadError> {
        let digest = Digest::of(&bytes);
        let cell = self
            .modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(digest)
            .or_default()
            .clone();
        if let Some(module) = cell.get() {
            self.reused.fetch_add(1, Ordering::Relaxed);
            return Ok(module.clone());
        }
        let loaded = cell
            .get_or_try_init(|| self.load_uncached(digest, bytes))
            .await
            .cloned();
        if loaded.is_err() {
            // Keep no entry for bytes that do not load; a map of failures would only grow.
            let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            if modules.get(&digest).is_some_and(|c| c.get().is_none()) {
                modules.remove(&digest);
            }
        }
        loaded
    }

    /// Forgets module `digest`: its loaded form, and its compiled artifacts on disk (of any
    /// engine, since a removed module is compiled by none again) with their ledger entries.
    /// Blocking (it lists and removes files); a load of the digest under way may still finish
    /// and save an artifact, which is then an orphan costing disk only.
    pub(crate) fn forget(&self, digest: Digest) {
        self.modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&digest);
        let prefix = format!("{}-", digest.hex());
        let Ok(entries) = std::fs::read_dir(&self.artifact_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(&prefix) && name.ends_with(".cwasm") {
                let _ = std::fs::remove_file(entry.path());
                self.ledger.forget(name);
            }
        }
    }

    async fn load_uncached(
        &self,
        digest: Digest,
        bytes: Arc<[u8]>,
    ) -> Result<JobModule, LoadError> {
        let kind = detect_kind(digest, &bytes)?;
        let slot = self
            .compile_slots
            .clone()
            .acquire_owned()
            .await
            .expect("the compile semaphore is never closed");
        let abandoned = Arc::new(AtomicBool::new(false));
        let (compiling, compile_started) = tokio::sync::oneshot::channel();
        let name = format!("{}-{}.cwasm", digest.hex(), self.compatibility);
        let job = Artifact {
            engine: self.engine.clone(),
            linkers: self.linkers.clone(),
            path: self.artifact_dir.join(&name),
            name,
            ledger: self.ledger.clone(),
            digest,
            kind,
            max_functions: self.limits.max_functions,
            abandoned: abandoned.clone(),
            compiling: std::sync::Mutex::new(Some(compiling)),
            compiled: self.compiled.clone(),
            compile_nanos: self.compile_nanos.clone(),
            loaded_from_disk: self.loaded_from_disk.clone(),
            untrusted_artifacts: self.untrusted_artifacts.clone(),
        };
        // Cranelift and file I/O block; they run on tokio's blocking pool. The slot goes with
        // the work, not with this future: an abandoned compile keeps it until it really ends.
        let mut work = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            job.load(&bytes)
        });
        // Whether it compiles is only known on the blocking thread, once the artifact has been
        // read and checked against the ledger: the deadline starts when it says so (or at once,
        // if it ended without compiling). Loading a trusted artifact has no deadline, as before.
        tokio::select! {
            biased;
            done = &mut work => {
                return done.map_err(|e| LoadError::Internal {
                    digest,
                    reason: e.to_string(),
                })?;
            }
            _ = compile_started => {}
        }
        match tokio::time::timeout(self.limits.max_time, work).await {
            Ok(done) => done.map_err(|e| LoadError::Internal {
                digest,
                reason: e.to_string(),
            })?,
            Err(_elapsed) => {
                abandoned.store(true, Ordering::Relaxed);
                tracing::warn!(%digest, limit = ?self.limits.max_time, "compilation abandoned");
                Err(LoadError::CompileTimeLimit {
                    digest,
                    limit: self.limits.max_time,
                })
            }
        }
    }
}

/// The artifact at `path` if it is exactly the one `expected` describes: `None` if there is
/// none, the reason if the file there is another. Never reads more than `expected.len` bytes,
/// and never a link, FIFO or device planted in its place.
fn read_artifact(path: &Path, expected: ArtifactDigest) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read as _;
    let (file, len) = match crate::private_files::open_regular(path) {
        Ok(opened) => opened,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("it cannot be opened as a regular file: {e}")),
    };
    if len != expected.len {
        return Err(format!(
            "it is {len} bytes long; the one written was {} bytes",
            expected.len
        ));
    }
    let mut artifact = Vec::with_capacity(len as usize);
    file.take(len)
        .read_to_end(&mut artifact)
        .map_err(|e| format!("it cannot be read: {e}"))?;
    if ArtifactDigest::of(&artifact) != expected {
        return Err("its bytes differ from the ones recorded when it was written".into());
    }
    Ok(Some(artifact))
}

/// Tells a core module from a component by the version field of the header.
fn detect_kind(digest: Digest, bytes: &[u8]) -> Result<ModuleKind, LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE: [u8; 4] = [1, 0, 0, 0];
    const COMPONENT: [u8; 4] = [0x0d, 0, 1, 0];
    match (bytes.get(..4), bytes.get(4..8)) {
        (Some(MAGIC), Some(v)) if v == CORE => Ok(ModuleKind::Preview1),
        (Some(MAGIC), Some(v)) if v == COMPONENT => Ok(ModuleKind::Preview2),
        (Some(MAGIC), Some(v)) => Err(LoadError::NotWasm {
            digest,
            found: format!("the wasm magic with an unknown version {v:02x?}"),
        }),
        _ => Err(LoadError::NotWasm {
            digest,
            found: format!(
                "{} bytes starting {:02x?}",
                bytes.len(),
                &bytes[..bytes.len().min(8)]
            ),
        }),
    }
}

/// The functions `bytes` defines, in all its core modules; stops counting (with an error) past
/// `limit`, before reading any function body. Bytes that do not parse are left for the
/// compiler, whose message says what is wrong and where.
fn check_functions(digest: Digest, bytes: &[u8], limit: u32) -> Result<(), LoadError> {
    use wasmtime::wasmparser::{Parser, Payload};
    let mut functions = 0u64;
    // `parse_all` also walks the core modules nested in a component.
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { return Ok(()) };
        if let Payload::CodeSectionStart { count, .. } = payload {
            functions += u64::from(count);
            if functions > u64::from(limit) {
                return Err(LoadError::TooManyFunctions {
                    digest,
                    functions,
                    limit,
                });
            }
        }
    }
    Ok(())
}

/// One module's trip from bytes (or disk) to a linked `InstancePre`, on a blocking thread.
struct Artifact {
    engine: Engine,
    linkers: Arc<Linkers>,
    path: PathBuf,
    /// The file name under the artifact directory: the artifact's name in the ledger.
    name: String,
    ledger: Arc<dyn ArtifactLedger>,
    digest: Digest,
    kind: ModuleKind,
    max_functions: u32,
    /// Set when the caller stopped waiting: the result is unwanted, and saving it would let the
    /// next load of these bytes skip the limit that refused them.
    abandoned: Arc<AtomicBool>,
    /// Told when compiling starts (no good artifact): the compile deadline runs from then, so
    /// that loading a trusted artifact, hashing it included, is never cut short by it.
    compiling: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    compiled: Arc<AtomicU64>,
    compile_nanos: Arc<AtomicU64>,
    loaded_from_disk: Arc<AtomicU64>,
    untrusted_artifacts: Arc<AtomicU64>,
}

impl Artifact {
    fn load(self, bytes: &[u8]) -> Result<JobModule, LoadError> {
        let (pre, opens_paths) = match self.kind {
            ModuleKind::Preview1 => {
                let module = self.obtain(
                    bytes,
                    // Safety: see `trusted_artifact`, the only source of these bytes.
                    |engine, artifact| unsafe { wasmtime::Module::deserialize(engine, artifact) },
                    |engine, bytes| wasmtime::Module::new(engine, bytes),
                    wasmtime::Module::serialize,
                )?;
                (self.link_core(&module)?, core_opens_paths(&module))
            }
            ModuleKind::Preview2 => {
                let component = self.obtain(
                    bytes,
                    // Safety: see `trusted_artifact`, the only source of these bytes.
                    |engine, artifact| unsafe { Component::deserialize(engine, artifact) },
                    |engine, bytes| Component::new(engine, bytes),
                    Component::serialize,
                )?;
                let opens_paths = component_opens_paths(&component, component.engine());
                (self.link_component(&component)?, opens_paths)
            }
        };
        Ok(JobModule(Arc::new(Loaded {
            digest: self.digest,
            pre,
            opens_paths,
        })))
    }

    /// The compiled module: from its artifact if there is a good one, else compiled and saved.
    fn obtain<M>(
        &self,
        bytes: &[u8],
        deserialize: impl Fn(&Engine, &[u8]) -> wasmtime::Result<M>,
        compile: impl Fn(&Engine, &[u8]) -> wasmtime::Result<M>,
        serialize: impl Fn(&M) -> wasmtime::Result<Vec<u8>>,
    ) -> Result<M, LoadError> {
        if let Some(artifact) = self.trusted_artifact() {
            match deserialize(&self.engine, &artifact) {
                Ok(module) => {
                    self.loaded_from_disk.fetch_add(1, Ordering::Relaxed);
                    return Ok(module);
                }
                Err(e) => tracing::warn!(
                    artifact = %self.path.display(),
                    "compiled artifact unusable, compiling again: {e:#}"
                ),
            }
        }
        if let Some(compiling) = self
            .compiling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = compiling.send(());
        }
        check_functions(self.digest, bytes, self.max_functions)?;
        let started = std::time::Instant::now();
        let module = compile(&self.engine, bytes).map_err(|e| LoadError::Invalid {
            digest: self.digest,
            reason: format!("{e:#}"),
        })?;
        self.compile_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.compiled.fetch_add(1, Ordering::Relaxed);
        if self.abandoned.load(Ordering::Relaxed) {
            return Err(LoadError::Internal {
                digest: self.digest,
                reason: "compilation finished after it was abandoned".into(),
            });
        }
        match serialize(&module) {
            Ok(artifact) => self.save(&artifact),
            Err(e) => tracing::warn!(digest = %self.digest, "could not serialize module: {e:#}"),
        }
        Ok(module)
    }

    /// The artifact's bytes, if there is one on disk and they hash to the digest the ledger
    /// recorded for it; else `None`, with a warning when a file was there but is not trusted.
    ///
    /// Safety of deserializing what this returns: the bytes are read once, into memory, and
    /// the very bytes that were hashed are the ones handed to wasmtime, so a file changed after
    /// the check changes nothing. They are the bytes `save` wrote from this engine's own
    /// `serialize` (no one else writes the ledger), named by this engine's compatibility hash,
    /// and wasmtime still checks their header and refuses an incompatible one.
    fn trusted_artifact(&self) -> Option<Vec<u8>> {
        let why = match self.ledger.expected(&self.name) {
            // Not read at all: nothing could make it trusted.
            None if self.path.symlink_metadata().is_ok() => {
                "no digest was recorded for it (written by another process, or planted)".into()
            }
            None => return None,
            Some(expected) => match read_artifact(&self.path, expected) {
                Ok(Some(artifact)) => return Some(artifact),
                Ok(None) => return None,
                Err(why) => why,
            },
        };
        self.untrusted_artifacts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            artifact = %self.path.display(),
            "compiled artifact not loaded, compiling again and replacing it: {why}"
        );
        None
    }

    /// Writes the artifact whole or not at all (a new private file, then a rename), so a crash
    /// never leaves a half-written one to be loaded later, then records its digest. Failing to
    /// save or record only costs a recompile; so does a crash between the two, or a ledger
    /// entry that is durable before the file's bytes are, since the bytes are checked on load.
    fn save(&self, artifact: &[u8]) {
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let result = crate::private_files::write_new(&tmp, artifact)
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        match result {
            Ok(()) => self.ledger.record(&self.name, ArtifactDigest::of(artifact)),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(
                    artifact = %self.path.display(),
                    "could not save compiled module: {e}"
                );
            }
        }
    }

    fn link_core(&self, module: &wasmtime::Module) -> Result<Pre, LoadError> {
        match module.get_export("_start") {
            Some(wasmtime::ExternType::Func(ty))
                if ty.params().len() == 0 && ty.results().len() == 0 => {}
            _ => {
                return Err(LoadError::NotCommand {
                    digest: self.digest,
                    reason: "it exports no `_start` function taking and returning nothing \
                             (was it built as a library or reactor?)"
                        .into(),
                });
            }
        }
        let pre = self
            .linkers
            .core
            .instantiate_pre(module)
            .map_err(|e| LoadError::Link {
                digest: self.digest,
                reason: format!("{e:#}"),
            })?;
        Ok(Pre::Core(pre))
    }

    fn link_component(&self, component: &Component) -> Result<Pre, LoadError> {
        let pre = self
            .linkers
            .component
            .instantiate_pre(component)
            .map_err(|e| LoadError::Link {
                digest: self.digest,
                reason: format!("{e:#}"),
            })?;
        let command = CommandPre::new(pre).map_err(|e| LoadError::NotCommand {
            digest: self.digest,
            reason: format!("it does not export `wasi:cli/run`: {e:#}"),
        })?;
        Ok(Pre::Component(command))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_print_and_parse_as_sha256_hex() {
        let digest = Digest::of(b"abc");
        let text = digest.to_string();
        assert_eq!(
            text,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::parse(&text), Some(digest));
        assert_eq!(Digest::parse("sha256:xyz"), None);
        assert_eq!(Digest::parse(&digest.hex()), None);
    }

    #[test]
    fn functions_are_counted_before_any_is_compiled() {
        let three = wat::parse_str("(module (func) (func) (func))").unwrap();
        let d = Digest::of(&three);
        assert!(check_functions(d, &three, 3).is_ok());
        let error = check_functions(d, &three, 2).unwrap_err().to_string();
        assert!(
            error.contains("defines 3 functions; the limit is 2"),
            "{error}"
        );
        // Bytes that do not parse are the compiler's to describe; a count already declared
        // before the damage still counts.
        let truncated = &three[..three.len() - 2];
        assert!(check_functions(d, truncated, 3).is_ok());
        assert!(check_functions(d, truncated, 2).is_err());
    }

    #[test]
    fn kinds_are_told_apart_by_the_header() {
        let d = Digest::of(b"");
        assert_eq!(
            detect_kind(d, b"\0asm\x01\0\0\0").unwrap(),
            ModuleKind::Preview1
        );
        assert_eq!(
            detect_kind(d, b"\0asm\x0d\0\x01\0").unwrap(),
            ModuleKind::Preview2
        );
        let error = detect_kind(d, b"#!/bin/sh\n").unwrap_err().to_string();
        assert!(error.contains("is not WebAssembly"), "{error}");
        assert!(error.contains("23, 21, 2f"), "{error}");
        let error = detect_kind(d, b"\0asm\x02\0\0\0").unwrap_err().to_string();
        assert!(error.contains("unknown version"), "{error}");
    }
}
