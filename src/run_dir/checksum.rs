//! Content hashes of the files a run writes: `NAME.sha256` beside every checkpoint record and the
//! final model, in `sha256sum`'s format (so `sha256sum -c model.mpk.sha256` checks one by hand
//! too), written once the file is complete and checked before it is loaded. A flipped bit, a
//! truncated copy or a file swapped for another is then an error instead of a silently wrong
//! model.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::write_atomic;

/// What a checksum file's name adds to the name of the file it checks.
pub const SUFFIX: &str = ".sha256";

/// `file.sha256`, where the hash of `file` is kept.
pub fn sidecar(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(SUFFIX);
    PathBuf::from(name)
}

/// The SHA-256 of the file at `path`, as 64 lowercase hexadecimal digits.
///
/// # Errors
/// If the file cannot be read.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hexadecimal digits of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Writes the checksum file of the file at `path`, whose complete content is `content` (the
/// bytes just written there: hashed from memory, not read back), atomically.
///
/// # Errors
/// If the checksum file cannot be written.
pub fn record(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let digest = hex(&Sha256::digest(content));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_atomic(&sidecar(path), format!("{digest}  {name}\n").as_bytes())
}

/// What the checksum file says of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Integrity {
    /// Its content has the recorded hash.
    Intact,
    /// No hash was recorded for it (a run from before checksums, or a write killed between the
    /// file and its checksum).
    Unrecorded,
    /// Its content differs from what was written.
    Corrupt {
        /// The hash recorded at write time.
        recorded: String,
        /// The hash of the file now.
        actual: String,
    },
}

/// Checks the file at `path` against its checksum file.
///
/// # Errors
/// If the file or its checksum file exists but cannot be read, or the checksum file is not
/// one (`Corrupt` would blame the wrong file).
pub fn check(path: &Path) -> std::io::Result<Integrity> {
    let text = match std::fs::read_to_string(sidecar(path)) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Integrity::Unrecorded);
        }
        Err(error) => return Err(error),
    };
    let recorded = text.split_whitespace().next().unwrap_or_default();
    if recorded.len() != 64 || !recorded.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} holds no SHA-256", sidecar(path).display()),
        ));
    }
    let actual = sha256_file(path)?;
    Ok(if actual == recorded.to_ascii_lowercase() {
        Integrity::Intact
    } else {
        Integrity::Corrupt {
            recorded: recorded.to_string(),
            actual,
        }
    })
}

/// Removes the checksum files in `dir` whose file is gone (an older checkpoint deleted by the
/// keep-last policy, or by hand).
pub fn remove_orphans(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if let Some(checked) = name.strip_suffix(SUFFIX)
            && !name.starts_with('.')
            && !dir.join(checked).exists()
        {
            std::fs::remove_file(&path).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_the_standard_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        record(&path, b"abc").unwrap();
        assert_eq!(
            std::fs::read_to_string(sidecar(&path)).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  abc\n"
        );
    }

    #[test]
    fn any_flipped_bit_is_corruption_and_a_missing_hash_is_unrecorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model-3.mpk");
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(check(&path).unwrap(), Integrity::Unrecorded);
        record(&path, &bytes).unwrap();
        assert_eq!(check(&path).unwrap(), Integrity::Intact);
        for (byte, bit) in [(0, 0), (1234, 6), (4999, 7)] {
            let mut flipped = bytes.clone();
            flipped[byte] ^= 1 << bit;
            std::fs::write(&path, &flipped).unwrap();
            assert!(
                matches!(check(&path).unwrap(), Integrity::Corrupt { .. }),
                "byte {byte} bit {bit}"
            );
        }
        std::fs::write(&path, &bytes[..4999]).unwrap();
        assert!(matches!(check(&path).unwrap(), Integrity::Corrupt { .. }));
        std::fs::write(sidecar(&path), "not a hash\n").unwrap();
        assert!(check(&path).is_err());
    }

    #[test]
    fn orphaned_checksums_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["model-1.mpk", "model-2.mpk"] {
            let path = dir.path().join(name);
            std::fs::write(&path, name).unwrap();
            record(&path, name.as_bytes()).unwrap();
        }
        std::fs::remove_file(dir.path().join("model-1.mpk")).unwrap();
        remove_orphans(dir.path());
        assert!(!dir.path().join("model-1.mpk.sha256").exists());
        assert!(dir.path().join("model-2.mpk.sha256").is_file());
    }
}
