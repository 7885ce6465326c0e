//! One run per artifact directory: an exclusive advisory lock on `.NAME.lock` beside the
//! directory, held for the life of the run and released by the operating system however the
//! process ends (a crash or `kill -9` leaves no stale lock to clean by hand). The lock file sits
//! beside the directory, not in it, because `--overwrite` replaces the directory by a rename.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock of one artifact directory, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    // Held for its lock; closing it releases the lock.
    _file: File,
}

/// `.NAME.lock` beside the directory `dir`.
pub fn lock_path(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".to_string());
    dir.with_file_name(format!(".{name}.lock"))
}

impl DirLock {
    /// Takes the lock of `dir` for this process, creating its parent if needed.
    ///
    /// # Errors
    /// `DIR is in use by process N: …` when another run holds it; the OS error when the lock
    /// file cannot be created.
    pub fn acquire(dir: &Path) -> Result<Self, String> {
        let path = lock_path(dir);
        let cannot = |error: std::io::Error| format!("cannot lock {}: {error}", path.display());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(cannot)?;
        }
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(cannot)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let holder = match holder.trim() {
                        "" => "another process".to_string(),
                        pid => format!("process {pid}"),
                    };
                    return Err(format!(
                        "{} is in use by {holder}: wait for that run to end, or choose another \
                         --artifact-dir",
                        dir.display()
                    ));
                }
                Err(TryLockError::Error(error)) => return Err(cannot(error)),
            }
            // The run before us removes its lock file as it ends: if it did so between our
            // open and our lock, we hold a lock on a file nobody else opens. Open again.
            if !still_at(&file, &path) {
                continue;
            }
            // Who holds it, for the message of the next run; a full disk may refuse even this
            // (the lock itself holds without it).
            let _ = file
                .set_len(0)
                .and_then(|()| write!(file, "{}", std::process::id()));
            return Ok(Self { path, _file: file });
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Removed while still locked, so that no run can lock this file after us (see the
        // check in `acquire`).
        std::fs::remove_file(&self.path).ok();
    }
}

/// Whether `path` still names the open `file`.
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// Whether `path` still names the open `file` (elsewhere: whether it exists).
#[cfg(not(unix))]
fn still_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("cifar-radam");
        let lock = DirLock::acquire(&run).unwrap();
        assert_eq!(lock_path(&run), dir.path().join(".cifar-radam.lock"));
        let error = DirLock::acquire(&run).unwrap_err();
        assert_eq!(
            error,
            format!(
                "{} is in use by process {}: wait for that run to end, or choose another \
                 --artifact-dir",
                run.display(),
                std::process::id()
            )
        );
        // Another directory is another lock.
        let other = DirLock::acquire(&dir.path().join("lm-radam")).unwrap();
        drop(lock);
        assert!(!lock_path(&run).exists());
        let again = DirLock::acquire(&run).unwrap();
        drop((again, other));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
