//! One run's session: its flags checked and resolved, its artifact directory (locked for the
//! run's life), and where it starts: afresh; beside an earlier run with `--overwrite`, replacing
//! it once finished; or after a checkpoint with `--resume`, in training or in the phases after it.
//!
//! Everything a [`Session`] does is here: this file opens it; [`fit`] trains through Burn's
//! `LearnerBuilder`; [`placement`] says where its replicas train and on which share of the data.

pub mod fit;
mod kernels;
pub mod placement;

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::kernels::KernelPlan;
use crate::harness::error::HarnessError;
use crate::harness::flags::TrainArgs;
use crate::harness::node::Node;
use crate::harness::settings::{RunSettings, TaskDefaults, TaskOptions};
use crate::run_dir::{DirLock, RESULTS, RunDir};
use crate::schedule::{Decay, Schedule, ScheduleKind};

/// The smallest learning rate a run accepts.
const MIN_LEARNING_RATE: f64 = 1e-12;

/// One training run: its settings, its artifact directory, and where it starts.
#[derive(Clone, Debug)]
pub struct Session {
    pub(super) settings: RunSettings,
    /// The artifact directory.
    pub(super) run_dir: RunDir,
    /// Where the run trains: `run_dir`, or its staging directory when it replaces an earlier
    /// run there (`--overwrite`) and has not finished.
    pub(super) work_dir: RunDir,
    /// Held for the session's life: one run per directory.
    _lock: Arc<DirLock>,
    pub(super) start: Start,
    /// `--resume-with-new-data`: continue although the data changed.
    pub(super) accept_new_data: bool,
    pub(super) stop_after: usize,
    pub(super) plain: bool,
    pub(super) gradient_histogram: usize,
    pub(super) title: String,
    pub(super) node: Node,
    /// How the CPU kernels are chosen (`--kernels`).
    kernels: KernelPlan,
}

/// How a session begins in its working directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Start {
    /// A new run; `clear`: what an earlier run left in the working directory goes first.
    Fresh { clear: bool },
    /// `--resume` after the checkpoint of `epoch` (0: none was complete; the run starts over).
    Resume { epoch: usize },
    /// `--resume` of a run that trained all its `epochs` and saved its model, but was stopped
    /// in a phase after training (test evaluation, translation): that phase runs again.
    Trained { epochs: usize },
}

impl Start {
    /// Epochs already trained.
    pub(super) fn epoch(self) -> usize {
        match self {
            Self::Fresh { .. } => 0,
            Self::Resume { epoch } => epoch,
            Self::Trained { epochs } => epochs,
        }
    }
}

impl Session {
    /// Resolves `args` against the task's `defaults` and `task_options` (the task's own flags
    /// that shape its model or data, recorded in `run.json`), checks every flag, and decides
    /// where the run starts: afresh, or with `--resume` after the last complete checkpoint.
    ///
    /// Nothing in the artifact directory is touched here: [`fit`](Self::fit) takes it over only
    /// once the data, the backend and the model are ready.
    ///
    /// # Errors
    /// Unusable flag values; a directory in use by another run; a directory that holds an
    /// earlier run without `--resume` or `--overwrite`; `--resume` without a run, or with
    /// settings that differ from the interrupted run's.
    pub fn open(
        args: &TrainArgs,
        defaults: &TaskDefaults,
        task_options: TaskOptions,
    ) -> Result<Self, HarnessError> {
        let settings = RunSettings::resolve(args, defaults, task_options);
        let kernels = KernelPlan::of(&args.kernels)?;
        let node = Node::join(args.nodes, args.devices)?;
        if args.gradient_histogram > 0 && args.devices > 1 {
            return Err(HarnessError::Invalid(
                "--gradient-histogram records one replica's updates: use it with --devices 1"
                    .to_string(),
            ));
        }
        if settings.epochs == 0 || settings.batch_size == 0 {
            return Err(HarnessError::Invalid(
                "--epochs and --batch-size must be at least 1".to_string(),
            ));
        }
        if let Some(ratio) = settings.warmup_ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            return Err(HarnessError::Invalid(format!(
                "--warmup-ratio {ratio} must lie in [0, 1]"
            )));
        }
        // Validates the learning rate and the optimizer's hyper-parameters up front.
        Schedule::new(settings.lr, settings.warmup, Decay::Constant)
            .map_err(HarnessError::Invalid)?;
        // An update of about lr is lost in an f32 weight w when lr < 2^-24·|w|: below 1e-12
        // even weights of 1e-5 never change.
        if settings.lr < MIN_LEARNING_RATE {
            return Err(HarnessError::Invalid(format!(
                "--lr {:e} cannot train: updates below {MIN_LEARNING_RATE:e} vanish in f32 weights",
                settings.lr
            )));
        }
        settings
            .optimizer
            .validate()
            .map_err(HarnessError::Invalid)?;
        if let Some(dir) = &settings.data_dir
            && !dir.is_dir()
        {
            return Err(HarnessError::Invalid(format!(
                "--data-dir {}: no such directory",
                dir.display()
            )));
        }
        let stop_after = match args.stop_after {
            Some(0) => {
                return Err(HarnessError::Invalid(
                    "--stop-after must be at least 1".to_string(),
                ));
            }
            Some(epoch) if epoch > settings.epochs => {
                return Err(HarnessError::Invalid(format!(
                    "--stop-after {epoch} is beyond the run's {} epochs (--epochs)",
                    settings.epochs
                )));
            }
            Some(epoch) => epoch,
            None => settings.epochs,
        };
        let resume = args.resume || args.resume_with_new_data;
        if resume && args.overwrite {
            return Err(HarnessError::Invalid(
                "--resume continues the run in the artifact directory, --overwrite replaces it: \
                 choose one"
                    .to_string(),
            ));
        }
        let mut dir = args.artifact_dir.clone().unwrap_or_else(|| {
            PathBuf::from("artifacts").join(format!(
                "{}-{}",
                defaults.name,
                format!("{:?}", args.optimizer).to_lowercase()
            ))
        });
        // Every node keeps its own checkpoints; node 0's are the run's.
        if node.rank > 0 {
            dir = dir.join(format!("node-{}", node.rank));
        }
        let run_dir = RunDir::new(dir);
        let lock = DirLock::acquire(run_dir.path()).map_err(HarnessError::Invalid)?;
        run_dir.recover().map_err(HarnessError::Io)?;
        let (work_dir, start) = Self::starting_point(&run_dir, &settings, resume, args.overwrite)?;
        if let Start::Resume { epoch } = start
            && epoch > 0
            && epoch >= stop_after
            && epoch < settings.epochs
        {
            return Err(HarnessError::Invalid(format!(
                "--stop-after {stop_after} is not after the checkpoint of epoch {epoch}"
            )));
        }
        let replicas = if settings.replicas() > 1 {
            format!(" × {}", settings.replicas())
        } else {
            String::new()
        };
        let title = format!(
            "{} · {} lr {} · {}{replicas}",
            defaults.name,
            settings.optimizer.label(),
            settings.lr,
            settings.backend.name()
        );
        Ok(Self {
            settings,
            run_dir,
            work_dir,
            _lock: Arc::new(lock),
            start,
            accept_new_data: args.resume_with_new_data,
            stop_after,
            plain: args.plain || !std::io::stdout().is_terminal(),
            gradient_histogram: args.gradient_histogram,
            kernels,
            title,
            node,
        })
    }

    /// Where the run trains (the artifact directory `run_dir`, or its staging directory when
    /// `--overwrite` replaces an earlier run) and how it starts there. With `resume`, an
    /// interrupted `--overwrite` run is the one continued, and it replaces the earlier run as
    /// soon as it has a complete checkpoint.
    fn starting_point(
        run_dir: &RunDir,
        settings: &RunSettings,
        resume: bool,
        overwrite: bool,
    ) -> Result<(RunDir, Start), HarnessError> {
        let staging = run_dir.staging();
        if resume {
            if !staging.holds_run() {
                return Ok((run_dir.clone(), Self::resume_point(run_dir, settings)?));
            }
            let start = Self::resume_point(&staging, settings)?;
            if start.epoch() == 0 {
                return Ok((staging, start));
            }
            println!(
                "note: the --overwrite run in {staging} has a complete checkpoint: it replaces \
                 the earlier run in {run_dir} now"
            );
            run_dir.replace_with(&staging).map_err(HarnessError::Io)?;
            return Ok((run_dir.clone(), start));
        }
        if !run_dir.holds_run() && !staging.holds_run() {
            return Ok((run_dir.clone(), Start::Fresh { clear: false }));
        }
        if !overwrite {
            let unfinished = if staging.holds_run() {
                format!(" (and an unfinished --overwrite run in {staging})")
            } else {
                String::new()
            };
            return Err(HarnessError::Invalid(format!(
                "{run_dir} holds an earlier run{unfinished}: continue it with --resume, replace \
                 it with --overwrite, or choose another --artifact-dir"
            )));
        }
        if !run_dir.holds_run() {
            // Only an abandoned --overwrite run is there: nothing to keep.
            return Ok((run_dir.clone(), Start::Fresh { clear: false }));
        }
        if settings.nodes > 1 {
            // Every node's directory lies inside node 0's, and each node would finish its swap
            // at its own moment: none of them can replace the earlier run safely.
            return Err(HarnessError::Invalid(format!(
                "--overwrite cannot replace the earlier run in {run_dir} in a run of {} nodes: \
                 remove that directory yourself, or choose another --artifact-dir",
                settings.nodes
            )));
        }
        // The earlier run stays untouched until the new one has finished.
        Ok((staging, Start::Fresh { clear: true }))
    }

    /// Where `--resume` continues the run in `dir`: after its last complete checkpoint, or from
    /// the start when it was interrupted before its first (there is nothing to lose).
    fn resume_point(dir: &RunDir, settings: &RunSettings) -> Result<Start, HarnessError> {
        if !dir.holds_run() {
            return Err(HarnessError::Resume(format!(
                "nothing to resume in {dir}: it holds no run"
            )));
        }
        let saved: RunSettings = dir
            .read_settings()
            .map_err(|e| HarnessError::Resume(format!("cannot resume {dir}: {e}")))?;
        let mut comparable = saved.clone();
        comparable.epochs = settings.epochs;
        // The data is compared once it is loaded (`fit`).
        comparable.data = settings.data.clone();
        if comparable != *settings {
            let mut saved = saved.clone();
            saved.data = settings.data.clone();
            return Err(HarnessError::Resume(format!(
                "cannot resume {dir}: it was trained with different settings ({}); start a new \
                 run with --overwrite or another --artifact-dir",
                saved.differences(settings).join(", ")
            )));
        }
        let last = dir.complete_checkpoints().last().copied().unwrap_or(0);
        if last > settings.epochs {
            return Err(HarnessError::Resume(format!(
                "cannot resume {dir} with --epochs {}: it already trained {last} epochs",
                settings.epochs
            )));
        }
        if last == settings.epochs && dir.model_file().is_file() {
            if dir.join(RESULTS).is_file() {
                return Err(HarnessError::Resume(format!(
                    "the run in {dir} already finished {last} of {} epochs; ask for more with \
                     --epochs",
                    settings.epochs
                )));
            }
            println!("note: {dir} finished training but not what follows it: it continues there");
            return Ok(Start::Trained { epochs: last });
        }
        if saved.epochs != settings.epochs && settings.schedule != ScheduleKind::Constant {
            println!(
                "note: --epochs changed from {} to {}: the {:?} schedule is stretched to the new length",
                saved.epochs, settings.epochs, settings.schedule
            );
        }
        if last == 0 {
            println!(
                "note: {dir} holds no complete checkpoint yet: its run starts over from the first epoch"
            );
        }
        Ok(Start::Resume { epoch: last })
    }

    /// The resolved settings.
    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    /// The artifact directory. (Until an `--overwrite` run has finished training, it trains in
    /// a staging directory beside it; everything after training is written here.)
    pub fn dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// Epochs already trained (the checkpoint a resumed run starts from; 0 for a new run).
    pub fn start_epoch(&self) -> usize {
        self.start.epoch()
    }

    /// The path of the final model (`model.mpk`).
    pub fn model_path(&self) -> PathBuf {
        self.run_dir.model_file()
    }

    /// Prints a line of progress outside the Learner (data preparation, evaluation); in a
    /// multi-node run only node 0 speaks.
    pub fn say(&self, text: impl fmt::Display) {
        if self.node.rank == 0 {
            println!("{text}");
        }
    }

    /// This process's rank in a multi-node run (0 otherwise).
    pub fn node_rank(&self) -> usize {
        self.node.rank
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings(flags: &[&str]) -> RunSettings {
        let args = crate::tasks::cifar::CifarArgs::try_parse_from(
            std::iter::once("cifar_resnet").chain(flags.iter().copied()),
        )
        .unwrap();
        let defaults = crate::tasks::cifar::defaults(args.train.size);
        RunSettings::resolve(&args.train, &defaults, TaskOptions::new())
    }

    #[test]
    fn an_earlier_run_is_replaced_from_beside_it_and_never_across_nodes() {
        let temp = tempfile::tempdir().unwrap();
        let run_dir = RunDir::new(temp.path().join("run"));
        let one = settings(&[]);
        let fresh = Start::Fresh { clear: false };
        assert_eq!(
            Session::starting_point(&run_dir, &one, false, true).unwrap(),
            (run_dir.clone(), fresh)
        );
        run_dir.take_over(false, &one).unwrap();
        let error = Session::starting_point(&run_dir, &one, false, false).unwrap_err();
        assert!(
            error.to_string().contains(" holds an earlier run: "),
            "{error}"
        );
        assert_eq!(
            Session::starting_point(&run_dir, &one, false, true).unwrap(),
            (run_dir.staging(), Start::Fresh { clear: true })
        );
        let two_nodes = settings(&["--nodes", "2"]);
        assert_eq!(
            Session::starting_point(&run_dir, &two_nodes, false, true)
                .unwrap_err()
                .to_string(),
            format!(
                "--overwrite cannot replace the earlier run in {run_dir} in a run of 2 nodes: \
                 remove that directory yourself, or choose another --artifact-dir"
            )
        );
    }
}
