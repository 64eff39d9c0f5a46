//! Which compiled artifacts may be loaded: the [`ArtifactLedger`] holds the sha256 and length of
//! every artifact this executor (or whoever keeps the ledger for it) wrote, and the module cache
//! loads an artifact only if it is a regular file of that length whose bytes hash to that digest.
//!
//! Loading an artifact is wasmtime's `unsafe` `deserialize`: its bytes become native code in
//! this process, so a file planted or changed under `<data_dir>/compiled` (by a guest that got
//! out through a volume, by another local user) would run as the server. The artifact directory
//! is therefore not trusted; the ledger is, because it lives elsewhere (in memory, or in the
//! service's database) and is written only by the cache right after it compiled.

use std::collections::HashMap;
use std::sync::Mutex;

/// What a ledger knows of one artifact it vouches for: enough to refuse any other file before
/// reading it (its length) and after (its sha256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArtifactDigest {
    /// The sha256 of the artifact's bytes.
    pub sha256: [u8; 32],
    /// Its length in bytes. Checked before reading, so a planted file (say, a sparse terabyte)
    /// is never read into memory.
    pub len: u64,
}

impl ArtifactDigest {
    /// The digest of `artifact`.
    pub fn of(artifact: &[u8]) -> Self {
        use sha2::Digest as _;
        Self {
            sha256: sha2::Sha256::digest(artifact).into(),
            len: artifact.len() as u64,
        }
    }
}

/// The digests of the compiled artifacts that may be loaded, by artifact name (the file name
/// under `<data_dir>/compiled`, `<module sha256>-<engine hash>.cwasm`).
///
/// An artifact with no digest here, or whose bytes hash to another, is compiled again from its
/// module and overwritten; nothing worse than a recompile follows from a ledger that forgets.
/// Both methods are called on blocking threads (never on an async worker) and must not wait
/// long: `record` should hand its write on rather than wait for it to be durable.
pub trait ArtifactLedger: Send + Sync + 'static {
    /// The digest recorded for `artifact`, if any.
    fn expected(&self, artifact: &str) -> Option<ArtifactDigest>;
    /// Records that `artifact`, just written, has `digest`.
    fn record(&self, artifact: &str, digest: ArtifactDigest);
    /// Forgets `artifact`, whose file was removed with its module: a digest kept for a file
    /// that is gone vouches for nothing and only grows the ledger.
    fn forget(&self, artifact: &str);
}

/// A ledger kept in memory only: the default of a standalone [`Executor`](super::Executor)
/// (`wasmbatch run`, tests, embedders).
///
/// It starts empty, so artifacts written by another process, or by this one before a restart,
/// are not trusted: each module is compiled once per process and its artifact overwritten. That
/// is the price of trusting nothing on disk without a durable place to keep digests; share one
/// ledger between executors (`Executor::with_ledger`) or keep one durably (as `Batch` does, in
/// its database) to reuse artifacts across restarts.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    digests: Mutex<HashMap<String, ArtifactDigest>>,
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }
}

impl FromIterator<(String, ArtifactDigest)> for MemoryLedger {
    fn from_iter<I: IntoIterator<Item = (String, ArtifactDigest)>>(digests: I) -> Self {
        Self {
            digests: Mutex::new(digests.into_iter().collect()),
        }
    }
}

impl ArtifactLedger for MemoryLedger {
    fn expected(&self, artifact: &str) -> Option<ArtifactDigest> {
        self.digests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(artifact)
            .copied()
    }

    fn record(&self, artifact: &str, digest: ArtifactDigest) {
        self.digests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(artifact.to_string(), digest);
    }

    fn forget(&self, artifact: &str) {
        self.digests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(artifact);
    }
}
