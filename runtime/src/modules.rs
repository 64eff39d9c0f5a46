//! The module store, our ECR: module bytes by content (`<data_dir>/modules/<sha256>.wasm`) and
//! names with tags pointing at them (in redb). A job names its module as `name:tag`, `name`
//! (`name:latest`, which a push without a tag moves) or `name@sha256:<hex>` (pinned).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
#[cfg(feature = "registry")]
use std::{sync::Arc, time::Instant};

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
    /// For a module pulled from a registry (named `host/repository`): each manifest digest
    /// pulled → the digest of its module, so a pinned image is not pulled twice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub manifests: BTreeMap<String, String>,
}

/// What a job's `image` resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The module's bytes.
    pub(crate) module: Digest,
    /// What `<image name>@<digest>` would pin: the module's digest, or a registry image's
    /// manifest's.
    pub(crate) image: Digest,
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
    #[cfg(feature = "registry")]
    registries: crate::registry::Registries,
    /// The last resolution of each registry reference, and a lock so that the jobs placed at
    /// once (an array's children) share one pull instead of each asking the registry.
    #[cfg(feature = "registry")]
    pulls: Mutex<std::collections::HashMap<String, PullSlot>>,
    /// Pulled modules dropped by [`drop_old_pulls`], for the scheduler to forget.
    #[cfg(feature = "registry")]
    evicted: Mutex<Vec<Digest>>,
}

/// Most versions of one registry repository kept (those a tag points at always are): a pulled
/// module can be pulled again, and a tag that moves on every push must not fill the disk.
#[cfg(feature = "registry")]
pub(crate) const MAX_PULLED_VERSIONS: usize = 8;

/// Drops the oldest versions of pulled module `info` past [`MAX_PULLED_VERSIONS`] that no tag
/// points at, with their manifests, but never `keep` (the one a job is about to run); returns
/// their digests.
#[cfg(feature = "registry")]
fn drop_old_pulls(info: &mut ModuleInfo, keep: &str) -> Vec<String> {
    let mut dropped = Vec::new();
    while info.history.len() > MAX_PULLED_VERSIONS {
        let Some(at) = info
            .history
            .iter()
            .position(|d| d != keep && !info.tags.values().any(|t| t == d))
        else {
            break;
        };
        let digest = info.history.remove(at);
        info.manifests.retain(|_, d| *d != digest);
        dropped.push(digest);
    }
    dropped
}

/// One registry reference's last resolution, behind the lock its pulls take in turn.
#[cfg(feature = "registry")]
type PullSlot = Arc<tokio::sync::Mutex<Option<(Instant, Resolved)>>>;

/// How long a registry's answer for a tag stands for the jobs placed after it: a tag is
/// resolved when its job is placed, and jobs placed together see one answer.
#[cfg(feature = "registry")]
const PULL_REUSE: std::time::Duration = std::time::Duration::from_secs(1);

impl ModuleStore {
    /// Blocking: reads the names from the store. Registry settings are read from `data_dir`.
    pub(crate) fn open(dir: PathBuf, data_dir: &Path, store: Store) -> Result<Self, StoreError> {
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
        #[cfg(not(feature = "registry"))]
        let _ = data_dir;
        Ok(Self {
            dir,
            store,
            names: Mutex::new(names),
            #[cfg(feature = "registry")]
            registries: crate::registry::Registries::new(data_dir.to_path_buf()),
            #[cfg(feature = "registry")]
            pulls: Mutex::new(std::collections::HashMap::new()),
            #[cfg(feature = "registry")]
            evicted: Mutex::new(Vec::new()),
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
            let manifests = names
                .get(name)
                .map(|m| m.manifests.clone())
                .unwrap_or_default();
            let info = ModuleInfo {
                name: name.to_string(),
                digest,
                size,
                pushed_at: now,
                tags,
                history,
                manifests,
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
        // Awaited: once the name is gone, so are its files.
        let _ = tokio::task::spawn_blocking(move || {
            for path in orphans {
                let _ = std::fs::remove_file(path);
            }
        })
        .await;
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

    /// The module a job's `image` names, or why it names none: from the module store, or
    /// pulled from its registry (see [`crate::registry`]) and kept here.
    pub(crate) async fn resolve_image(
        &self,
        image: &str,
        max_bytes: u64,
    ) -> Result<Resolved, String> {
        match ImageRef::parse(image).map_err(|e| format!("image {image:?}: {e}"))? {
            ImageRef::Local(local) => self.resolve(&local).map(|digest| Resolved {
                module: digest,
                image: digest,
            }),
            #[cfg(feature = "registry")]
            ImageRef::Registry(remote) => self.pull(&remote, max_bytes).await,
            #[cfg(not(feature = "registry"))]
            ImageRef::Registry(remote) => {
                let _ = max_bytes;
                Err(format!(
                    "{remote}: this build cannot pull from registries (the runtime's `registry` \
                     feature is off)"
                ))
            }
        }
    }

    /// `image` from its registry, or from here when a pull of the same manifest is kept.
    #[cfg(feature = "registry")]
    async fn pull(
        &self,
        image: &crate::model::image::RegistryRef,
        max_bytes: u64,
    ) -> Result<Resolved, String> {
        let name = image.name();
        // Pinned, and pulled before: nothing to ask the registry.
        if let Some(pinned) = &image.digest
            && let Some(resolved) = self.pulled(&name, pinned)
        {
            return Ok(resolved);
        }
        let slot = {
            let mut pulls = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
            if pulls.len() > 1024 {
                pulls.retain(|_, slot| Arc::strong_count(slot) > 1);
            }
            pulls.entry(image.to_string()).or_default().clone()
        };
        let mut last = slot.lock().await;
        // Unless the module was let go since (see `drop_old_pulls`).
        if let Some((at, resolved)) = *last
            && at.elapsed() < PULL_REUSE
            && self.path(&resolved.module).exists()
        {
            return Ok(resolved);
        }
        let manifest = self.registries.manifest(image, max_bytes).await?;
        // The tag this pull moves: the one named, `latest` when none is, none when pinned.
        let tag = image.tag.as_deref().or(image
            .digest
            .is_none()
            .then_some(crate::model::image::DEFAULT_TAG));
        let resolved = match self.pulled(&name, &manifest.digest) {
            Some(resolved) => {
                self.note_pull(&name, tag, &manifest.digest, resolved.module, None)
                    .await
                    .map_err(|e| e.to_string())?;
                resolved
            }
            None => {
                let bytes = self.registries.layer(image, &manifest, max_bytes).await?;
                let module = Digest::of(&bytes);
                let path = self.path(&module);
                let size = bytes.len() as u64;
                tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("{image}: saving the module: {e}"))?;
                self.note_pull(&name, tag, &manifest.digest, module, Some(size))
                    .await
                    .map_err(|e| e.to_string())?;
                Resolved {
                    module,
                    image: Digest::parse(&manifest.digest)
                        .ok_or_else(|| format!("{image}: the registry's digest is not sha256"))?,
                }
            }
        };
        *last = Some((Instant::now(), resolved));
        Ok(resolved)
    }

    /// The module kept for manifest `manifest` of registry name `name`, if its file is here.
    #[cfg(feature = "registry")]
    fn pulled(&self, name: &str, manifest: &str) -> Option<Resolved> {
        let module = self
            .get(name)?
            .manifests
            .get(manifest)
            .and_then(|d| Digest::parse(d))?;
        let image = Digest::parse(manifest)?;
        self.path(&module)
            .exists()
            .then_some(Resolved { module, image })
    }

    /// Records a pull of `name` (durably): the manifest and its module, and the tag it was
    /// pulled by. `size` is given for a new module; a known one changes only the tag.
    #[cfg(feature = "registry")]
    async fn note_pull(
        &self,
        name: &str,
        tag: Option<&str>,
        manifest: &str,
        module: Digest,
        size: Option<u64>,
    ) -> Result<(), StoreError> {
        let (committed, orphans) = {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            let mut info = names.get(name).cloned().unwrap_or_else(|| ModuleInfo {
                name: name.to_string(),
                digest: module.to_string(),
                size: size.unwrap_or_default(),
                pushed_at: crate::batch::now(),
                tags: BTreeMap::new(),
                history: Vec::new(),
                manifests: BTreeMap::new(),
            });
            let digest = module.to_string();
            let before = info.clone();
            if let Some(size) = size {
                info.digest = digest.clone();
                info.size = size;
                info.pushed_at = crate::batch::now();
            }
            if let Some(tag) = tag {
                info.tags.insert(tag.to_string(), digest.clone());
            }
            if !info.history.contains(&digest) {
                info.history.push(digest.clone());
            }
            let dropped = drop_old_pulls(&mut info, &digest);
            info.manifests.insert(manifest.to_string(), digest);
            if before == info && names.contains_key(name) {
                return Ok(());
            }
            self.store.writable()?;
            let committed = self
                .store
                .send(vec![Record::put(Table::Modules, name, &info)]);
            names.insert(name.to_string(), info);
            let orphans: Vec<Digest> = dropped
                .iter()
                .filter(|d| !names.values().any(|m| m.history.contains(d)))
                .filter_map(|d| Digest::parse(d))
                .collect();
            (committed, orphans)
        };
        committed.await?;
        let paths: Vec<PathBuf> = orphans.iter().map(|d| self.path(d)).collect();
        if !paths.is_empty() {
            let _ = tokio::task::spawn_blocking(move || {
                for path in paths {
                    let _ = std::fs::remove_file(path);
                }
            })
            .await;
        }
        self.evicted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(orphans);
        Ok(())
    }

    /// The pulled modules dropped since the last call, whose compiled forms may go too.
    #[cfg(feature = "registry")]
    pub(crate) fn take_evicted(&self) -> Vec<Digest> {
        std::mem::take(&mut *self.evicted.lock().unwrap_or_else(|e| e.into_inner()))
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
