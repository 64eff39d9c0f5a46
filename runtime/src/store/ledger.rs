//! The compiled-artifact ledger of a [`Batch`](crate::Batch), kept in the store: the engine's
//! [`ArtifactLedger`] over the `compiled_artifacts` table, so the artifacts a service compiled
//! are loaded again after a restart, and nothing else in `<data_dir>/compiled` is.

use serde::{Deserialize, Serialize};

use crate::engine::{ArtifactDigest, ArtifactLedger, MemoryLedger};

use super::{Record, Store, StoreError, Table};

/// A row of `compiled_artifacts`, keyed by the artifact's file name.
#[derive(Debug, Serialize, Deserialize)]
struct StoredDigest {
    /// `sha256:<64 hex digits>`.
    sha256: String,
    /// The artifact's length.
    bytes: u64,
}

impl StoredDigest {
    fn new(digest: ArtifactDigest) -> Self {
        Self {
            sha256: format!("sha256:{}", hex::encode(digest.sha256)),
            bytes: digest.len,
        }
    }

    fn digest(&self) -> Option<ArtifactDigest> {
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(self.sha256.strip_prefix("sha256:")?, &mut sha256).ok()?;
        Some(ArtifactDigest {
            sha256,
            len: self.bytes,
        })
    }
}

/// Every digest is read into memory at open; `expected` answers from memory, and `record`
/// updates memory and queues the row for the writer thread without waiting for the commit.
/// A record lost in a crash costs one recompile, no more.
pub(crate) struct StoredLedger {
    store: Store,
    digests: MemoryLedger,
}

impl StoredLedger {
    /// Reads the recorded digests. Blocking: call it off the async workers.
    pub(crate) fn open(store: Store) -> Result<Self, StoreError> {
        let digests = store
            .load::<StoredDigest>(Table::CompiledArtifacts)?
            .into_iter()
            .filter_map(|(artifact, stored)| match stored.digest() {
                Some(digest) => Some((artifact, digest)),
                None => {
                    // Only a recompile follows from forgetting it.
                    tracing::warn!(%artifact, ?stored, "ignoring a damaged artifact digest");
                    None
                }
            })
            .collect();
        Ok(Self { store, digests })
    }
}

impl ArtifactLedger for StoredLedger {
    fn expected(&self, artifact: &str) -> Option<ArtifactDigest> {
        self.digests.expected(artifact)
    }

    fn record(&self, artifact: &str, digest: ArtifactDigest) {
        self.digests.record(artifact, digest);
        self.store.write_behind(vec![Record::put(
            Table::CompiledArtifacts,
            artifact,
            &StoredDigest::new(digest),
        )]);
    }

    fn forget(&self, artifact: &str) {
        self.digests.forget(artifact);
        self.store.write_behind(vec![Record::Delete {
            table: Table::CompiledArtifacts,
            key: artifact.to_string(),
        }]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_read_back_as_written() {
        let digest = ArtifactDigest::of(b"artifact");
        let stored: StoredDigest =
            serde_json::from_slice(&serde_json::to_vec(&StoredDigest::new(digest)).unwrap())
                .unwrap();
        assert_eq!(stored.digest(), Some(digest));
        let damaged = StoredDigest {
            sha256: "sha256:xyz".into(),
            bytes: 8,
        };
        assert_eq!(damaged.digest(), None);
    }
}
