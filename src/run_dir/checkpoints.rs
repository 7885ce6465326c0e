//! A run's checkpoints: which ones to keep while it trains, and the checks before `--resume`
//! loads one (its checksum, that it reads, that it fits the model, the optimizer and the
//! schedule shape for shape), so that resuming can end neither in a panic inside the Learner nor
//! in training on a corrupted or mismatched state.

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::Optimizer;
use burn::optim::lr_scheduler::LrScheduler;
use burn::record::{Recorder, RecorderError};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::checkpoint::{CheckpointingAction, CheckpointingStrategy};
use burn::train::metric::store::EventStoreClient;

use super::RunDir;
use super::checksum::{self, Integrity};
use super::recorder::{RunRecorder, WriteFailures};

/// Keeps the last `keep` complete checkpoints of a run, deleting older ones itself (errors go to
/// the run's [`WriteFailures`] instead of a panic in Burn's checkpointer), and saves nothing more
/// once a write has failed.
pub struct KeepLastCheckpoints {
    dir: RunDir,
    keep: usize,
    failures: WriteFailures,
}

impl KeepLastCheckpoints {
    /// Keeps the last `keep` (at least 1) checkpoints in `dir`.
    pub fn new(dir: RunDir, keep: usize, failures: WriteFailures) -> Self {
        Self {
            dir,
            keep: keep.max(1),
            failures,
        }
    }
}

impl CheckpointingStrategy for KeepLastCheckpoints {
    fn checkpointing(
        &mut self,
        epoch: usize,
        _store: &EventStoreClient,
    ) -> Vec<CheckpointingAction> {
        self.at_end_of(epoch)
    }
}

impl KeepLastCheckpoints {
    /// What to do at the end of `epoch`: remove the checkpoints beyond the last `keep`, then
    /// save this one; nothing once a write has failed.
    fn at_end_of(&mut self, epoch: usize) -> Vec<CheckpointingAction> {
        if self.failures.first().is_some() {
            return Vec::new();
        }
        // This epoch's checkpoint is still to be written: an older one goes only while
        // `keep - 1` complete checkpoints newer than it remain, so a failed save always leaves
        // the last complete checkpoint in place.
        let complete = self.dir.complete_checkpoints();
        let older: Vec<usize> = complete.into_iter().filter(|&e| e < epoch).collect();
        let surplus = older.len().saturating_sub(self.keep - 1);
        for &old in &older[..surplus] {
            if let Err(message) = self.dir.remove_checkpoint(old) {
                self.failures.report(message);
                return Vec::new();
            }
        }
        vec![CheckpointingAction::Save]
    }
}

/// Checks that the checkpoint of `epoch` in `dir` is intact (its checksum), can be read and fits
/// `model` (every parameter's shape), `optimizer` and `scheduler`, so that resuming from it can
/// end neither in a panic inside the Learner nor in a silently wrong state.
///
/// # Errors
/// `checkpoint <file> is corrupt (hash mismatch …)`, `… is unreadable (…)` or `… does not fit
/// this run's model (…)`, pointing at the previous complete checkpoint when there is one.
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
    for kind in ["optim", "scheduler"] {
        integrity_problem(&dir.checkpoint_file(kind, epoch))
            .map_or(Ok(()), |problem| Err(failure(kind, problem)))?;
    }
    let load = |kind: &str| dir.checkpoint_record(kind, epoch);

    load_module(model.clone(), load("model"), device).map_err(|p| failure("model", p))?;
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

/// Loads the model saved at `path` (without its extension) into `model`, once its checksum
/// holds and every tensor has the shape of `model`'s.
///
/// # Errors
/// `model <file> is corrupt (…)`, `… is unreadable (…)` or `… does not fit this run's model (…)`.
pub fn load_model_checked<B: Backend, M: Module<B>>(
    model: M,
    path: &Path,
    device: &B::Device,
) -> Result<M, String> {
    let file = path.with_extension("mpk");
    load_module(model, path.to_path_buf(), device)
        .map_err(|problem| format!("model {} {problem}", file.display()))
}

/// `model` with the record at `path` (without its extension) loaded, or what is wrong with the
/// record: `is corrupt (…)`, `is unreadable (…)`, `does not fit this run's model (…)`.
fn load_module<B: Backend, M: Module<B>>(
    model: M,
    path: PathBuf,
    device: &B::Device,
) -> Result<M, String> {
    if let Some(problem) = integrity_problem(&path.with_extension("mpk")) {
        return Err(problem);
    }
    let record: M::Record = Recorder::<B>::load(&RunRecorder::default(), path, device)
        .map_err(|e| format!("is unreadable ({})", one_line(&e)))?;
    let loaded = quietly(|| model.clone().load_record(record))
        .map_err(|e| format!("does not fit this run's model ({e})"))?;
    match shape_mismatch(&model, &loaded) {
        Some(mismatch) => Err(format!("does not fit this run's model ({mismatch})")),
        None => Ok(loaded),
    }
}

/// Why the file at `path` must not be loaded (its content is not what was written), if so.
pub fn integrity_problem(path: &Path) -> Option<String> {
    match checksum::check(path) {
        Ok(Integrity::Intact | Integrity::Unrecorded) => None,
        Ok(Integrity::Corrupt { recorded, actual }) => Some(format!(
            "is corrupt (hash mismatch: written as sha256 {}…, now {}…)",
            &recorded[..12],
            &actual[..12]
        )),
        Err(error) => Some(format!("cannot be checked ({error})")),
    }
}

/// The first parameter whose shape differs between `expected` and `loaded`, as
/// `parameter N: saved [..], model [..]`.
fn shape_mismatch<B: Backend, M: Module<B>>(expected: &M, loaded: &M) -> Option<String> {
    let (expected, loaded) = (shapes(expected), shapes(loaded));
    if expected.len() != loaded.len() {
        return Some(format!(
            "{} tensors saved, {} in the model",
            loaded.len(),
            expected.len()
        ));
    }
    expected
        .iter()
        .zip(&loaded)
        .position(|(a, b)| a != b)
        .map(|index| {
            format!(
                "tensor {index}: saved {:?}, this run's model {:?}",
                loaded[index], expected[index]
            )
        })
}

/// The shape of every float tensor of `module`, in visiting order.
fn shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<Vec<usize>> {
    struct Shapes(Vec<Vec<usize>>);
    impl<B: Backend> ModuleVisitor<B> for Shapes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.val().shape().dims.to_vec());
        }
    }
    let mut visitor = Shapes(Vec::new());
    module.visit(&mut visitor);
    visitor.0
}

/// A recorder error on one line (Burn's messages span several).
pub(crate) fn one_line(error: &RecorderError) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::CHECKPOINT_KINDS;
    use burn::backend::NdArray;
    use burn::nn::{Linear, LinearConfig};

    #[test]
    fn a_model_of_another_shape_is_named_by_its_first_differing_tensor() {
        let device = Default::default();
        let small: Linear<NdArray> = LinearConfig::new(3, 2).init(&device);
        let wide: Linear<NdArray> = LinearConfig::new(3, 5).init(&device);
        assert_eq!(shape_mismatch(&small, &small.clone()), None);
        // Burn's load_record takes a record of another shape without a word.
        let loaded = small.clone().load_record(wide.into_record());
        assert_eq!(
            shape_mismatch(&small, &loaded).unwrap(),
            "tensor 0: saved [3, 5], this run's model [3, 2]"
        );
    }

    #[test]
    fn only_the_last_complete_checkpoints_are_kept_and_nothing_after_a_failure() {
        let temp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(temp.path());
        std::fs::create_dir_all(dir.checkpoints()).unwrap();
        let write = |epoch: usize| {
            for kind in CHECKPOINT_KINDS {
                let file = dir.checkpoint_file(kind, epoch);
                std::fs::write(&file, b"x").unwrap();
                checksum::record(&file, b"x").unwrap();
            }
        };
        let failures = WriteFailures::default();
        let mut strategy = KeepLastCheckpoints::new(dir.clone(), 2, failures.clone());
        for epoch in 1..=4 {
            let actions = strategy.at_end_of(epoch);
            assert_eq!(actions, vec![CheckpointingAction::Save], "epoch {epoch}");
            write(epoch);
        }
        assert_eq!(dir.complete_checkpoints(), vec![3, 4]);
        assert!(!checksum::sidecar(&dir.checkpoint_file("optim", 2)).exists());
        // Epoch 5's save is still to come: epoch 4 stays whatever happens to it.
        strategy.at_end_of(5);
        assert_eq!(dir.complete_checkpoints(), vec![4]);
        failures.report("cannot write x: No space left on device".to_string());
        assert!(strategy.at_end_of(6).is_empty());
        assert_eq!(dir.complete_checkpoints(), vec![4]);
    }
}
