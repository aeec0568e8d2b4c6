//! A private data directory: mode 0700, and every file in it 0600, whatever the umask.
//!
//! The data directory holds argon2 hashes, e-mail addresses, messages (`auth.db`, `hub.db` and
//! their `-wal`/`-shm`) and the token signing key (`signing-key.pem`). Created with the default
//! umask 022 they would be readable by every local user, so:
//! - [`secure_dir`] creates the directory 0700, and tightens an existing one (and the files
//!   directly in it) that is looser, with a warning naming each path: an operator who loosened
//!   them on purpose learns it at start, and nobody keeps world-readable secrets by accident;
//! - [`secure_file`] pre-creates a database file 0600 before SQLite opens it. SQLite gives the
//!   `-wal` and `-shm` files it creates later the mode of the database file, so they are 0600
//!   too (tested).
//!
//! The hub (its data dir and `hub.db`) and auth (its data dir and `auth.db`; the key is written
//! 0600 by `keys`) both go through here. On non-Unix systems these only create what is missing.

use std::io;
use std::path::Path;

/// Mode of the data directory: owner only.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in it: owner read and write.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits for group and others: none may be set.
const OTHERS: u32 = 0o077;

/// Creates `dir` (and missing parents) with mode [`DIR_MODE`], or tightens an existing `dir` to
/// it; then tightens every regular file directly in it to [`FILE_MODE`]. Each tightening is
/// logged as a warning.
///
/// # Errors
/// If `dir` cannot be created, listed or changed.
pub fn secure_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        tighten(dir, DIR_MODE)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                tighten(&entry.path(), FILE_MODE)?;
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Creates `path` empty with mode [`FILE_MODE`] if it does not exist, or tightens it to that
/// mode (with a warning) if it is looser. Call it before SQLite opens a database file.
///
/// # Errors
/// If the file cannot be created or changed.
pub fn secure_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    drop(options.open(path)?);
    #[cfg(unix)]
    tighten(path, FILE_MODE)?;
    Ok(())
}

/// Sets `path` to `mode` if group or others have any permission on it, with a warning.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & OTHERS != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{current:o}"),
            want = format!("{mode:o}"), "data file was accessible by group or others; tightened");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The process umask is 022 in tests (the usual default), which is what would make these
    /// 0755/0644 without this module; the modes below do not depend on it.
    #[test]
    fn new_dirs_and_files_are_private_and_loose_ones_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/data");
        secure_dir(&dir).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);
        let db = dir.join("x.db");
        secure_file(&db).unwrap();
        assert_eq!(mode(&db), FILE_MODE);

        std::fs::write(dir.join("loose"), "x").unwrap();
        std::fs::set_permissions(dir.join("loose"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o664)).unwrap();
        secure_dir(&dir).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);
        assert_eq!(mode(&dir.join("loose")), FILE_MODE);
        assert_eq!(mode(&db), FILE_MODE);
        // An existing file keeps its content.
        std::fs::write(&db, "content").unwrap();
        secure_file(&db).unwrap();
        assert_eq!(std::fs::read_to_string(&db).unwrap(), "content");
    }
}
