//! What a run's data was, recorded in `run.json`: every input file's size, modification time and
//! SHA-256, and what was derived from them (the vocabulary's size). `--resume` compares it with
//! the data it finds, so that a run never continues silently on other data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::error::{HarnessError, io_error};
use crate::run_dir::checksum::sha256_file;

/// One input file as it was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFingerprint {
    /// Size in bytes.
    pub bytes: u64,
    /// Modification time, seconds since the Unix epoch (recorded; a file only touched is not a
    /// change).
    pub modified: u64,
    /// SHA-256 of the content.
    pub sha256: String,
}

/// A run's data: its input files by path, and facts derived from them by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// Every file the data was read from.
    pub files: BTreeMap<PathBuf, FileFingerprint>,
    /// What the task derived from them, e.g. `vocabulary` → `141`.
    pub derived: BTreeMap<String, String>,
}

impl DataFingerprint {
    /// The fingerprint of `files` (hashing each whole).
    ///
    /// # Errors
    /// A file that cannot be read.
    pub fn of_files<'a>(
        files: impl IntoIterator<Item = &'a PathBuf>,
    ) -> Result<Self, HarnessError> {
        let mut fingerprint = Self::default();
        for path in files {
            fingerprint
                .files
                .insert(path.clone(), fingerprint_file(path)?);
        }
        Ok(fingerprint)
    }

    /// Adds a derived fact, e.g. `("vocabulary", "141")`.
    pub fn with_derived(mut self, name: &str, value: impl ToString) -> Self {
        self.derived.insert(name.to_string(), value.to_string());
        self
    }

    /// How `now` differs from this recorded fingerprint, one entry per file or fact, naming it:
    /// `train.txt: 1204 bytes, sha256 3f2a9c01b7d4… → 1250 bytes, sha256 …`.
    pub fn changes(&self, now: &Self) -> Vec<String> {
        let shown = |file: Option<&FileFingerprint>| match file {
            Some(file) => format!("{} bytes, sha256 {}…", file.bytes, &file.sha256[..12]),
            None => "not read".to_string(),
        };
        let mut changes = Vec::new();
        let paths: std::collections::BTreeSet<&PathBuf> =
            self.files.keys().chain(now.files.keys()).collect();
        for path in paths {
            let (before, after) = (self.files.get(path), now.files.get(path));
            let same = matches!((before, after), (Some(a), Some(b))
                if a.bytes == b.bytes && a.sha256 == b.sha256);
            if !same {
                changes.push(format!(
                    "{}: {} → {}",
                    path.display(),
                    shown(before),
                    shown(after)
                ));
            }
        }
        let names: std::collections::BTreeSet<&String> =
            self.derived.keys().chain(now.derived.keys()).collect();
        for name in names {
            let (before, after) = (self.derived.get(name), now.derived.get(name));
            if before != after {
                let shown = |value: Option<&String>| value.cloned().unwrap_or("-".to_string());
                changes.push(format!("{name}: {} → {}", shown(before), shown(after)));
            }
        }
        changes
    }
}

fn fingerprint_file(path: &Path) -> Result<FileFingerprint, HarnessError> {
    let metadata = std::fs::metadata(path).map_err(|e| io_error("read", path, e))?;
    let modified = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |age| age.as_secs());
    Ok(FileFingerprint {
        bytes: metadata.len(),
        modified,
        sha256: sha256_file(path).map_err(|e| io_error("read", path, e))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_added_and_dropped_files_and_facts_are_named_and_touching_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let (train, valid, test) = (
            dir.path().join("train.txt"),
            dir.path().join("valid.txt"),
            dir.path().join("test.txt"),
        );
        std::fs::write(&train, "the cat sat\n").unwrap();
        std::fs::write(&valid, "the cat\n").unwrap();
        let before = DataFingerprint::of_files([&train, &valid])
            .unwrap()
            .with_derived("vocabulary", 4);
        let same = DataFingerprint::of_files([&train, &valid])
            .unwrap()
            .with_derived("vocabulary", 4);
        assert!(before.changes(&same).is_empty());
        // Rewritten with the same content (a new modification time): the same data.
        std::fs::write(&valid, "the cat\n").unwrap();
        let touched = DataFingerprint::of_files([&train, &valid])
            .unwrap()
            .with_derived("vocabulary", 4);
        assert!(before.changes(&touched).is_empty());

        // One flipped letter, same size.
        std::fs::write(&train, "the cat sap\n").unwrap();
        std::fs::write(&test, "a\n").unwrap();
        let after = DataFingerprint::of_files([&train, &test])
            .unwrap()
            .with_derived("vocabulary", 5);
        let changes = before.changes(&after);
        assert_eq!(changes.len(), 4, "{changes:?}");
        // Files in path order, then the facts.
        assert!(
            changes[0].starts_with(&format!("{}: not read → 2 bytes, sha256 ", test.display())),
            "{changes:?}"
        );
        assert!(
            changes[1].starts_with(&format!("{}: 12 bytes, sha256 ", train.display()))
                && changes[1].contains("… → 12 bytes, sha256 "),
            "{changes:?}"
        );
        assert!(
            changes[2].starts_with(&format!("{}: 8 bytes, sha256 ", valid.display()))
                && changes[2].ends_with("→ not read"),
            "{changes:?}"
        );
        assert_eq!(changes[3], "vocabulary: 4 → 5");
        assert!(DataFingerprint::of_files([&dir.path().join("absent")]).is_err());
    }
}
