//! A run's artifact directory: what an earlier run left there, when a new run may take it over
//! (never by accident), where `--resume` continues, and the atomic writes that keep every file
//! in it whole when a run is killed.
//!
//! Nothing here touches a directory until [`RunDir::take_over`] is called, which the harness does
//! only after every flag, the data and the backend have been checked.

use std::fmt;
use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::optim::lr_scheduler::LrScheduler;
use burn::record::{FileRecorder, Recorder, RecorderError};
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use radam_datasets::files::{replace_atomic, write_atomic};

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
/// Burn's checkpoint folder.
pub const CHECKPOINTS: &str = "checkpoint";
/// The three records of one epoch's checkpoint, as Burn's file checkpointer names them.
const CHECKPOINT_KINDS: [&str; 3] = ["model", "optim", "scheduler"];
/// A Burn file recorder whose files appear only once complete ([`write_atomic`]'s rename), so a
/// run killed while it saves a checkpoint or the model never leaves a truncated record behind.
/// Reading is the wrapped recorder's.
#[derive(Clone, Debug, Default)]
pub struct AtomicRecorder<R> {
    inner: R,
}

impl<R> AtomicRecorder<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner }
    }
}

impl<B: Backend, R: FileRecorder<B>> Recorder<B> for AtomicRecorder<R> {
    type Settings = <R as Recorder<B>>::Settings;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, mut path: PathBuf) -> Result<(), RecorderError> {
        path.set_extension(<R as FileRecorder<B>>::file_extension());
        replace_atomic(&path, |partial| {
            // The wrapped recorder sets the extension itself: hand it the name without one.
            self.inner
                .save_item(item, partial.with_extension(""))
                .map_err(|error| std::io::Error::other(error.to_string()))?;
            std::fs::File::open(partial)?.sync_all()
        })
        .map_err(|error| RecorderError::Unknown(error.to_string()))
    }

    fn load_item<I: DeserializeOwned>(&self, path: &mut PathBuf) -> Result<I, RecorderError> {
        self.inner.load_item(path)
    }
}

impl<B: Backend, R: FileRecorder<B>> FileRecorder<B> for AtomicRecorder<R> {
    fn file_extension() -> &'static str {
        <R as FileRecorder<B>>::file_extension()
    }
}

/// The recorder of every checkpoint and of the final model: full precision (RAdam's second
/// moments need it), written atomically.
pub type RunRecorder = AtomicRecorder<burn::record::DefaultRecorder>;

/// Checks that the checkpoint of `epoch` in `dir` can be read and fits `model`, `optimizer`
/// and `scheduler`, so that resuming from it cannot end in a panic inside the Learner.
///
/// # Errors
/// `checkpoint <file> is unreadable (…)` or `… does not fit this run's model (…)`, pointing at
/// the previous complete checkpoint when there is one.
pub fn verify_checkpoint<B, M, O, S>(
    dir: &RunDir,
    epoch: usize,
    model: &M,
    optimizer: &O,
    scheduler: &S,
    device: &B::Device,
) -> Result<(), String>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B> + Clone,
    S: LrScheduler + Clone,
{
    let recorder = RunRecorder::default();
    let failure = |kind: &str, problem: String| {
        let file = dir.checkpoint_file(kind, epoch);
        let earlier = dir
            .complete_checkpoints()
            .into_iter()
            .filter(|&earlier| earlier < epoch)
            .max();
        let hint = match earlier {
            Some(earlier) => format!(
                "; the checkpoint of epoch {earlier} is complete: remove {}/*-{epoch}.mpk and \
                 --resume again to continue from it",
                dir.checkpoints().display()
            ),
            None => String::new(),
        };
        format!("checkpoint {} {problem}{hint}", file.display())
    };
    let load = |kind: &str| dir.checkpoint_record(kind, epoch);

    let record: M::Record = Recorder::<B>::load(&recorder, load("model"), device)
        .map_err(|e| failure("model", format!("is unreadable ({})", one_line(&e))))?;
    quietly(|| model.clone().load_record(record))
        .map_err(|e| failure("model", format!("does not fit this run's model ({e})")))?;
    let record: O::Record = Recorder::<B>::load(&recorder, load("optim"), device)
        .map_err(|e| failure("optim", format!("is unreadable ({})", one_line(&e))))?;
    quietly(|| optimizer.clone().load_record(record))
        .map_err(|e| failure("optim", format!("does not fit this run's optimizer ({e})")))?;
    let record: S::Record<B> = Recorder::<B>::load(&recorder, load("scheduler"), device)
        .map_err(|e| failure("scheduler", format!("is unreadable ({})", one_line(&e))))?;
    quietly(|| scheduler.clone().load_record::<B>(record)).map_err(|e| {
        failure(
            "scheduler",
            format!("does not fit this run's schedule ({e})"),
        )
    })?;
    Ok(())
}

/// A recorder error on one line (Burn's messages span several).
fn one_line(error: &RecorderError) -> String {
    let text = match error {
        RecorderError::FileNotFound(message)
        | RecorderError::DeserializeError(message)
        | RecorderError::Unknown(message) => message.clone(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs `work`, turning a panic into its message, without printing it.
fn quietly<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    std::panic::set_hook(hook);
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

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
            for sub in [CHECKPOINTS, "train", "valid"] {
                let path = self.join(sub);
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                        .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
                }
            }
            let model = format!("{MODEL}.mpk");
            for file in [
                CSV,
                PLOT,
                model.as_str(),
                "experiment.log",
                GRADIENT_HISTOGRAM,
            ] {
                let path = self.join(file);
                if path.is_file() {
                    std::fs::remove_file(&path)
                        .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
                }
            }
        }
        std::fs::create_dir_all(&self.path)
            .map_err(|e| format!("cannot create {}: {e}", self.path.display()))?;
        self.write_settings(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn the_atomic_recorder_writes_what_the_default_recorder_reads() {
        let dir = temp();
        let device = Default::default();
        let model: Linear<NdArray> = LinearConfig::new(3, 2).init(&device);
        let path = dir.path().join("model-1");
        model
            .clone()
            .save_file(&path, &RunRecorder::default())
            .unwrap();
        assert!(dir.path().join("model-1.mpk").is_file());
        assert!(!dir.path().join(".partial-model-1.mpk").exists());
        let fresh: Linear<NdArray> = LinearConfig::new(3, 2).init(&device);
        let loaded = fresh
            .load_file(&path, &burn::record::DefaultRecorder::new(), &device)
            .unwrap();
        assert_eq!(
            loaded.weight.val().into_data(),
            model.weight.val().into_data()
        );
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
}
