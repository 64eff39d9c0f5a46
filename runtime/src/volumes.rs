//! Host volumes: the directories a job definition mounts, each opened beneath the volume root a
//! component at a time without following any link, and missing ones created the same way.
//!
//! A guest with a read-write volume can plant a link in it (`up -> ../../..`); a later definition
//! naming `sourcePath: "t/up/etc"` passes any check of the text, so the path is never given to the
//! system to resolve. Each component is opened with `O_NOFOLLOW` in the directory opened before
//! it, and the guest gets the directory that was opened, not a path string.

use std::path::{Component, Path};

use cap_fs_ext::DirExt;
use cap_std::fs::Dir;

/// Why a volume could not be opened; becomes the attempt's `CannotCreateContainerError`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// The volume root itself could not be opened or created.
    #[error("the volume root {root} cannot be opened: {source}")]
    Root {
        /// The configured volume root.
        root: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A component on the way is a symbolic link: it is not followed.
    #[error("{component:?} is a symbolic link, which volumes do not follow")]
    Link {
        /// The volume's `sourcePath`.
        volume: String,
        /// The component that is a link.
        component: String,
    },
    /// A component is not a directory, or could not be opened or created.
    #[error("{component:?} cannot be opened as a directory: {source}")]
    Open {
        /// The volume's `sourcePath`.
        volume: String,
        /// The component that failed.
        component: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The path has a component that could leave the root (`..`, a root or prefix).
    #[error("{component:?} may not appear in a volume path")]
    Escape {
        /// The volume's `sourcePath`.
        volume: String,
        /// The offending component.
        component: String,
    },
}

/// Refuses a volume root that would nest into the rest of the data dir, or hold it: a guest with
/// a volume must not reach the database, the credentials, the modules, the compiled code or
/// another attempt's scratch directory. The root is either `<data_dir>/volumes` (the default)
/// or outside the data dir altogether.
pub(crate) fn check_layout(data_dir: &Path, volume_root: &Path) -> Result<(), String> {
    let data_dir = absolute(data_dir);
    let root = absolute(volume_root);
    if data_dir.starts_with(&root) {
        return Err(format!(
            "the volume root {} holds the data dir {}: guests with a volume would reach the database and compiled code",
            root.display(),
            data_dir.display()
        ));
    }
    if root.starts_with(&data_dir) && root != data_dir.join("volumes") {
        return Err(format!(
            "the volume root {} is inside the data dir {} but is not its volumes/ directory: \
             it would share a directory with the database, the modules, compiled code or scratch",
            root.display(),
            data_dir.display()
        ));
    }
    Ok(())
}

/// `path` made absolute with every link in the part that exists resolved, so that two spellings
/// of one place compare equal.
fn absolute(path: &Path) -> std::path::PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(found) = existing.canonicalize() {
            return rest.iter().rev().fold(found, |p, c| p.join(c));
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Opens the volume root (creating it if missing). The root is the operator's setting, so it is
/// opened by its path; everything beneath it is opened through the handle this returns.
pub(crate) fn open_root(root: &Path) -> Result<Dir, VolumeError> {
    let fail = |source| VolumeError::Root {
        root: root.display().to_string(),
        source,
    };
    crate::private_files::create_dir_all(root).map_err(fail)?;
    Dir::open_ambient_dir(root, cap_std::ambient_authority()).map_err(fail)
}

/// The directory `path` names beneath `root`, creating missing components (mode 0700), and
/// refusing any component that is a link or is not a directory. Nothing is created outside
/// `root`: each step happens inside the directory the previous one opened.
pub(crate) fn open_beneath(root: &Dir, path: &Path) -> Result<Dir, VolumeError> {
    let volume = path.display().to_string();
    // Every component is checked before anything is created, so a refused path leaves no trace.
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => names.push(name),
            Component::CurDir => {}
            other => {
                return Err(VolumeError::Escape {
                    volume,
                    component: other.as_os_str().to_string_lossy().into_owned(),
                });
            }
        }
    }
    let mut dir = root.try_clone().map_err(|source| VolumeError::Open {
        volume: volume.clone(),
        component: ".".into(),
        source,
    })?;
    for name in names {
        let shown = name.to_string_lossy().into_owned();
        let next = match dir.open_dir_nofollow(name) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match create_private_dir(&dir, name) {
                    // Someone else made it in between: open what is there, under the same rule.
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(source) => {
                        return Err(VolumeError::Open {
                            volume,
                            component: shown,
                            source,
                        });
                    }
                }
                dir.open_dir_nofollow(name)
            }
            other => other,
        };
        dir = next.map_err(|source| {
            let is_link = dir
                .symlink_metadata(name)
                .is_ok_and(|m| m.file_type().is_symlink());
            if is_link {
                VolumeError::Link {
                    volume: volume.clone(),
                    component: shown.clone(),
                }
            } else {
                VolumeError::Open {
                    volume: volume.clone(),
                    component: shown.clone(),
                    source,
                }
            }
        })?;
    }
    Ok(dir)
}

fn create_private_dir(parent: &Dir, name: &std::ffi::OsStr) -> std::io::Result<()> {
    use cap_std::fs::DirBuilderExt;
    let mut builder = cap_std::fs::DirBuilder::new();
    builder.mode(0o700);
    parent.create_dir_with(name, &builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, Dir) {
        let dir = tempfile::tempdir().unwrap();
        let root = open_root(&dir.path().join("volumes")).unwrap();
        (dir, root)
    }

    #[test]
    fn missing_directories_are_created_beneath_the_root() {
        let (tmp, root) = root();
        open_beneath(&root, Path::new("team-a/data")).unwrap();
        assert!(tmp.path().join("volumes/team-a/data").is_dir());
    }

    #[test]
    fn a_planted_relative_link_is_not_followed_and_nothing_is_created_outside() {
        let (tmp, root) = root();
        std::fs::create_dir_all(tmp.path().join("volumes/t")).unwrap();
        std::os::unix::fs::symlink("../..", tmp.path().join("volumes/t/up")).unwrap();
        for path in ["t/up", "t/up/etc", "t/up/made-by-attack"] {
            let refused = open_beneath(&root, Path::new(path)).unwrap_err();
            assert!(
                matches!(&refused, VolumeError::Link { component, .. } if component == "up"),
                "{path}: {refused}"
            );
        }
        assert!(!tmp.path().join("made-by-attack").exists());
    }

    #[test]
    fn a_link_to_a_file_or_an_absolute_link_is_refused_too() {
        let (tmp, root) = root();
        std::fs::write(tmp.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("volumes/abs")).unwrap();
        std::os::unix::fs::symlink("../secret", tmp.path().join("volumes/file")).unwrap();
        assert!(matches!(
            open_beneath(&root, Path::new("abs")),
            Err(VolumeError::Link { .. })
        ));
        assert!(matches!(
            open_beneath(&root, Path::new("file/x")),
            Err(VolumeError::Link { .. })
        ));
        std::fs::write(tmp.path().join("volumes/plain"), "x").unwrap();
        assert!(matches!(
            open_beneath(&root, Path::new("plain")),
            Err(VolumeError::Open { .. })
        ));
    }

    #[test]
    fn the_volume_root_may_not_hold_or_nest_into_the_data_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("scratch")).unwrap();
        assert!(check_layout(&data, &data.join("volumes")).is_ok());
        assert!(check_layout(&data, &tmp.path().join("elsewhere")).is_ok());
        for bad in [
            data.clone(),
            tmp.path().to_path_buf(),
            "/".into(),
            data.join("scratch"),
            data.join("scratch/x"),
            data.join("compiled"),
            data.join("modules/v"),
            data.join("volumes/../compiled"),
        ] {
            assert!(check_layout(&data, &bad).is_err(), "{}", bad.display());
        }
    }

    #[test]
    fn dot_dot_is_refused_even_if_the_text_check_were_skipped() {
        let (_tmp, root) = root();
        assert!(matches!(
            open_beneath(&root, Path::new("a/../../x")),
            Err(VolumeError::Escape { .. })
        ));
        assert!(matches!(
            open_beneath(&root, Path::new("/etc")),
            Err(VolumeError::Escape { .. })
        ));
    }
}
