//! The data directory is private to the user the service runs as: every directory we create in
//! it is mode 0700 and every file 0600, whatever the umask. This module owns those modes (how
//! files and directories are created, and how an existing one is tightened); the rest of the
//! crate creates its files and directories through it.
//!
//! Why: the data directory holds compiled native code, the database and every module pushed;
//! another local user who can read it learns other tenants' programs and output, and one who can
//! write it could plant files. On platforms without Unix modes these are plain creates.

use std::io::Write as _;
use std::path::Path;

/// Mode of every directory we create.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// Mode of every file we create.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// Creates `path` and its missing parents, each 0700. Directories that already exist are left
/// as they are; see [`tighten_dir`].
pub(crate) fn create_dir_all(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(path)
}

/// Creates the directory `path` (its parent must exist), 0700; fails if it exists.
pub(crate) fn create_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(path)
}

/// Opens a new file at `path` for writing, 0600. Never follows or reuses what is already there
/// (`O_EXCL`): a symlink planted at `path` makes it fail rather than write through it.
pub(crate) fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options.open(path)
}

/// Opens `path` for reading and writing, creating it 0600 if it is missing; an existing file
/// keeps its mode (see [`tighten`]).
pub(crate) fn open_or_create(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options.open(path)
}

/// Writes `bytes` to a new file at `path`, 0600, as [`create_new`].
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    create_new(path)?.write_all(bytes)
}

/// Opens the regular file at `path` for reading, and says how long it is. Refuses anything
/// else without waiting on it: a symlink is not followed (`O_NOFOLLOW`), and a FIFO or device
/// planted in its place neither blocks the open (`O_NONBLOCK`) nor is read.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NOFOLLOW | libc::O_NONBLOCK,
    );
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok((file, metadata.len()))
}

/// Takes group and other permissions away from `path`, a directory that existed before us or a
/// file a library created with its own mode (redb's database); whether it had any. The owner's
/// bits are left alone. A symlink is refused, never followed.
pub(crate) fn tighten(path: &Path) -> std::io::Result<bool> {
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.file_type().is_symlink() {
        return Err(std::io::Error::other(format!(
            "{} is a symbolic link",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let current = metadata.permissions().mode() & 0o7777;
        if current & 0o077 == 0 {
            return Ok(false);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & 0o7700))?;
        Ok(true)
    }
    #[cfg(not(unix))]
    Ok(false)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn what_we_create_is_private_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all(&nested).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        write_new(&nested.join("f"), b"x").unwrap();
        assert_eq!(mode(&nested.join("f")), 0o600);
        assert!(
            write_new(&nested.join("f"), b"y").is_err(),
            "never reuses a file"
        );
    }

    #[test]
    fn tightening_removes_group_and_other_bits_only() {
        let dir = tempfile::tempdir().unwrap();
        let loose = dir.path().join("loose");
        std::fs::create_dir(&loose).unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(tighten(&loose).unwrap());
        assert_eq!(mode(&loose), 0o700);
        assert!(!tighten(&loose).unwrap(), "already private");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(tighten(&file).unwrap());
        assert_eq!(mode(&file), 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(tighten(&link).is_err(), "a link is not followed");
    }

    #[test]
    fn only_regular_files_are_opened_and_nothing_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(open_regular(&file).unwrap().1, 3);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(open_regular(&link).is_err(), "a link is not followed");
        assert!(open_regular(Path::new("/dev/zero")).is_err());
        assert!(open_regular(dir.path()).is_err());
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(
            open_regular(&fifo).is_err(),
            "a FIFO neither blocks nor is read"
        );
    }
}
