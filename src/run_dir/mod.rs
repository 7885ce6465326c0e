//! A run's artifact directory: what an earlier run left there, when a new run may take it over
//! (never by accident), where `--resume` continues, and how `--overwrite` replaces a run only once
//! the new one has finished ([`RunDir::staging`], [`RunDir::replace_with`]). Beside it: the
//! [lock] that keeps one run per directory, the [recorder] that writes checkpoints and the model
//! atomically with a [checksum], and the [checkpoints] kept and checked before a resume.
//!
//! Nothing here touches a directory until [`RunDir::take_over`] is called, which the harness does
//! only after every flag, the data and the backend have been checked.

pub mod checkpoints;
pub mod checksum;
pub mod lock;
pub mod recorder;

use std::fmt;
use std::path::{Path, PathBuf};

use radam_models::kernels::KernelChoices;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use checkpoints::{KeepLastCheckpoints, integrity_problem, verify_checkpoint};
pub use lock::DirLock;
pub use radam_datasets::files::{partial_path, replace_atomic, write_atomic};
pub use recorder::{RunRecorder, WriteFailures};

/// The run's settings (`run.json`).
pub const SETTINGS: &str = "run.json";
/// The per-epoch metrics.
pub const CSV: &str = "metrics.csv";
/// The training curves.
pub const PLOT: &str = "curves.png";
/// The final model, without its extension (the recorder adds `.mpk`).
pub const MODEL: &str = "model";
/// The gradient histogram of `--gradient-histogram`.
pub const GRADIENT_HISTOGRAM: &str = "grad_histogram.csv";
/// The test-set translations of the translation task, one detokenised hypothesis per line in
/// the order of the test set (the form sacreBLEU scores).
pub const TRANSLATIONS: &str = "translations.txt";
/// What a task computed after training (test BLEU, test perplexity), written once every phase
/// after training is done: a run without it is resumed into those phases.
pub const RESULTS: &str = "results.json";
/// The CPU kernels the run chose ([`radam_models::kernels`]), which `--resume` reuses.
pub const KERNELS: &str = "kernels.json";
/// Burn's checkpoint folder.
pub const CHECKPOINTS: &str = "checkpoint";
/// The three records of one epoch's checkpoint, as Burn's file checkpointer names them.
const CHECKPOINT_KINDS: [&str; 3] = ["model", "optim", "scheduler"];
/// The folders and files a run writes in its directory (with their checksums); anything else
/// there (a token cache, the user's files) is not the run's and survives its replacement.
const RUN_FOLDERS: [&str; 3] = [CHECKPOINTS, "train", "valid"];
const RUN_FILES: [&str; 11] = [
    SETTINGS,
    KERNELS,
    CSV,
    PLOT,
    "model.mpk",
    "model.mpk.sha256",
    "experiment.log",
    GRADIENT_HISTOGRAM,
    TRANSLATIONS,
    RESULTS,
    ".partial-model.mpk",
];
/// An artifact directory, and what an earlier run left in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl fmt::Display for RunDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

impl RunDir {
    /// The directory at `path` (which need not exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `dir/name`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Burn's checkpoint folder in it.
    pub fn checkpoints(&self) -> PathBuf {
        self.join(CHECKPOINTS)
    }

    /// The final model's file, `model.mpk`.
    pub fn model_file(&self) -> PathBuf {
        self.join(&format!("{MODEL}.mpk"))
    }

    /// One record of an epoch's checkpoint (`kind`: `model`, `optim`, `scheduler`) as Burn's
    /// recorders name it, without the extension they add.
    pub fn checkpoint_record(&self, kind: &str, epoch: usize) -> PathBuf {
        self.checkpoints().join(format!("{kind}-{epoch}"))
    }

    /// The file of one record of an epoch's checkpoint.
    pub fn checkpoint_file(&self, kind: &str, epoch: usize) -> PathBuf {
        self.checkpoint_record(kind, epoch).with_extension("mpk")
    }

    /// Whether an earlier run left its settings, a checkpoint or a model here.
    pub fn holds_run(&self) -> bool {
        self.join(SETTINGS).is_file() || self.checkpoints().is_dir() || self.model_file().is_file()
    }

    /// The settings the earlier run saved in `run.json`.
    ///
    /// # Errors
    /// A message naming the file when it is missing or unreadable.
    pub fn read_settings<S: DeserializeOwned>(&self) -> Result<S, String> {
        let path = self.join(SETTINGS);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a run's settings ({e})", path.display()))
    }

    /// Saves a run's settings (atomically).
    ///
    /// # Errors
    /// If the file cannot be written.
    pub fn write_settings(&self, settings: &impl Serialize) -> Result<(), String> {
        let json = serde_json::to_string_pretty(settings).expect("settings serialise");
        let path = self.join(SETTINGS);
        write_atomic(&path, json.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The kernel choices recorded by the run here, if it recorded any.
    ///
    /// # Errors
    /// An unreadable file, or one that is not a record of kernel choices.
    pub fn read_kernels(&self) -> Result<Option<KernelChoices>, String> {
        let path = self.join(KERNELS);
        if !path.exists() {
            return Ok(None);
        }
        read_kernel_choices(&path).map(Some)
    }

    /// Records the kernel choices made so far in this process (atomically, into the existing
    /// directory).
    ///
    /// # Errors
    /// `cannot write <dir>/kernels.json: <OS error>`.
    pub fn write_kernels(&self) -> Result<(), String> {
        let json = serde_json::to_string_pretty(&radam_models::kernels::choices())
            .expect("kernel choices serialise");
        let path = self.join(KERNELS);
        write_into_existing(&path, json.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The epochs whose checkpoint has all three records (model, optimizer, scheduler), in
    /// increasing order.
    pub fn complete_checkpoints(&self) -> Vec<usize> {
        let mut epochs: Vec<usize> = std::fs::read_dir(self.checkpoints())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                name.strip_prefix("model-")?
                    .strip_suffix(".mpk")?
                    .parse()
                    .ok()
            })
            .filter(|&epoch| {
                CHECKPOINT_KINDS
                    .iter()
                    .all(|kind| self.checkpoint_file(kind, epoch).is_file())
            })
            .collect();
        epochs.sort_unstable();
        epochs
    }

    /// Makes the directory this run's: removes what an earlier run left (its checkpoints would
    /// otherwise mix with this run's) when `clear`, creates it, and saves `settings`.
    ///
    /// # Errors
    /// If something cannot be removed, created or written.
    pub fn take_over(&self, clear: bool, settings: &impl Serialize) -> Result<(), String> {
        if clear {
            self.clear()?;
        }
        self.remove_partial_files()?;
        std::fs::create_dir_all(&self.path)
            .map_err(|e| format!("cannot create {}: {e}", self.path.display()))?;
        self.write_settings(settings)
    }

    /// Removes what a killed run left half-written: the `.partial-` files of the run's own files
    /// and of its checkpoint records (a run killed while replacing one). The run taking the
    /// directory over holds its lock, so no live run is writing them; a user's own
    /// `.partial-…` files beside them are not the run's and stay.
    fn remove_partial_files(&self) -> Result<(), String> {
        let mut stale: Vec<PathBuf> = RUN_FILES
            .iter()
            .map(|file| partial_path(&self.join(file)))
            .collect();
        if let Ok(entries) = std::fs::read_dir(self.checkpoints()) {
            stale.extend(entries.flatten().map(|entry| entry.path()).filter(|path| {
                path.file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with(".partial-"))
            }));
        }
        for path in stale.into_iter().filter(|path| path.is_file()) {
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Removes the run's folders and files, keeping whatever else is here.
    fn clear(&self) -> Result<(), String> {
        for folder in RUN_FOLDERS {
            let path = self.join(folder);
            if path.is_dir() {
                std::fs::remove_dir_all(&path)
                    .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            }
        }
        for file in RUN_FILES {
            let path = self.join(file);
            if path.is_file() {
                std::fs::remove_file(&path)
                    .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Removes the checkpoint of `epoch` (its three records and their checksums).
    ///
    /// # Errors
    /// `cannot remove <file>: <OS error>`.
    pub fn remove_checkpoint(&self, epoch: usize) -> Result<(), String> {
        for kind in CHECKPOINT_KINDS {
            let file = self.checkpoint_file(kind, epoch);
            for path in [checksum::sidecar(&file), file] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(format!("cannot remove {}: {error}", path.display())),
                }
            }
        }
        Ok(())
    }

    /// A hidden directory beside this one, `.NAME.SUFFIX`.
    fn beside(&self, suffix: &str) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".to_string());
        self.path.with_file_name(format!(".{name}.{suffix}"))
    }

    /// Where `--overwrite` trains a new run while the earlier one stays in place:
    /// `.NAME.overwrite` beside this directory.
    pub fn staging(&self) -> RunDir {
        RunDir::new(self.beside("overwrite"))
    }

    /// Replaces the run here by the finished run in `staged`, by renames: this directory becomes
    /// `.NAME.replaced`, `staged` takes its name, the files here that are not the run's (a token
    /// cache, the user's) move across, and the replaced run is removed. A process killed in
    /// between leaves a state [`recover`](Self::recover) completes.
    ///
    /// # Errors
    /// A rename or removal the file system refuses; the new run then still is in `staged`, and
    /// the earlier one here (or, if only the removal failed, in `.NAME.replaced`).
    pub fn replace_with(&self, staged: &RunDir) -> Result<(), String> {
        let replaced = self.beside("replaced");
        if replaced.exists() {
            remove_all(&replaced)?;
        }
        if self.path.exists() {
            std::fs::rename(&self.path, &replaced).map_err(|e| {
                format!(
                    "cannot replace {self} by the new run: {e}; the new run is complete in {staged}"
                )
            })?;
        }
        if let Err(error) = std::fs::rename(&staged.path, &self.path) {
            std::fs::rename(&replaced, &self.path).ok();
            return Err(format!(
                "cannot move the new run from {staged} to {self}: {error}; the earlier run is \
                 still in {self}"
            ));
        }
        if !replaced.exists() {
            // There was no earlier run here to replace.
            return Ok(());
        }
        self.adopt_others(&replaced);
        remove_all(&replaced)
    }

    /// Completes a [`replace_with`](Self::replace_with) that a killed process left half done
    /// (call it holding the directory's [lock](DirLock)).
    ///
    /// # Errors
    /// A rename or removal the file system refuses.
    pub fn recover(&self) -> Result<(), String> {
        let replaced = self.beside("replaced");
        if !replaced.is_dir() {
            return Ok(());
        }
        if !self.path.exists() {
            // Killed between the two renames: the staged run had finished.
            let staged = self.staging();
            let from = if staged.path.is_dir() {
                staged.path
            } else {
                replaced.clone()
            };
            std::fs::rename(&from, &self.path)
                .map_err(|e| format!("cannot move {} to {self}: {e}", from.display()))?;
        }
        if replaced.is_dir() {
            self.adopt_others(&replaced);
            remove_all(&replaced)?;
        }
        Ok(())
    }

    /// Moves the entries of `old` that are not a run's, and not here already, into this
    /// directory (best effort: what cannot move stays and goes with `old`).
    fn adopt_others(&self, old: &Path) {
        for entry in std::fs::read_dir(old).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let text = name.to_string_lossy();
            let runs = RUN_FOLDERS.contains(&text.as_ref()) || RUN_FILES.contains(&text.as_ref());
            if !runs && !self.path.join(&name).exists() {
                std::fs::rename(entry.path(), self.path.join(&name)).ok();
            }
        }
    }
}

/// [`write_atomic`] into a folder that must exist: a run's directory deleted while it trains is a
/// `No such file or directory` error, never silently made again.
///
/// # Errors
/// A missing folder, or what [`write_atomic`] returns.
pub fn write_into_existing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !folder.is_dir()
    {
        let why = if folder.exists() {
            "is not a directory"
        } else {
            "is gone (No such file or directory)"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} {why}", folder.display()),
        ));
    }
    write_atomic(path, bytes)
}

/// The kernel choices in the file at `path` (a run's `kernels.json`).
///
/// # Errors
/// `cannot read <path>: <OS error>`, or `<path> is not a record of kernel choices (<why>)`.
pub fn read_kernel_choices(path: &Path) -> Result<KernelChoices, String> {
    // Bytes, not text: a damaged record whose bytes are no longer UTF-8 (the shape classes hold
    // `×`) is not a record, which the parser says, rather than a file that cannot be read.
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a record of kernel choices ({e})", path.display()))
}

/// Removes the directory `path` and everything in it.
fn remove_all(path: &Path) -> Result<(), String> {
    std::fs::remove_dir_all(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn a_record_cut_inside_a_character_is_not_a_record_of_kernel_choices() {
        let dir = temp();
        let path = dir.path().join(KERNELS);
        let record = "{\"gemm general: m≤8 k≤8 n≤8, a rows, b rows\": \"gemm\"}".as_bytes();
        let inside = record.iter().position(|&b| b >= 0x80).unwrap() + 1;
        std::fs::write(&path, &record[..inside]).unwrap();
        let error = read_kernel_choices(&path).unwrap_err();
        let expected = format!("{} is not a record of kernel choices (", path.display());
        assert!(error.starts_with(&expected), "{error}");
    }

    #[test]
    fn only_checkpoints_with_all_three_records_count() {
        let dir = temp();
        let run = RunDir::new(dir.path());
        assert!(!run.holds_run());
        std::fs::create_dir_all(run.checkpoints()).unwrap();
        for (kind, epoch) in [
            ("model", 1),
            ("optim", 1),
            ("scheduler", 1),
            ("model", 2),
            ("optim", 2),
            ("model", 3),
            ("optim", 3),
            ("scheduler", 3),
        ] {
            std::fs::write(run.checkpoint_file(kind, epoch), b"x").unwrap();
        }
        std::fs::write(run.checkpoints().join(".partial-scheduler-2.mpk"), b"x").unwrap();
        assert_eq!(run.complete_checkpoints(), vec![1, 3]);
        assert!(run.holds_run());
    }

    #[test]
    fn taking_over_removes_what_a_killed_run_left_half_written() {
        let dir = temp();
        let run = RunDir::new(dir.path().join("run"));
        run.take_over(false, &serde_json::json!({"a": 1})).unwrap();
        std::fs::create_dir_all(run.checkpoints()).unwrap();
        let half_written = [
            partial_path(&run.join(PLOT)),
            partial_path(&run.join(CSV)),
            partial_path(&run.model_file()),
            run.checkpoints().join(".partial-optim-2.mpk"),
        ];
        for path in &half_written {
            std::fs::write(path, b"half").unwrap();
        }
        std::fs::write(run.join(".partial-notes.txt"), b"the user's").unwrap();
        run.take_over(false, &serde_json::json!({"a": 1})).unwrap();
        for path in &half_written {
            assert!(!path.exists(), "{} left behind", path.display());
        }
        assert!(run.join(".partial-notes.txt").is_file());
    }

    #[test]
    fn taking_over_clears_only_when_asked_and_keeps_other_files() {
        let dir = temp();
        let run = RunDir::new(dir.path().join("run"));
        run.take_over(false, &serde_json::json!({"a": 1})).unwrap();
        std::fs::create_dir_all(run.checkpoints()).unwrap();
        std::fs::write(run.checkpoint_file("model", 1), b"x").unwrap();
        std::fs::write(run.model_file(), b"x").unwrap();
        std::fs::create_dir_all(run.join("token-cache")).unwrap();
        run.take_over(false, &serde_json::json!({"a": 2})).unwrap();
        assert!(run.model_file().is_file());
        run.take_over(true, &serde_json::json!({"a": 3})).unwrap();
        assert!(!run.model_file().exists() && !run.checkpoints().exists());
        assert!(run.join("token-cache").is_dir());
        let settings: serde_json::Value = run.read_settings().unwrap();
        assert_eq!(settings["a"], 3);
    }

    #[test]
    fn a_staged_run_replaces_the_run_here_or_takes_the_place_of_none() {
        let dir = temp();
        let run = RunDir::new(dir.path().join("run"));
        run.take_over(false, &serde_json::json!({"run": "old"}))
            .unwrap();
        std::fs::write(run.join("notes.txt"), "mine").unwrap();
        let staged = run.staging();
        staged
            .take_over(false, &serde_json::json!({"run": "new"}))
            .unwrap();
        run.replace_with(&staged).unwrap();
        let settings: serde_json::Value = run.read_settings().unwrap();
        assert_eq!(settings["run"], "new");
        assert_eq!(
            std::fs::read_to_string(run.join("notes.txt")).unwrap(),
            "mine"
        );
        // Only the run's directory is left: no staging, no replaced run.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // The earlier run was removed by hand: the staged run simply takes its place.
        std::fs::remove_dir_all(run.path()).unwrap();
        staged
            .take_over(false, &serde_json::json!({"run": "newer"}))
            .unwrap();
        run.replace_with(&staged).unwrap();
        let settings: serde_json::Value = run.read_settings().unwrap();
        assert_eq!(settings["run"], "newer");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
