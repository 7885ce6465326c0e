//! The training harness every example shares: command-line flags, the artifact directory
//! (checkpoints, resume, CSV, plot, final model) and one `LearnerBuilder` set-up.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::data::dataloader::DataLoader;
use burn::data::dataset::Dataset;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{ItemLazy, LearningRateMetric};
use burn::train::renderer::MetricsRenderer;
use burn::train::renderer::tui::TuiMetricsRenderer;
use burn::train::{LearnerBuilder, LearningStrategy, TrainStep, ValidStep};
use serde::{Deserialize, Serialize};

use crate::distributed::{
    Collective, DataParallel, ReplicaLayout, ReplicaShards, broadcast_model, fingerprint_bytes,
    launched_processes,
};
use crate::divergence::DivergenceGuard;
use crate::gradient_histogram::GradientLog;
use crate::history::{History, RecordingRenderer};
use crate::optimizer::{AnyOptimizer, OptimizerKind, OptimizerSettings};
use crate::plot::plot_history;
use crate::rectification_metric::RectificationMetric;
use crate::renderer::{PlainRenderer, QuietRenderer};
pub use crate::run_dir::GRADIENT_HISTOGRAM;
use crate::run_dir::{
    CSV, MODEL, PLOT, RunDir, RunRecorder, replace_atomic, verify_checkpoint, write_atomic,
};
use crate::schedule::{Decay, Schedule};

/// Where a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The CPU, through ndarray.
    Ndarray,
    /// A GPU (or a software Vulkan driver), through wgpu.
    Wgpu,
}

/// The learning-rate schedule after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The base rate throughout.
    Constant,
    /// ×0.1 after 50 % and after 75 % of the epochs (the paper's CIFAR schedule).
    Step,
    /// Linear decay to zero over the run (the paper's NMT schedule).
    Linear,
}

/// How big a model and data set: `tiny` is for tests (seconds), `small` finishes on two CPU
/// cores in minutes, `paper` is the paper's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizePreset {
    /// Seconds: for tests and smoke runs.
    Tiny,
    /// Minutes on a 2-core CPU, visibly learning.
    Small,
    /// The paper's model and schedule.
    Paper,
}

/// The flags every training example takes.
#[derive(clap::Args, Clone, Debug)]
pub struct TrainArgs {
    /// Where to train: the CPU (ndarray) or a GPU through Vulkan (wgpu).
    #[arg(long, value_enum, default_value_t = BackendKind::Ndarray)]
    pub backend: BackendKind,
    /// The optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Radam)]
    pub optimizer: OptimizerKind,
    /// Linear learning-rate warmup over this many steps (for the baselines; RAdam needs none).
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Base learning rate [default: the task's, per optimizer].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule after warmup [default: the task's].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// Weight decay (L2; decoupled for AdamW) [default: the task's].
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Epochs to train [default: the task's, per size].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size [default: the task's, per size].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed of the weights, the data order and the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Model and data size.
    #[arg(long, value_enum, default_value_t = SizePreset::Small)]
    pub size: SizePreset,
    /// Where checkpoints, metrics.csv, curves.png and model.mpk go
    /// [default: artifacts/<task>-<optimizer>].
    #[arg(long)]
    pub artifact_dir: Option<PathBuf>,
    /// Continue the run in the artifact directory from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Replace the earlier run in the artifact directory (without it, a new run there is
    /// refused). Nothing is removed before the new run has checked its flags, data and backend.
    #[arg(long)]
    pub overwrite: bool,
    /// Stop after this epoch, as if interrupted (the schedule still spans `--epochs`);
    /// `--resume` continues exactly where it stopped.
    #[arg(long, value_name = "EPOCH")]
    pub stop_after: Option<usize>,
    /// One log line per epoch instead of the terminal dashboard (automatic when standard
    /// output is not a terminal).
    #[arg(long)]
    pub plain: bool,
    /// A directory with the real data set instead of the built-in one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// β2 of the adaptive optimizers [default: the task's: 0.98 for translation, else 0.999].
    #[arg(long)]
    pub beta_2: Option<f32>,
    /// ε of the adaptive optimizers (the paper's Adam-eps control: 1e-4) [default: 1e-8].
    #[arg(long)]
    pub epsilon: Option<f32>,
    /// Adam-2k: the first steps that update only the second moment.
    #[arg(long, default_value_t = 2000)]
    pub frozen_steps: usize,
    /// Record a histogram of |gradient| over the first N updates into grad_histogram.csv.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub gradient_histogram: usize,
    /// Train data-parallel on this many devices of this machine (Burn's DDP): GPUs 0..N with
    /// wgpu, the CPU N times with ndarray. `--batch-size` is per device.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub devices: usize,
    /// Train data-parallel in N processes, usually one per machine or GPU, started together by
    /// `mpirun -np N` (needs the `mpi` cargo feature). `--batch-size` is per process.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nodes: usize,
}

/// A task's defaults for the flags a user may leave out.
#[derive(Clone, Debug)]
pub struct TaskDefaults {
    /// Short name, used for the artifact directory (`cifar`, `lm`, `nmt`).
    pub name: &'static str,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Learning rate of the adaptive optimizers.
    pub adaptive_lr: f64,
    /// Learning rate of SGD.
    pub sgd_lr: f64,
    /// Weight decay.
    pub weight_decay: f32,
    /// Schedule.
    pub schedule: ScheduleKind,
    /// β2 of the adaptive optimizers.
    pub beta_2: f32,
}

/// A run's fully resolved settings, saved as `run.json` so that `--resume` can refuse to mix
/// runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The task.
    pub task: String,
    /// Backend.
    pub backend: BackendKind,
    /// Optimizer and its hyper-parameters.
    pub optimizer: OptimizerSettings,
    /// Base learning rate.
    pub lr: f64,
    /// Warmup steps.
    pub warmup: usize,
    /// Schedule.
    pub schedule: ScheduleKind,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Seed.
    pub seed: u64,
    /// Size preset.
    pub size: SizePreset,
    /// The data directory, if not built-in.
    pub data_dir: Option<PathBuf>,
    /// Local devices (data-parallel).
    #[serde(default = "one")]
    pub devices: usize,
    /// Processes of a multi-node run.
    #[serde(default = "one")]
    pub nodes: usize,
    /// The task's own flags that shape the model or the data.
    #[serde(default)]
    pub task_options: TaskOptions,
}

fn one() -> usize {
    1
}

/// A task's own flags that shape its model or its data (`--depth`, `--bptt`, `--bpe-vocab`, …),
/// by flag name, with their resolved values.
pub type TaskOptions = BTreeMap<String, String>;

impl RunSettings {
    /// Replicas of the model that train together: `devices · nodes`. Every step sees
    /// `replicas · batch_size` items.
    pub fn replicas(&self) -> usize {
        self.devices * self.nodes
    }

    /// `args` resolved against the task's `defaults`.
    fn resolve(args: &TrainArgs, defaults: &TaskDefaults, task_options: TaskOptions) -> Self {
        let lr = args.lr.unwrap_or(match args.optimizer {
            OptimizerKind::Sgd => defaults.sgd_lr,
            _ => defaults.adaptive_lr,
        });
        // PyTorch's ε unless set: one default, in `OptimizerSettings::new`.
        let base = OptimizerSettings::new(
            args.optimizer,
            args.weight_decay.unwrap_or(defaults.weight_decay),
        );
        Self {
            task: defaults.name.to_string(),
            backend: args.backend,
            optimizer: OptimizerSettings {
                beta_2: args.beta_2.unwrap_or(defaults.beta_2),
                epsilon: args.epsilon.unwrap_or(base.epsilon),
                frozen_steps: args.frozen_steps,
                ..base
            },
            lr,
            warmup: args.warmup,
            schedule: args.schedule.unwrap_or(defaults.schedule),
            epochs: args.epochs.unwrap_or(defaults.epochs),
            batch_size: args.batch_size.unwrap_or(defaults.batch_size),
            seed: args.seed,
            size: args.size,
            data_dir: args.data_dir.clone(),
            devices: args.devices,
            nodes: args.nodes,
            task_options,
        }
    }

    /// The settings that differ between `self` and `other`, as `name: saved → requested`.
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let flat = |settings: &Self| {
            let mut leaves = BTreeMap::new();
            let json = serde_json::to_value(settings).expect("settings serialise");
            flatten_json("", &json, &mut leaves);
            leaves
        };
        let (flat_ours, flat_theirs) = (flat(self), flat(other));
        let names: std::collections::BTreeSet<&String> =
            flat_ours.keys().chain(flat_theirs.keys()).collect();
        let shown = |value: Option<&String>| value.cloned().unwrap_or_else(|| "-".to_string());
        names
            .into_iter()
            .filter(|name| flat_ours.get(*name) != flat_theirs.get(*name))
            .map(|name| {
                format!(
                    "{name}: {} → {}",
                    shown(flat_ours.get(name)),
                    shown(flat_theirs.get(name))
                )
            })
            .collect()
    }
}

/// `value`'s leaves by dotted path (`optimizer.beta_2`, `task_options.depth`).
fn flatten_json(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (name, field) in fields {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                flatten_json(&path, field, out);
            }
        }
        serde_json::Value::String(text) => {
            out.insert(prefix.to_string(), text.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// Why a run could not start or finish.
#[derive(Debug)]
pub enum HarnessError {
    /// A flag's value is unusable.
    Invalid(String),
    /// The data could not be loaded.
    Data(radam_datasets::DataError),
    /// `--resume` found nothing to resume, or a different run.
    Resume(String),
    /// The artifact directory could not be written.
    Io(String),
    /// The training loss stopped being a finite number.
    Diverged(String),
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(message)
            | Self::Resume(message)
            | Self::Io(message)
            | Self::Diverged(message) => f.write_str(message),
            Self::Data(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for HarnessError {}

impl From<radam_datasets::DataError> for HarnessError {
    fn from(error: radam_datasets::DataError) -> Self {
        Self::Data(error)
    }
}

/// The error of failing to `what` ("write", "read") the file at `path`.
pub(crate) fn io_error(what: &str, path: &Path, error: impl fmt::Display) -> HarnessError {
    HarnessError::Io(format!("cannot {what} {}: {error}", path.display()))
}

/// One training run: its settings, its artifact directory, and where it starts.
#[derive(Clone, Debug)]
pub struct Session {
    settings: RunSettings,
    run_dir: RunDir,
    start: Start,
    stop_after: usize,
    plain: bool,
    gradient_histogram: usize,
    title: String,
    node: Node,
}

/// How a session begins in its artifact directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// A new run; `clear`: an earlier run there is replaced (`--overwrite`).
    Fresh { clear: bool },
    /// `--resume` after the checkpoint of `epoch` (0: none was complete; the run starts over).
    Resume { epoch: usize },
}

impl Start {
    /// Epochs already trained.
    fn epoch(self) -> usize {
        match self {
            Self::Fresh { .. } => 0,
            Self::Resume { epoch } => epoch,
        }
    }
}

/// This process's place in a multi-node run.
#[derive(Clone, Debug, Default)]
struct Node {
    rank: usize,
    local_rank: usize,
    collective: Option<Arc<dyn Collective>>,
    /// Keeps MPI running while the session lives.
    #[cfg(feature = "mpi")]
    _mpi: Option<Arc<crate::distributed::mpi::MpiNode>>,
}

impl Node {
    /// Joins the multi-node run `--nodes` asks for, checking that the launcher agrees.
    fn join(nodes: usize, devices: usize) -> Result<Self, HarnessError> {
        if nodes == 0 || devices == 0 {
            return Err(HarnessError::Invalid(
                "--nodes and --devices must be at least 1".to_string(),
            ));
        }
        let launched = launched_processes().unwrap_or(1);
        if nodes == 1 {
            if launched > 1 {
                return Err(HarnessError::Invalid(format!(
                    "this process is one of {launched} started by mpirun, but --nodes is 1: pass \
                     --nodes {launched} (otherwise each process would train alone)"
                )));
            }
            return Ok(Self::default());
        }
        if devices > 1 {
            return Err(HarnessError::Invalid(format!(
                "--nodes {nodes} with --devices {devices}: start one process per device instead \
                 (mpirun -np {total} … --nodes {total}); each process uses its machine's GPU \
                 number <local rank>",
                total = nodes * devices
            )));
        }
        Self::join_mpi(nodes, launched)
    }

    #[cfg(feature = "mpi")]
    fn join_mpi(nodes: usize, launched: usize) -> Result<Self, HarnessError> {
        if launched != nodes {
            return Err(HarnessError::Invalid(if launched == 1 {
                format!(
                    "--nodes {nodes}: start the processes with MPI, e.g. `mpirun -np {nodes} \
                     <this command>` (see README, \"Several devices and machines\")"
                )
            } else {
                format!("mpirun started {launched} processes, but --nodes is {nodes}")
            }));
        }
        let mpi = crate::distributed::mpi::MpiNode::join().map_err(HarnessError::Invalid)?;
        Ok(Self {
            rank: mpi.rank(),
            local_rank: mpi.local_rank(),
            collective: Some(Arc::new(mpi.collective())),
            _mpi: Some(Arc::new(mpi)),
        })
    }

    #[cfg(not(feature = "mpi"))]
    fn join_mpi(nodes: usize, _launched: usize) -> Result<Self, HarnessError> {
        Err(HarnessError::Invalid(format!(
            "--nodes {nodes} needs MPI, and this program was built without it: build with \
             `--features mpi` (Debian/Ubuntu: apt-get install libopenmpi-dev openmpi-bin \
             libclang-dev)"
        )))
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
    /// Unusable flag values; a directory that holds an earlier run without `--resume` or
    /// `--overwrite`; `--resume` without a run, or with settings that differ from the
    /// interrupted run's.
    pub fn open(
        args: &TrainArgs,
        defaults: &TaskDefaults,
        task_options: TaskOptions,
    ) -> Result<Self, HarnessError> {
        let settings = RunSettings::resolve(args, defaults, task_options);
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
        // Validates the learning rate and the optimizer's hyper-parameters up front.
        Schedule::new(settings.lr, settings.warmup, Decay::Constant)
            .map_err(HarnessError::Invalid)?;
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
        if args.resume && args.overwrite {
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
        let start = if args.resume {
            Self::resume_point(&run_dir, &settings)?
        } else {
            let earlier_run = run_dir.holds_run();
            if earlier_run && !args.overwrite {
                return Err(HarnessError::Invalid(format!(
                    "{run_dir} holds an earlier run: continue it with --resume, replace it with \
                     --overwrite, or choose another --artifact-dir"
                )));
            }
            Start::Fresh { clear: earlier_run }
        };
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
            settings.optimizer.kind,
            settings.lr,
            settings.backend_name()
        );
        Ok(Self {
            settings,
            run_dir,
            start,
            stop_after,
            plain: args.plain || !std::io::stdout().is_terminal(),
            gradient_histogram: args.gradient_histogram,
            title,
            node,
        })
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
        if comparable != *settings {
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
            return Err(HarnessError::Resume(format!(
                "the run in {dir} already finished {last} of {} epochs; ask for more with --epochs",
                settings.epochs
            )));
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

    /// The artifact directory.
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

    /// Where this process trains: backend, local devices, and which GPU of the machine.
    pub fn placement(&self) -> Placement {
        Placement {
            backend: self.settings.backend,
            devices: self.settings.devices,
            first_device: self.node.local_rank,
        }
    }

    /// This process's rank in a multi-node run (0 otherwise).
    pub fn node_rank(&self) -> usize {
        self.node.rank
    }

    /// Where this process's replicas sit among all of the run.
    pub fn layout(&self) -> ReplicaLayout {
        ReplicaLayout {
            nodes: self.settings.nodes,
            node_rank: self.node.rank,
            devices: self.settings.devices,
        }
    }

    /// This process's share of a training set ([`ReplicaShards`]): all of it for a single
    /// replica.
    ///
    /// # Errors
    /// If the set has fewer items than there are replicas.
    pub fn shard<I: Send + Sync + 'static>(
        &self,
        data: Arc<dyn Dataset<I>>,
    ) -> Result<Arc<dyn Dataset<I>>, HarnessError> {
        let replicas = self.settings.replicas();
        if replicas == 1 {
            return Ok(data);
        }
        let shards = ReplicaShards::new(data, self.layout());
        if shards.per_replica() == 0 {
            return Err(HarnessError::Invalid(format!(
                "the training set is too small for {replicas} replicas"
            )));
        }
        let dropped = if shards.dropped() > 0 {
            format!(
                " ({} left out so that all take the same number of steps)",
                shards.dropped()
            )
        } else {
            String::new()
        };
        self.say(format!(
            "{replicas} replicas, each training on {} items per epoch{dropped}",
            shards.per_replica()
        ));
        Ok(Arc::new(shards))
    }

    /// Trains `model` with the run's optimizer and schedule through Burn's `LearnerBuilder`:
    /// loss, learning rate and (for RAdam) r_t plus the task's `metrics`; a checkpoint every
    /// epoch; resume from the last one; the CSV and the plot after every epoch; the final
    /// model saved as `model.mpk`.
    ///
    /// A resumed run continues the data order exactly when `train` shuffles with a seed: the
    /// loader is advanced past the epochs already trained.
    ///
    /// With several `devices` it trains one replica per device through Burn's DDP (the
    /// training loader is cut into one contiguous slice per device: build it from
    /// [`shard`](Self::shard)); in a multi-node run every node starts from node 0's weights
    /// and averages its gradients with the other nodes' before every step.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub fn fit<B, M, TI, VI, TO, VO>(
        &self,
        devices: Vec<B::Device>,
        model: M,
        train: Arc<dyn DataLoader<B, TI>>,
        valid: Arc<dyn DataLoader<B::InnerBackend, VI>>,
        steps_per_epoch: usize,
        metrics: impl FnOnce(
            LearnerBuilder<B, M, DataParallel<AnyOptimizer<M, B>>, Schedule, TI, VI, TO, VO>,
        ) -> LearnerBuilder<
            B,
            M,
            DataParallel<AnyOptimizer<M, B>>,
            Schedule,
            TI,
            VI,
            TO,
            VO,
        >,
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
        if steps_per_epoch == 0 {
            return Err(HarnessError::Invalid(format!(
                "the training data gives no step: no batch of {} fits in it (fewer items than \
                 the batch size, or every item was left out)",
                settings.batch_size
            )));
        }
        let total_steps = settings.epochs * steps_per_epoch;
        if settings.warmup > total_steps {
            return Err(HarnessError::Invalid(format!(
                "--warmup {} is longer than the whole run ({} epochs of {steps_per_epoch} steps = \
                 {total_steps} steps): the learning rate would never reach {}",
                settings.warmup, settings.epochs, settings.lr
            )));
        }
        let mut optimizer = settings
            .optimizer
            .init::<B, M>()
            .map_err(HarnessError::Invalid)?;
        // The histogram is of the first updates: a resumed run keeps the one it recorded.
        if self.gradient_histogram > 0 && start_epoch == 0 {
            let path = self.run_dir.join(GRADIENT_HISTOGRAM);
            optimizer =
                optimizer.with_gradient_log(GradientLog::new(self.gradient_histogram, &path));
        }
        let decay = match settings.schedule {
            ScheduleKind::Constant => Decay::Constant,
            ScheduleKind::Step => Decay::Step {
                milestones: vec![total_steps / 2, total_steps * 3 / 4],
                gamma: 0.1,
            },
            ScheduleKind::Linear => Decay::Linear {
                total_steps: total_steps.max(1),
            },
        };
        let local_devices = devices.len();
        if local_devices == 0 {
            return Err(HarnessError::Invalid("no device to train on".to_string()));
        }
        // Burn's DDP asks for the rate once per local device per step.
        let schedule = Schedule::new(settings.lr, settings.warmup, decay)
            .map_err(HarnessError::Invalid)?
            .with_calls_per_step(local_devices);
        let optimizer = DataParallel::new(optimizer, self.node.collective.clone());
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
        let model = match &self.node.collective {
            Some(collective) => {
                let mut comparable = settings.clone();
                comparable.data_dir = None;
                let json = serde_json::to_string(&comparable).expect("settings serialise");
                broadcast_model(
                    model,
                    fingerprint_bytes(json.as_bytes()),
                    collective.as_ref(),
                )
                .map_err(|e| HarnessError::Invalid(e.to_string()))?
            }
            None => model,
        };
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
            drop(train.iter());
        }
        let history = Arc::new(Mutex::new(self.earlier_history()?));
        let (csv, png, title) = (
            self.run_dir.join(CSV),
            self.run_dir.join(PLOT),
            self.title.clone(),
        );
        let on_epoch = Box::new(move |history: &History| {
            if let Err(error) = write_atomic(&csv, history.to_csv().as_bytes()) {
                eprintln!("warning: cannot write {}: {error}", csv.display());
            }
            let plotted = replace_atomic(&png, |partial| {
                plot_history(history, &title, partial).map_err(std::io::Error::other)
            });
            if let Err(error) = plotted {
                eprintln!("warning: no plot: {error}");
            }
        });

        let mut builder = LearnerBuilder::new(self.run_dir.path())
            .with_file_checkpointer(RunRecorder::default())
            .learning_strategy(strategy)
            .num_epochs(self.stop_after)
            .with_application_logger(None)
            .metric_train_numeric(LearningRateMetric::new());
        if settings.optimizer.kind == OptimizerKind::Radam {
            let steps_before = start_epoch * steps_per_epoch;
            builder = builder.metric_train_numeric(
                RectificationMetric::new(&settings.optimizer.radam_config(), steps_before)
                    .with_updates_per_step(local_devices),
            );
        }
        builder = metrics(builder);
        let inner: Box<dyn MetricsRenderer> = if self.node.rank > 0 {
            Box::new(QuietRenderer)
        } else if self.plain {
            Box::new(PlainRenderer::new())
        } else {
            Box::new(TuiMetricsRenderer::new(
                builder.interrupter(),
                (start_epoch > 0).then_some(start_epoch),
            ))
        };
        let guard = DivergenceGuard::new(builder.interrupter());
        builder = builder.renderer(
            RecordingRenderer::new(inner, history.clone(), on_epoch).with_guard(guard.clone()),
        );
        if start_epoch > 0 {
            self.say(format!(
                "resuming {} from epoch {start_epoch} of {}",
                self.run_dir, settings.epochs
            ));
            builder = builder.checkpoint(start_epoch);
        }

        let started = Instant::now();
        let learner = builder.build(model, optimizer, schedule);
        let model = learner.fit(train, valid).model;
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
                settings.optimizer.kind, settings.lr
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

/// Where a process trains, for [`on_backend`](crate::tasks::on_backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The backend.
    pub backend: BackendKind,
    /// How many local devices.
    pub devices: usize,
    /// The first GPU's number on this machine (a multi-node process's local rank).
    pub first_device: usize,
}

impl RunSettings {
    fn backend_name(&self) -> &'static str {
        match self.backend {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
        }
    }
}

/// What a finished run gives back.
pub struct TrainedRun<M> {
    /// The trained model (without autodiff).
    pub model: M,
    /// Every epoch's metrics, including those of an interrupted run this one resumed.
    pub history: History,
    /// Training time of this process (excluding data preparation).
    pub wall_time: Duration,
}

/// Parses the command line as `A`. `--help` and `--version` print as clap prints them; any
/// other problem ends the process with one `error: …` line (clap's message, its tip and the
/// possible values, without the usage block) and exit code 2.
pub fn parse_args<A: clap::Parser>() -> A {
    match A::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            eprintln!("{}", usage_error_line(&error));
            std::process::exit(2)
        }
    }
}

/// A clap error as one line: `error: unexpected argument '--foo' found; tip: … (see --help)`.
pub fn usage_error_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .collect();
    let text = parts.join("; ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    format!(
        "error: {} (see --help)",
        text.replace("; [possible", " [possible")
    )
}

/// Runs `main` and turns its error into a message on standard error and exit code 2.
pub fn exit_on_error(main: impl FnOnce() -> Result<(), HarnessError>) -> std::process::ExitCode {
    match main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::from(2)
        }
    }
}

/// What a task reports when it finishes.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Every epoch's metrics.
    pub history: History,
    /// Training time of this process.
    pub wall_time: Duration,
    /// The artifact directory.
    pub artifact_dir: PathBuf,
    /// Task-specific results, e.g. `("test BLEU", 12.3)`.
    pub results: Vec<(String, f64)>,
    /// The process's rank in a multi-node run (only node 0 prints).
    pub node_rank: usize,
}

impl RunReport {
    /// The report of `run` in `session`, with the task's `results`.
    pub fn new<M>(session: &Session, run: &TrainedRun<M>, results: Vec<(String, f64)>) -> Self {
        Self {
            history: run.history.clone(),
            wall_time: run.wall_time,
            artifact_dir: session.dir().to_path_buf(),
            results,
            node_rank: session.node_rank(),
        }
    }

    /// Prints the closing lines: the last epoch's validation metrics, the task's results, the
    /// time and where the artifacts are.
    pub fn print(&self) {
        if self.node_rank > 0 {
            return;
        }
        print!("{}", self.history.summary_table());
        if let Some(last) = self.history.last() {
            let valid: Vec<String> = last
                .values
                .iter()
                .filter(|((split, _), _)| *split == crate::history::Split::Valid)
                .map(|((_, name), value)| format!("{name} {value:.4}"))
                .collect();
            println!("after epoch {}: valid {}", last.epoch, valid.join(", "));
        }
        for (name, value) in &self.results {
            println!("{name}: {value:.2}");
        }
        println!(
            "trained in {:.1} s; checkpoints, {CSV}, {PLOT} and model.mpk are in {}",
            self.wall_time.as_secs_f64(),
            self.artifact_dir.display()
        );
    }
}
