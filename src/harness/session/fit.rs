//! The one `LearnerBuilder` set-up every task trains through: optimizer and schedule, DDP across
//! local devices and gradient averaging across nodes, checkpoints (the last two kept) and resume
//! (on the same data only), the renderer, the divergence guard, every write checked, and the CSV,
//! plot and model a run leaves.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::data::dataloader::DataLoader;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::{ItemLazy, LearningRateMetric};
use burn::train::renderer::MetricsRenderer;
use burn::train::renderer::tui::TuiMetricsRenderer;
use burn::train::{Interrupter, LearnerBuilder, LearningStrategy, TrainStep, ValidStep};

use super::{Session, Start};
use crate::distributed::{DataParallel, broadcast_model, fingerprint_bytes};
use crate::harness::data_fingerprint::DataFingerprint;
use crate::harness::divergence::DivergenceGuard;
use crate::harness::error::HarnessError;
use crate::harness::gradient_histogram::GradientLog;
use crate::harness::history::{EpochCallback, History, RecordingRenderer};
use crate::harness::optimizer_choice::{AnyOptimizer, OptimizerKind};
use crate::harness::rectification_metric::RectificationMetric;
use crate::harness::settings::RunSettings;
use crate::harness::training_curves::plot_history;
use crate::renderer::{PlainRenderer, QuietRenderer};
use crate::run_dir::checkpoints::{load_model_checked, one_line};
use crate::run_dir::{
    CSV, GRADIENT_HISTOGRAM, KeepLastCheckpoints, MODEL, PLOT, RunRecorder, WriteFailures,
    replace_atomic, verify_checkpoint, write_into_existing,
};
use crate::schedule::Schedule;

/// The `LearnerBuilder` a task adds its metrics to in [`Session::fit`].
pub type RunLearnerBuilder<B, M, TI, VI, TO, VO> =
    LearnerBuilder<B, M, DataParallel<AnyOptimizer<M, B>>, Schedule, TI, VI, TO, VO>;

/// A task's training and validation data for [`Session::fit`].
pub struct TrainingData<B: AutodiffBackend, TI, VI> {
    /// The training batches (this process's share of them: see [`Session::shard`]).
    pub train: Arc<dyn DataLoader<B, TI>>,
    /// The validation batches.
    pub valid: Arc<dyn DataLoader<B::InnerBackend, VI>>,
    /// Optimizer steps in one epoch of `train` (per replica).
    pub steps_per_epoch: usize,
    /// What the data was read from: recorded in `run.json`, compared by `--resume`.
    pub fingerprint: DataFingerprint,
}

/// Checkpoints kept in `checkpoint/`: the last two complete ones.
const CHECKPOINTS_KEPT: usize = 2;

/// What a finished run gives back.
pub struct TrainedRun<M> {
    /// The trained model (without autodiff).
    pub model: M,
    /// Every epoch's metrics, including those of an interrupted run this one resumed.
    pub history: History,
    /// Training time of this process (excluding data preparation).
    pub wall_time: Duration,
    /// Optimizer steps of the whole run (`--epochs` × steps per epoch).
    pub steps: usize,
}

impl Session {
    /// Trains `model` with the run's optimizer and schedule through Burn's `LearnerBuilder`:
    /// loss, learning rate and (for RAdam) r_t plus the task's `metrics`; a checkpoint every
    /// epoch (the last two kept, each with its SHA-256); resume from the last one, on the same
    /// data only; the CSV and the plot after every epoch; the final model saved as `model.mpk`.
    /// A run that replaces an earlier one (`--overwrite`) trains beside it and takes its place
    /// only here, once its model is saved. A run resumed after its training returns the saved
    /// model at once.
    ///
    /// A resumed run continues the data order exactly when the training loader shuffles with a
    /// seed: the loader is advanced past the epochs already trained.
    ///
    /// With several `devices` it trains one replica per device through Burn's DDP (the
    /// training loader is cut into one contiguous slice per device: build it from
    /// [`shard`](Self::shard)); in a multi-node run every node starts from node 0's weights
    /// and averages its gradients with the other nodes' before every step.
    ///
    /// # Errors
    /// No training step, warmup longer than the run, an unusable optimizer setting, a run that
    /// cannot learn, data changed since the run started, a checkpoint that cannot be resumed
    /// (corrupt, unreadable or of another shape), a write that failed (the run stops; its last
    /// complete checkpoint stays usable), a loss that stopped being finite.
    pub fn fit<B, M, TI, VI, TO, VO>(
        &self,
        devices: Vec<B::Device>,
        model: M,
        data: TrainingData<B, TI, VI>,
        metrics: impl FnOnce(
            RunLearnerBuilder<B, M, TI, VI, TO, VO>,
        ) -> RunLearnerBuilder<B, M, TI, VI, TO, VO>,
    ) -> Result<TrainedRun<M::InnerModule>, HarnessError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + TrainStep<TI, TO> + fmt::Display + 'static,
        M::InnerModule: ValidStep<VI, VO>,
        TI: Send + 'static,
        VI: Send + 'static,
        TO: ItemLazy + 'static,
        VO: ItemLazy + 'static,
    {
        let settings = &self.settings;
        let start_epoch = self.start.epoch();
        let local_devices = devices.len();
        if local_devices == 0 {
            return Err(HarnessError::Invalid("no device to train on".to_string()));
        }
        let schedule = self.schedule(data.steps_per_epoch, local_devices)?;
        let steps = settings.epochs * data.steps_per_epoch;
        self.check_learnable(steps)?;
        self.check_data(&data.fingerprint)?;
        self.choose_kernels()?;
        if let Start::Trained { .. } = self.start {
            return self.trained_run(model, steps, &devices[0]);
        }
        let optimizer = DataParallel::new(self.optimizer::<B, M>()?, self.node.collective.clone());
        if start_epoch > 0 {
            verify_checkpoint(
                &self.work_dir,
                start_epoch,
                &model,
                &optimizer,
                &schedule,
                &devices[0],
            )
            .map_err(HarnessError::Resume)?;
        }
        let model = self.same_model_on_every_node(model)?;
        // Everything is checked: only now does the run take its directory over.
        let clear = match self.start {
            Start::Fresh { clear } => clear,
            Start::Resume { epoch } => epoch == 0,
            Start::Trained { .. } => false,
        };
        self.discard_abandoned_staging()?;
        let recorded = RunSettings {
            data: Some(data.fingerprint),
            ..settings.clone()
        };
        self.work_dir
            .take_over(clear, &recorded)
            .map_err(HarnessError::Io)?;
        self.work_dir.write_kernels().map_err(HarnessError::Io)?;
        let strategy = if local_devices > 1 {
            burn::train::ddp(devices, burn::collective::CollectiveConfig::default())
        } else {
            LearningStrategy::SingleDevice(devices.into_iter().next().expect("one device"))
        };

        // Epochs already trained drew their shuffles from the loader's generator.
        for _ in 0..start_epoch {
            drop(data.train.iter());
        }
        let history = Arc::new(Mutex::new(self.earlier_history()?));
        let builder = LearnerBuilder::new(self.work_dir.path());
        // Every write of the run reports here instead of panicking inside Burn.
        let failures = WriteFailures::stopping(builder.interrupter());
        let mut builder = builder
            .with_file_checkpointer(RunRecorder::reporting_to(failures.clone()))
            .with_checkpointing_strategy(KeepLastCheckpoints::new(
                self.work_dir.clone(),
                CHECKPOINTS_KEPT,
                failures.clone(),
            ))
            // Burn's file loggers (train/, valid/) panic on a full disk; metrics.csv is the
            // run's record.
            .metric_loggers(
                InMemoryMetricLogger::default(),
                InMemoryMetricLogger::default(),
            )
            .learning_strategy(strategy)
            .num_epochs(self.stop_after)
            .with_application_logger(None)
            .metric_train_numeric(LearningRateMetric::new());
        if settings.optimizer.kind == OptimizerKind::Radam {
            let steps_before = start_epoch * data.steps_per_epoch;
            builder = builder.metric_train_numeric(
                RectificationMetric::new(&settings.optimizer.radam_config(), steps_before)
                    .with_updates_per_step(local_devices),
            );
        }
        builder = metrics(builder);
        let guard = DivergenceGuard::new(builder.interrupter());
        let renderer = RecordingRenderer::new(
            self.renderer(builder.interrupter()),
            history.clone(),
            self.epoch_files(failures.clone()),
        )
        .with_guard(guard.clone());
        builder = builder.renderer(renderer);
        if start_epoch > 0 {
            self.say(format!(
                "resuming {} from epoch {start_epoch} of {}",
                self.work_dir, settings.epochs
            ));
            builder = builder.checkpoint(start_epoch);
        }

        let started = Instant::now();
        let learner = builder.build(model, optimizer, schedule);
        let model = learner.fit(data.train, data.valid).model;
        let wall_time = started.elapsed();
        if local_devices > 1 {
            // Burn's DDP leaves its replicas registered with the process-wide collective
            // server; a second DDP run in this process would be refused (`MultipleRegister`).
            burn::collective::reset_collective::<B::InnerBackend>();
        }
        if let Some(failure) = failures.first() {
            return Err(HarnessError::Io(format!(
                "{failure}; the run stopped: {}",
                self.after_failure()
            )));
        }
        if let Some(divergence) = guard.divergence() {
            let mut message = format!(
                "{divergence} with {} at lr {}: the run was stopped and no model was saved \
                 (try a smaller --lr, or --warmup)",
                settings.optimizer.label(),
                settings.lr
            );
            if self.staged() {
                // Nothing in it is worth resuming: the earlier run stays as it was.
                std::fs::remove_dir_all(self.work_dir.path()).ok();
                message.push_str(&format!(
                    "; the earlier run in {} is untouched",
                    self.run_dir
                ));
            }
            return Err(HarnessError::Diverged(message));
        }

        self.work_dir.write_kernels().map_err(|e| {
            HarnessError::Io(format!("{e}; the run stopped: {}", self.after_failure()))
        })?;
        self.report_kernels();
        burn::module::Module::save_file(
            model.clone(),
            self.work_dir.join(MODEL),
            &RunRecorder::default(),
        )
        .map_err(|e| {
            HarnessError::Io(format!(
                "{}; the run stopped: {}",
                one_line(&e),
                self.after_failure()
            ))
        })?;
        if self.staged() {
            self.run_dir
                .replace_with(&self.work_dir)
                .map_err(HarnessError::Io)?;
        }
        let history = history.lock().expect("history lock poisoned").clone();
        Ok(TrainedRun {
            model,
            history,
            wall_time,
            steps,
        })
    }

    /// The run's learning-rate schedule over `steps_per_epoch` steps an epoch, asked once per
    /// step by each of `local_devices` (Burn's DDP asks every replica).
    fn schedule(
        &self,
        steps_per_epoch: usize,
        local_devices: usize,
    ) -> Result<Schedule, HarnessError> {
        let settings = &self.settings;
        if steps_per_epoch == 0 {
            return Err(HarnessError::Invalid(format!(
                "the training data gives no step: no batch of {} fits in it (fewer items than \
                 the batch size, or every item was left out)",
                settings.batch_size
            )));
        }
        let total_steps = settings.epochs * steps_per_epoch;
        let warmup = settings.warmup_steps(total_steps);
        if warmup > total_steps {
            return Err(HarnessError::Invalid(format!(
                "--warmup {warmup} is longer than the whole run ({} epochs of {steps_per_epoch} \
                 steps = {total_steps} steps): the learning rate would never reach {}",
                settings.epochs, settings.lr
            )));
        }
        Ok(
            Schedule::new(settings.lr, warmup, settings.schedule.decay(total_steps))
                .map_err(HarnessError::Invalid)?
                .with_calls_per_step(local_devices),
        )
    }

    /// The chosen optimizer, logging the first updates' gradients when `--gradient-histogram`
    /// asks (a resumed run keeps the histogram it recorded).
    fn optimizer<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
    ) -> Result<AnyOptimizer<M, B>, HarnessError> {
        let optimizer = self
            .settings
            .optimizer
            .init::<B, M>()
            .map_err(HarnessError::Invalid)?;
        Ok(if self.gradient_histogram > 0 && self.start.epoch() == 0 {
            let path = self.work_dir.join(GRADIENT_HISTOGRAM);
            optimizer.with_gradient_log(GradientLog::new(self.gradient_histogram, &path))
        } else {
            optimizer
        })
    }

    /// `model` as node 0 initialised it, in a multi-node run (the nodes' settings must agree);
    /// `model` itself otherwise.
    fn same_model_on_every_node<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
        model: M,
    ) -> Result<M, HarnessError> {
        let Some(collective) = &self.node.collective else {
            return Ok(model);
        };
        let mut comparable = self.settings.clone();
        comparable.data_dir = None;
        let json = serde_json::to_string(&comparable).expect("settings serialise");
        broadcast_model(
            model,
            fingerprint_bytes(json.as_bytes()),
            collective.as_ref(),
        )
        .map_err(|e| HarnessError::Invalid(e.to_string()))
    }

    /// How the run shows its progress: nothing on nodes other than 0, a line per epoch with
    /// `--plain` (or without a terminal), Burn's dashboard (which stops the run through
    /// `interrupter` on `q`) otherwise.
    fn renderer(&self, interrupter: Interrupter) -> Box<dyn MetricsRenderer> {
        let start_epoch = self.start.epoch();
        if self.node.rank > 0 {
            Box::new(QuietRenderer)
        } else if self.plain {
            Box::new(PlainRenderer::new())
        } else {
            Box::new(TuiMetricsRenderer::new(
                interrupter,
                (start_epoch > 0).then_some(start_epoch),
            ))
        }
    }

    /// What is written after every epoch, each atomically: `metrics.csv` and `curves.png`. A
    /// failed write stops the run through `failures`; a plot that cannot be drawn for another
    /// reason (no fonts) is a warning, since it is drawn from the CSV.
    fn epoch_files(&self, failures: WriteFailures) -> EpochCallback {
        let (csv, png, title, run) = (
            self.work_dir.join(CSV),
            self.work_dir.join(PLOT),
            self.title.clone(),
            self.work_dir.clone(),
        );
        Box::new(move |history: &History| {
            if failures.first().is_some() {
                // The run has stopped on a failed write: nothing more is written.
                return;
            }
            if let Err(error) = write_into_existing(&csv, history.to_csv().as_bytes()) {
                failures.report(format!("cannot write {}: {error}", csv.display()));
                return;
            }
            if let Err(error) = run.write_kernels() {
                failures.report(error);
                return;
            }
            let plotted = replace_atomic(&png, |partial| {
                plot_history(history, &title, partial).map_err(std::io::Error::other)
            });
            if let Err(error) = plotted {
                match os_error(&error) {
                    Some(os) => failures.report(format!("cannot write {}: {os}", png.display())),
                    None => eprintln!("warning: no plot: {error}"),
                }
            }
        })
    }

    /// The epochs an interrupted run recorded before its last checkpoint.
    fn earlier_history(&self) -> Result<History, HarnessError> {
        let path = self.work_dir.join(CSV);
        let start_epoch = self.start.epoch();
        if start_epoch == 0 || !path.is_file() {
            return Ok(History::default());
        }
        let mut history =
            History::read_csv(&path).map_err(|e| HarnessError::Resume(e.to_string()))?;
        history.epochs.retain(|record| record.epoch <= start_epoch);
        Ok(history)
    }

    /// Whether this run trains beside an earlier one it is to replace (`--overwrite`).
    fn staged(&self) -> bool {
        self.work_dir != self.run_dir
    }

    /// Removes what an abandoned `--overwrite` left beside the directory, when this run trains
    /// in the directory itself.
    fn discard_abandoned_staging(&self) -> Result<(), HarnessError> {
        let staging = self.run_dir.staging();
        if !self.staged() && staging.path().exists() {
            std::fs::remove_dir_all(staging.path())
                .map_err(|e| HarnessError::Io(format!("cannot remove {staging}: {e}")))?;
        }
        Ok(())
    }

    /// What a run stopped by a failed write leaves, for its error message.
    fn after_failure(&self) -> String {
        let kept = match self.work_dir.complete_checkpoints().last() {
            Some(epoch) => format!(
                "its checkpoint of epoch {epoch} is complete, and --resume continues from it \
                 once the cause is fixed"
            ),
            None => "it has no complete checkpoint yet".to_string(),
        };
        if self.staged() {
            format!("{kept}; the earlier run in {} is untouched", self.run_dir)
        } else {
            kept
        }
    }

    /// Refuses a run that cannot change its weights: Adam-2k frozen for all of its `steps` (a
    /// learning rate too small to move f32 weights is refused earlier, by [`Session::open`]).
    fn check_learnable(&self, steps: usize) -> Result<(), HarnessError> {
        let settings = &self.settings;
        if settings.optimizer.kind == OptimizerKind::Adam2k
            && settings.optimizer.frozen_steps >= steps
        {
            return Err(HarnessError::Invalid(format!(
                "--frozen-steps {} covers the whole run ({steps} steps): Adam-2k would never \
                 update the weights; freeze fewer steps or train for more --epochs",
                settings.optimizer.frozen_steps
            )));
        }
        Ok(())
    }

    /// On `--resume`, refuses data that changed since the run started, naming what changed
    /// (unless `--resume-with-new-data`).
    fn check_data(&self, now: &DataFingerprint) -> Result<(), HarnessError> {
        if self.start.epoch() == 0 {
            return Ok(());
        }
        let saved: RunSettings = self
            .work_dir
            .read_settings()
            .map_err(|e| HarnessError::Resume(format!("cannot resume {}: {e}", self.work_dir)))?;
        let Some(recorded) = saved.data else {
            self.say(format!(
                "note: {} has no fingerprint of its data (a run from before them): it is \
                 recorded now",
                self.work_dir
            ));
            return Ok(());
        };
        let changes = recorded.changes(now);
        if changes.is_empty() {
            Ok(())
        } else if self.accept_new_data {
            self.say(format!(
                "note: --resume-with-new-data: continuing on changed data ({})",
                changes.join("; ")
            ));
            Ok(())
        } else {
            Err(HarnessError::Resume(format!(
                "cannot resume {}: its data changed since the run started ({}); continue on the \
                 new data with --resume-with-new-data, or start a new run with --overwrite",
                self.work_dir,
                changes.join("; ")
            )))
        }
    }

    /// The run of a `--resume` after training: the saved model (checked) and history.
    fn trained_run<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
        model: M,
        steps: usize,
        device: &B::Device,
    ) -> Result<TrainedRun<M::InnerModule>, HarnessError> {
        let model = load_model_checked(model, &self.work_dir.join(MODEL), device)
            .map_err(HarnessError::Resume)?;
        Ok(TrainedRun {
            model: model.valid(),
            history: self.earlier_history()?,
            wall_time: Duration::ZERO,
            steps,
        })
    }
}

/// The operating system's error behind `error` (a full disk, a read-only file system), also
/// where a library passed it on as text (`… (os error 28)`).
fn os_error(error: &std::io::Error) -> Option<std::io::Error> {
    if let Some(code) = error.raw_os_error() {
        return Some(std::io::Error::from_raw_os_error(code));
    }
    let text = error.to_string();
    let code = text.split("(os error ").nth(1)?.split(')').next()?;
    code.parse().ok().map(std::io::Error::from_raw_os_error)
}
