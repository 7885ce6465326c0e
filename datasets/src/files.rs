//! Files that are whole or absent: atomic writes (a temporary file beside the target, renamed
//! over it once complete), and fingerprints that key a cache by what it was built from.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The prefix of a file being written; it becomes the file by a rename once complete.
const PARTIAL: &str = ".partial-";

/// Writes `bytes` to `path` so that `path` is either its old content or all of the new one,
/// whenever the process is killed: a temporary file beside it, flushed, then renamed over it.
///
/// # Errors
/// If the temporary file cannot be written or renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_atomic(path, |partial| {
        let mut file = std::fs::File::create(partial)?;
        file.write_all(bytes)?;
        file.sync_all()
    })
}

/// Runs `write` on a temporary path beside `path` that ends like `path` (for writers that choose
/// the format from the extension, such as a PNG encoder), then renames the result to `path`.
/// On failure the temporary file is removed and `path` is left as it was.
///
/// # Errors
/// What `write` returns, or the failure of the rename.
pub fn replace_atomic<E: From<std::io::Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let partial = partial_path(path);
    if let Some(parent) = partial.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let written = write(&partial).and_then(|()| Ok(std::fs::rename(&partial, path)?));
    if written.is_err() {
        std::fs::remove_file(&partial).ok();
    }
    written
}

/// `dir/.partial-name.ext` for `dir/name.ext`: where [`replace_atomic`] writes first.
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{PARTIAL}{name}"))
}

/// A 64-bit FNV-1a digest, stable across platforms and Rust versions, of whatever a cache was
/// built from: texts, options, and the names, sizes and modification times of source files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    /// The digest of nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes`, followed by their length (so that `"ab" + "c"` ≠ `"a" + "bc"`).
    pub fn with(mut self, bytes: &[u8]) -> Self {
        for &byte in bytes.iter().chain(&(bytes.len() as u64).to_le_bytes()) {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Adds a file's path, size and modification time (not its content: a cache of gigabytes
    /// of text is checked in microseconds).
    ///
    /// # Errors
    /// If the file's metadata cannot be read.
    pub fn with_file(self, path: &Path) -> std::io::Result<Self> {
        let metadata = std::fs::metadata(path)?;
        let modified = metadata
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map(|age| age.as_nanos())
            .unwrap_or(0);
        Ok(self
            .with(path.to_string_lossy().as_bytes())
            .with(&metadata.len().to_le_bytes())
            .with(&modified.to_le_bytes()))
    }

    /// The digest as 16 hexadecimal digits, for a file or folder name.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_the_whole_file_and_leave_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new content").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new content");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("run.json")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        write_atomic(&path, b"old").unwrap();
        let result: Result<(), std::io::Error> = replace_atomic(&path, |partial| {
            assert!(partial.to_string_lossy().ends_with(".partial-curves.png"));
            std::fs::write(partial, b"half")?;
            Err(std::io::Error::other("killed"))
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(!partial_path(&path).exists());
    }

    #[test]
    fn fingerprints_are_fnv_1a_and_see_every_change() {
        // FNV-1a 64 of the empty input is its offset basis; of "a" (then the length 1 as
        // eight little-endian bytes) it is fixed by the algorithm.
        assert_eq!(Fingerprint::new().hex(), "cbf29ce484222325");
        let a = Fingerprint::new().with(b"ab").with(b"c");
        let b = Fingerprint::new().with(b"a").with(b"bc");
        assert_ne!(a, b);
        assert_eq!(a, Fingerprint::new().with(b"ab").with(b"c"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.en");
        std::fs::write(&path, "one line\n").unwrap();
        let before = Fingerprint::new().with_file(&path).unwrap();
        assert_eq!(before, Fingerprint::new().with_file(&path).unwrap());
        std::fs::write(&path, "one line, longer\n").unwrap();
        assert_ne!(before, Fingerprint::new().with_file(&path).unwrap());
        assert!(
            Fingerprint::new()
                .with_file(&dir.path().join("absent"))
                .is_err()
        );
    }
}
