//! The one `LearnerBuilder` set-up every task trains through: optimizer and schedule, DDP across
//! local devices and gradient averaging across nodes, checkpoints and resume, the renderer, the
//! divergence guard, and the CSV, plot and model a run leaves.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::data::dataloader::DataLoader;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{ItemLazy, LearningRateMetric};
use burn::train::renderer::MetricsRenderer;
use burn::train::renderer::tui::TuiMetricsRenderer;
use burn::train::{Interrupter, LearnerBuilder, LearningStrategy, TrainStep, ValidStep};

use super::error::{HarnessError, io_error};
use super::session::{Session, Start};
use crate::distributed::{DataParallel, broadcast_model, fingerprint_bytes};
use crate::divergence::DivergenceGuard;
use crate::gradient_histogram::GradientLog;
use crate::history::{EpochCallback, History, RecordingRenderer};
use crate::optimizer_choice::{AnyOptimizer, OptimizerKind};
use crate::rectification_metric::RectificationMetric;
use crate::renderer::{PlainRenderer, QuietRenderer};
use crate::run_dir::{
    CSV, GRADIENT_HISTOGRAM, MODEL, PLOT, RunRecorder, replace_atomic, verify_checkpoint,
    write_atomic,
};
use crate::schedule::Schedule;
use crate::training_curves::plot_history;

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
}

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
    /// epoch; resume from the last one; the CSV and the plot after every epoch; the final
    /// model saved as `model.mpk`.
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
    /// No training step, warmup longer than the run, an unusable optimizer setting, a
    /// checkpoint that cannot be resumed, an artifact directory that cannot be written, a loss
    /// that stopped being finite.
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
        let optimizer = DataParallel::new(self.optimizer::<B, M>()?, self.node.collective.clone());
        if start_epoch > 0 {
            verify_checkpoint(
                &self.run_dir,
                start_epoch,
                &model,
                &optimizer,
                &schedule,
                &devices[0],
            )
            .map_err(HarnessError::Resume)?;
        }
        let model = self.same_model_on_every_node(model)?;
        // Everything is checked: only now does the run take the directory over.
        let clear = match self.start {
            Start::Fresh { clear } => clear,
            Start::Resume { epoch } => epoch == 0,
        };
        self.run_dir
            .take_over(clear, settings)
            .map_err(HarnessError::Io)?;
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
        let mut builder = LearnerBuilder::new(self.run_dir.path())
            .with_file_checkpointer(RunRecorder::default())
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
            self.epoch_files(),
        )
        .with_guard(guard.clone());
        builder = builder.renderer(renderer);
        if start_epoch > 0 {
            self.say(format!(
                "resuming {} from epoch {start_epoch} of {}",
                self.run_dir, settings.epochs
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
        if let Some(divergence) = guard.divergence() {
            return Err(HarnessError::Diverged(format!(
                "{divergence} with {} at lr {}: the run was stopped and no model was saved \
                 (try a smaller --lr, or --warmup)",
                settings.optimizer.label(),
                settings.lr
            )));
        }

        let path = self.run_dir.join(MODEL);
        burn::module::Module::save_file(model.clone(), &path, &RunRecorder::default())
            .map_err(|e| io_error("save the model to", &path, e))?;
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
            let path = self.run_dir.join(GRADIENT_HISTOGRAM);
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

    /// What is written after every epoch: `metrics.csv` and `curves.png`, each atomically.
    fn epoch_files(&self) -> EpochCallback {
        let (csv, png, title) = (
            self.run_dir.join(CSV),
            self.run_dir.join(PLOT),
            self.title.clone(),
        );
        Box::new(move |history: &History| {
            if let Err(error) = write_atomic(&csv, history.to_csv().as_bytes()) {
                eprintln!("warning: cannot write {}: {error}", csv.display());
            }
            let plotted = replace_atomic(&png, |partial| {
                plot_history(history, &title, partial).map_err(std::io::Error::other)
            });
            if let Err(error) = plotted {
                eprintln!("warning: no plot: {error}");
            }
        })
    }

    /// The epochs an interrupted run recorded before its last checkpoint.
    fn earlier_history(&self) -> Result<History, HarnessError> {
        let path = self.run_dir.join(CSV);
        let start_epoch = self.start.epoch();
        if start_epoch == 0 || !path.is_file() {
            return Ok(History::default());
        }
        let mut history =
            History::read_csv(&path).map_err(|e| HarnessError::Resume(e.to_string()))?;
        history.epochs.retain(|record| record.epoch <= start_epoch);
        Ok(history)
    }
}
