//! The module store, our ECR: module bytes by content (`<data_dir>/modules/<sha256>.wasm`) and
//! names pointing at the latest push of each (in redb). A job names its module as `name` (the
//! latest push) or `name@sha256:<hex>` (pinned).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::engine::Digest;
use crate::model::EpochMillis;
use crate::store::{Record, Store, StoreError, Table};

/// A named module as pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleInfo {
    /// The name jobs use.
    pub name: String,
    /// `sha256:<hex>` of the latest push.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// When it was pushed.
    pub pushed_at: EpochMillis,
    /// Every digest ever pushed under this name, oldest first (pinned references use them).
    #[serde(default)]
    pub history: Vec<String>,
}

pub(crate) struct ModuleStore {
    dir: PathBuf,
    store: Store,
    names: Mutex<BTreeMap<String, ModuleInfo>>,
}

impl ModuleStore {
    /// Blocking: reads the names from the store.
    pub(crate) fn open(dir: PathBuf, store: Store) -> Result<Self, StoreError> {
        crate::private_files::create_dir_all(&dir)
            .and_then(|()| crate::private_files::tighten(&dir).map(drop))
            .map_err(|e| StoreError::Open {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
        remove_leftovers(&dir);
        let names = store
            .load::<ModuleInfo>(Table::Modules)?
            .into_iter()
            .collect();
        Ok(Self {
            dir,
            store,
            names: Mutex::new(names),
        })
    }

    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}.wasm", digest.hex()))
    }

    /// A new file name for an upload in progress. Uploads are staged beside the modules so
    /// that adopting one is a rename; a crash leaves `.part` files, which `open` removes.
    pub(crate) fn staging_path(&self) -> PathBuf {
        self.dir
            .join(format!("upload-{}.{PART}", uuid::Uuid::new_v4().simple()))
    }

    /// Saves `bytes` (already validated by the caller) under `name`. The file is written whole
    /// before the name points at it.
    pub(crate) async fn push(
        &self,
        name: &str,
        bytes: Vec<u8>,
        now: EpochMillis,
    ) -> Result<ModuleInfo, StoreError> {
        let digest = Digest::of(&bytes);
        let path = self.path(&digest);
        let size = bytes.len() as u64;
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| StoreError::Write(e.to_string()))?
            .map_err(|e| StoreError::Write(format!("saving module {digest}: {e}")))?;
        self.point(name, digest, size, now).await
    }

    /// Makes the staged upload at `staged` (synced, validated, of digest `digest`) the module
    /// `name`.
    pub(crate) async fn adopt(
        &self,
        name: &str,
        staged: PathBuf,
        digest: Digest,
        size: u64,
        now: EpochMillis,
    ) -> Result<ModuleInfo, StoreError> {
        let path = self.path(&digest);
        tokio::task::spawn_blocking(move || {
            if path.exists() {
                std::fs::remove_file(&staged)
            } else {
                std::fs::rename(&staged, &path)
            }
        })
        .await
        .map_err(|e| StoreError::Write(e.to_string()))?
        .map_err(|e| StoreError::Write(format!("saving module {digest}: {e}")))?;
        self.point(name, digest, size, now).await
    }

    /// Points `name` at the stored module `digest`, durably.
    async fn point(
        &self,
        name: &str,
        digest: Digest,
        size: u64,
        now: EpochMillis,
    ) -> Result<ModuleInfo, StoreError> {
        // Changed and sent under the names' lock, committed after it: two pushes of one name
        // reach the store in the order they changed the history, and neither undoes the other.
        let (info, committed) = {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            let mut history = names
                .get(name)
                .map(|m| m.history.clone())
                .unwrap_or_default();
            let digest = digest.to_string();
            history.retain(|d| *d != digest);
            history.push(digest.clone());
            let info = ModuleInfo {
                name: name.to_string(),
                digest,
                size,
                pushed_at: now,
                history,
            };
            self.store.writable()?;
            let committed = self
                .store
                .send(vec![Record::put(Table::Modules, name, &info)]);
            names.insert(name.to_string(), info.clone());
            (info, committed)
        };
        committed.await?;
        Ok(info)
    }

    pub(crate) fn list(&self) -> Vec<ModuleInfo> {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<ModuleInfo> {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Removes the name, and the files of its digests that no other name uses.
    pub(crate) async fn delete(&self, name: &str) -> Result<Option<ModuleInfo>, StoreError> {
        let (info, orphans, committed) = {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            let Some(info) = names.get(name).cloned() else {
                return Ok(None);
            };
            self.store.writable()?;
            let committed = self.store.send(vec![Record::Delete {
                table: Table::Modules,
                key: name.to_string(),
            }]);
            names.remove(name);
            let orphans: Vec<PathBuf> = info
                .history
                .iter()
                .filter(|d| !names.values().any(|m| m.history.contains(d)))
                .filter_map(|d| Digest::parse(d))
                .map(|d| self.path(&d))
                .collect();
            (info, orphans, committed)
        };
        committed.await?;
        tokio::task::spawn_blocking(move || {
            for path in orphans {
                let _ = std::fs::remove_file(path);
            }
        });
        Ok(Some(info))
    }

    /// Removes version `digest` from `name`'s history, sent to the store under the names' lock
    /// (see [`ModuleStore::point`]); the caller awaits the commit. The latest push of any name
    /// is refused: a name pointing at a removed file would fail every job that uses it.
    pub(crate) fn remove_version(
        &self,
        name: &str,
        digest: Digest,
    ) -> Result<VersionRemoval<impl Future<Output = Result<(), StoreError>> + use<>>, StoreError>
    {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let wanted = digest.to_string();
        let Some(info) = names.get(name).filter(|m| m.history.contains(&wanted)) else {
            return Ok(VersionRemoval::Unknown);
        };
        if let Some(latest) = names.values().find(|m| m.digest == wanted) {
            return Ok(VersionRemoval::Latest(latest.name.clone()));
        }
        let mut info = info.clone();
        info.history.retain(|d| *d != wanted);
        self.store.writable()?;
        let committed = self
            .store
            .send(vec![Record::put(Table::Modules, name, &info)]);
        names.insert(name.to_string(), info);
        let orphaned = !names.values().any(|m| m.history.contains(&wanted));
        Ok(VersionRemoval::Removed {
            orphaned,
            committed,
        })
    }

    /// The digest a job's `image` refers to, or why it refers to nothing.
    pub(crate) fn resolve(&self, image: &str) -> Result<Digest, String> {
        match image.split_once('@') {
            Some((name, pinned)) => {
                let digest = Digest::parse(pinned).ok_or_else(|| {
                    format!("module reference {image:?}: expected name@sha256:<64 hex digits>")
                })?;
                if self.path(&digest).exists() {
                    Ok(digest)
                } else {
                    Err(format!(
                        "module {name}@{digest} was not found in the module store"
                    ))
                }
            }
            None => {
                let info = self
                    .get(image)
                    .ok_or_else(|| format!("module {image:?} was not found in the module store"))?;
                Digest::parse(&info.digest)
                    .ok_or_else(|| format!("module {image:?} has a damaged record"))
            }
        }
    }
}

/// What [`ModuleStore::remove_version`] did.
pub(crate) enum VersionRemoval<F> {
    /// The name has no such version.
    Unknown,
    /// The version is the latest push of the module named here; nothing was changed.
    Latest(String),
    /// Removed from the name's history; `orphaned` when no name has it any more (its file
    /// may go once `committed` resolves).
    Removed { orphaned: bool, committed: F },
}

/// The extension of an upload in progress.
const PART: &str = "part";

/// Removes what a crashed process left half-written: staged uploads and temporary files.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let unfinished = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == PART || e.starts_with("tmp"));
        if unfinished {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = crate::private_files::create_new(&tmp)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
