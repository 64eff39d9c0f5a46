//! The module store, our ECR: module bytes by content (`<data_dir>/modules/<sha256>.wasm`) and
//! names with tags pointing at them (in redb). A job names its module as `name:tag`, `name`
//! (`name:latest`, which a push without a tag moves) or `name@sha256:<hex>` (pinned).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::engine::Digest;
use crate::model::EpochMillis;
use crate::model::image::{ImageRef, LocalRef};
use crate::store::{Record, Store, StoreError, Table};

/// A named module as pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleInfo {
    /// The name jobs use.
    pub name: String,
    /// `sha256:<hex>` of the latest push, whatever it was tagged.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// When it was pushed.
    pub pushed_at: EpochMillis,
    /// Tag → the `sha256:<hex>` it points at. `name` alone means tag `latest`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Every digest ever pushed under this name, oldest first (pinned references use them).
    #[serde(default)]
    pub history: Vec<String>,
}

impl ModuleInfo {
    /// The tags that point at `digest`.
    pub fn tags_of<'a>(&'a self, digest: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.tags
            .iter()
            .filter(move |(_, d)| *d == digest)
            .map(|(tag, _)| tag.as_str())
    }
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

    /// Saves `bytes` (already validated by the caller) as `name:tag`. The file is written whole
    /// before the tag points at it.
    pub(crate) async fn push(
        &self,
        name: &str,
        tag: &str,
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
        self.point(name, tag, digest, size, now).await
    }

    /// Makes the staged upload at `staged` (synced, validated, of digest `digest`) the module
    /// `name:tag`.
    pub(crate) async fn adopt(
        &self,
        name: &str,
        tag: &str,
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
        self.point(name, tag, digest, size, now).await
    }

    /// Points `name:tag` at the stored module `digest`, durably.
    async fn point(
        &self,
        name: &str,
        tag: &str,
        digest: Digest,
        size: u64,
        now: EpochMillis,
    ) -> Result<ModuleInfo, StoreError> {
        // Changed and sent under the names' lock, committed after it: two pushes of one name
        // reach the store in the order they changed the history, and neither undoes the other.
        let (info, committed) = {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            let (mut history, mut tags) = names
                .get(name)
                .map(|m| (m.history.clone(), m.tags.clone()))
                .unwrap_or_default();
            let digest = digest.to_string();
            history.retain(|d| *d != digest);
            history.push(digest.clone());
            tags.insert(tag.to_string(), digest.clone());
            let info = ModuleInfo {
                name: name.to_string(),
                digest,
                size,
                pushed_at: now,
                tags,
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
    /// (see [`ModuleStore::point`]); the caller awaits the commit. A version some tag points at,
    /// or the latest push of a name, is refused: a tag pointing at a removed file would fail
    /// every job that uses it.
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
        if let Some(user) = names.values().find_map(|m| {
            let latest =
                (m.digest == wanted).then(|| format!("the latest push of module {}", m.name));
            latest.or_else(|| {
                m.tags_of(&wanted)
                    .next()
                    .map(|tag| format!("tagged {}:{tag}", m.name))
            })
        }) {
            return Ok(VersionRemoval::InUse(user));
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

    /// Removes tag `tag` from `name`, leaving its versions (pinned references still run
    /// them); `None` when the name has no such tag.
    pub(crate) async fn untag(
        &self,
        name: &str,
        tag: &str,
    ) -> Result<Option<ModuleInfo>, StoreError> {
        let (info, committed) = {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            let Some(mut info) = names
                .get(name)
                .filter(|m| m.tags.contains_key(tag))
                .cloned()
            else {
                return Ok(None);
            };
            info.tags.remove(tag);
            self.store.writable()?;
            let committed = self
                .store
                .send(vec![Record::put(Table::Modules, name, &info)]);
            names.insert(name.to_string(), info.clone());
            (info, committed)
        };
        committed.await?;
        Ok(Some(info))
    }

    /// The module a job's `image` names, or why it names none.
    pub(crate) async fn resolve_image(&self, image: &str) -> Result<Digest, String> {
        match ImageRef::parse(image).map_err(|e| format!("image {image:?}: {e}"))? {
            ImageRef::Local(local) => self.resolve(&local),
            ImageRef::Registry(remote) => Err(format!(
                "image {remote}: pulling from a registry is not built yet"
            )),
        }
    }

    /// The digest a module-store reference names, or why it names nothing.
    pub(crate) fn resolve(&self, image: &LocalRef) -> Result<Digest, String> {
        if let Some(pinned) = &image.digest {
            let digest = Digest::parse(pinned).ok_or_else(|| {
                format!(
                    "module {}: {pinned:?} is not sha256:<64 hex digits>",
                    image.name
                )
            })?;
            return if self.path(&digest).exists() {
                Ok(digest)
            } else {
                Err(format!(
                    "module {}@{digest} was not found in the module store",
                    image.name
                ))
            };
        }
        let tag = image.tag_or_default();
        let info = self
            .get(&image.name)
            .ok_or_else(|| format!("module {:?} was not found in the module store", image.name))?;
        let digest = info.tags.get(tag).ok_or_else(|| {
            let tags: Vec<&str> = info.tags.keys().map(String::as_str).collect();
            format!(
                "module {} has no tag {tag:?}; its tags: {}",
                image.name,
                if tags.is_empty() {
                    "none".to_string()
                } else {
                    tags.join(", ")
                }
            )
        })?;
        Digest::parse(digest).ok_or_else(|| format!("module {:?} has a damaged record", image.name))
    }
}

/// What [`ModuleStore::remove_version`] did.
pub(crate) enum VersionRemoval<F> {
    /// The name has no such version.
    Unknown,
    /// A tag (`name:tag`) or the latest push of a name (`name`) is this version; nothing was
    /// changed.
    InUse(String),
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
