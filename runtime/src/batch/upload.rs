//! Modules: listing and deleting them (a name, or one version no longer needed), and pushing one, whole ([`Batch::push_module`]) or as
//! its bytes arrive ([`Batch::upload_module`]). Either way the bytes must be a runnable WASI program (they are
//! compiled, so the module's first job starts warm), are stored by content, and only then does
//! the name point at them. An upload goes to a file as it arrives, hashed on the way, so a
//! server receiving many large modules holds none of them in memory; the one whole copy is the
//! compiler's, after the last byte.

use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::{Batch, BatchError, now};
use crate::engine::Digest;
use crate::model::validate;
use crate::modules::{ModuleInfo, VersionRemoval};
use crate::store::StoreError;

/// A module being uploaded; made by [`Batch::upload_module`]. Dropped unfinished, it leaves
/// nothing behind.
pub struct ModuleUpload {
    batch: Batch,
    name: String,
    tag: String,
    staged: Option<Staged>,
}

struct Staged {
    path: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    hasher: Sha256,
    size: u64,
}

impl Batch {
    /// Pushes a module held in memory as `reference`: `NAME:TAG`, or `NAME`, which moves tag
    /// `latest`. See [`Batch::upload_module`] for one that arrives in pieces.
    pub async fn push_module(
        &self,
        reference: &str,
        bytes: Vec<u8>,
    ) -> Result<ModuleInfo, BatchError> {
        let (name, tag) = push_target(reference)?;
        self.check_module_size(bytes.len() as u64)?;
        let module = self
            .shared
            .executor
            .load(bytes.clone())
            .await
            .map_err(|e| BatchError::invalid("module", e.to_string()))?;
        let info = self.shared.modules.push(name, tag, bytes, now()).await?;
        self.remember(module);
        Ok(info)
    }

    /// Starts pushing module `reference` (as [`Batch::push_module`]), whose bytes are then
    /// given to [`ModuleUpload::write`] as they arrive; [`ModuleUpload::finish`] checks and
    /// stores it.
    pub async fn upload_module(&self, reference: &str) -> Result<ModuleUpload, BatchError> {
        let (name, tag) = push_target(reference)?;
        let path = self.shared.modules.staging_path();
        let staging = path.clone();
        let file = tokio::task::spawn_blocking(move || crate::private_files::create_new(&staging))
            .await
            .map_err(|e| StoreError::Write(format!("staging an upload: {e}")))?
            .map_err(|e| StoreError::Write(format!("staging an upload: {e}")))?;
        let file = tokio::fs::File::from_std(file);
        Ok(ModuleUpload {
            batch: self.clone(),
            name: name.to_string(),
            tag: tag.to_string(),
            staged: Some(Staged {
                path,
                file: tokio::io::BufWriter::with_capacity(1 << 20, file),
                hasher: Sha256::new(),
                size: 0,
            }),
        })
    }

    fn check_module_size(&self, size: u64) -> Result<(), BatchError> {
        let limit = self.shared.config.max_module_bytes;
        if size > limit {
            return Err(BatchError::invalid(
                "module",
                format!("larger than the limit of {limit} bytes (at least {size} bytes)"),
            ));
        }
        Ok(())
    }

    fn remember(&self, module: crate::engine::JobModule) {
        self.shared
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(module.digest(), module);
    }
}

impl ModuleUpload {
    /// Adds the next piece of the module. Fails, and the upload with it, once the module passes
    /// the size limit ([`crate::BatchConfig::max_module_bytes`]).
    pub async fn write(&mut self, piece: &[u8]) -> Result<(), BatchError> {
        let staged = self
            .staged
            .as_mut()
            .expect("an upload is staged until it is finished");
        self.batch
            .check_module_size(staged.size + piece.len() as u64)?;
        staged.hasher.update(piece);
        staged.size += piece.len() as u64;
        staged
            .file
            .write_all(piece)
            .await
            .map_err(|e| StoreError::Write(format!("staging an upload: {e}")).into())
    }

    /// Checks that the bytes written are a runnable WASI program, stores them and points the
    /// name at them.
    pub async fn finish(mut self) -> Result<ModuleInfo, BatchError> {
        let Staged {
            path,
            mut file,
            hasher,
            size,
        } = self.staged.take().expect("an upload is finished once");
        let result = async {
            file.flush()
                .await
                .and(file.get_ref().sync_all().await)
                .map_err(|e| StoreError::Write(format!("staging an upload: {e}")))?;
            drop(file);
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|e| StoreError::Read(format!("reading a staged upload: {e}")))?;
            let module = self
                .batch
                .shared
                .executor
                .load(bytes)
                .await
                .map_err(|e| BatchError::invalid("module", e.to_string()))?;
            let digest = Digest::from_hasher(hasher);
            debug_assert_eq!(module.digest(), digest);
            let info = self
                .batch
                .shared
                .modules
                .adopt(&self.name, &self.tag, path.clone(), digest, size, now())
                .await?;
            self.batch.remember(module);
            Ok(info)
        }
        .await;
        if result.is_err() {
            discard(path);
        }
        result
    }
}

impl Drop for ModuleUpload {
    fn drop(&mut self) {
        if let Some(staged) = self.staged.take() {
            discard(staged.path);
        }
    }
}

/// Removes a staged file that will not be used, off the async workers when there are some.
fn discard(path: PathBuf) {
    let remove = move || {
        let _ = std::fs::remove_file(path);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(remove)),
        Err(_) => remove(),
    }
}

impl Batch {
    /// Every named module.
    pub fn modules(&self) -> Vec<ModuleInfo> {
        self.shared.modules.list()
    }

    /// One named module.
    pub fn module(&self, name: &str) -> Option<ModuleInfo> {
        self.shared.modules.get(name)
    }

    /// Removes a module name (and its bytes, where no other name uses them), or with
    /// `NAME:TAG` only that tag (its versions stay, for pinned references). Jobs that need what
    /// is gone later fail, saying so.
    pub async fn delete_module(&self, reference: &str) -> Result<ModuleInfo, BatchError> {
        // A pulled module (`host[:port]/repository`) is removed whole: its port is not a tag.
        if let Some((name, tag)) = reference
            .split_once(':')
            .filter(|_| !reference.contains('/'))
        {
            return self.shared.modules.untag(name, tag).await?.ok_or_else(|| {
                BatchError::NotFound {
                    what: "module tag",
                    name: reference.to_string(),
                }
            });
        }
        let name = reference;
        self.shared
            .modules
            .delete(name)
            .await?
            .ok_or_else(|| BatchError::NotFound {
                what: "module",
                name: name.to_string(),
            })
    }

    /// Deletes version `digest` (`sha256:<hex>`) of module `name`: it leaves the name's
    /// history, and once no name has it, its bytes and compiled artifacts go too. Refused while
    /// it is the latest push of a name or a tag points at it, while an ACTIVE definition pins it (`image:
    /// "<name>@<digest>"`), or while an unfinished job's definition does: each would fail jobs
    /// that are still to run.
    pub async fn delete_module_version(
        &self,
        name: &str,
        digest: &str,
    ) -> Result<ModuleInfo, BatchError> {
        let digest = Digest::parse(digest).ok_or_else(|| {
            BatchError::invalid(
                "digest",
                format!("{digest:?}: expected sha256:<64 hex digits>"),
            )
        })?;
        let (orphaned, committed) = {
            // Held while the names change, so no submit or register slips in between the check
            // and the removal.
            let state = self.shared.lock();
            if let Some(user) = version_user(&state, digest) {
                return Err(BatchError::Conflict(format!(
                    "module {name}@{digest} is still used by {user}"
                )));
            }
            match self.shared.modules.remove_version(name, digest)? {
                VersionRemoval::Unknown => {
                    return Err(BatchError::NotFound {
                        what: "module version",
                        name: format!("{name}@{digest}"),
                    });
                }
                VersionRemoval::InUse(user) => {
                    return Err(BatchError::Conflict(format!(
                        "module {name}@{digest} is {user}; move or delete that tag (or push \
                         another version), then delete this one"
                    )));
                }
                VersionRemoval::Removed {
                    orphaned,
                    committed,
                } => (orphaned, committed),
            }
        };
        committed.await?;
        if orphaned {
            self.shared
                .loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&digest);
            let path = self.shared.modules.path(&digest);
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
            self.shared.executor.forget(digest).await;
        }
        self.shared
            .modules
            .get(name)
            .ok_or_else(|| BatchError::NotFound {
                what: "module",
                name: name.to_string(),
            })
    }
}

/// `NAME[:TAG]` as a push names its target: the name and the tag it moves (`latest` when none
/// is given).
fn push_target(reference: &str) -> Result<(&str, &str), BatchError> {
    let (name, tag) = reference
        .split_once(':')
        .unwrap_or((reference, crate::model::image::DEFAULT_TAG));
    validate::name("name", name)?;
    crate::model::image::check_tag(tag).map_err(|problem| BatchError::invalid("tag", problem))?;
    Ok((name, tag))
}

/// What still needs module `digest`: an ACTIVE definition that pins it, or an unfinished job
/// of a definition (of any status) that does. Jobs are looked at only when some definition pins
/// the digest, so the usual answer costs a walk over the definitions, not the jobs.
fn version_user(state: &super::State, digest: Digest) -> Option<String> {
    let pins = |d: &crate::model::JobDefinition| {
        d.container_properties
            .as_ref()
            .and_then(|c| c.image.as_deref())
            .and_then(|image| image.split_once('@'))
            .and_then(|(_, pinned)| Digest::parse(pinned))
            == Some(digest)
    };
    let mut pinning = std::collections::HashSet::new();
    for definition in state.definitions.values().flatten().filter(|d| pins(d)) {
        if definition.status == "ACTIVE" {
            return Some(format!("job definition {}", definition.job_definition_arn));
        }
        pinning.insert(definition.job_definition_arn.as_str());
    }
    if pinning.is_empty() {
        return None;
    }
    state
        .jobs
        .values()
        .find(|j| !j.status.is_terminal() && pinning.contains(&*j.submission.job_definition))
        .map(|j| {
            format!(
                "unfinished job {} ({})",
                j.job_id, j.submission.job_definition
            )
        })
}
