//! The command-line flags every example shares, and turning clap's errors into one line.

use std::path::PathBuf;

use radam_models::kernels::KernelSelection;
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::harness::optimizer_choice::{OptimizerKind, RAdamVariant};
use crate::schedule::ScheduleKind;

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
    /// Which RAdam: `torch` (`torch.optim.RAdam`), `paper` (the paper's Algorithm 2: rectified
    /// from ρ_t > 4, decoupled decay) or `official` (the authors' code behind the paper's
    /// figures: rectified from ρ_t ≥ 5, no update before, decoupled decay).
    #[arg(long, value_enum, default_value_t = RAdamVariant::Torch)]
    pub radam: RAdamVariant,
    /// RAdam: decoupled weight decay, θ ← θ·(1 − lr·λ), instead of L2 (as PyTorch's
    /// `decoupled_weight_decay=True`; `paper` and `official` always decouple).
    #[arg(long)]
    pub decoupled_weight_decay: bool,
    /// Linear learning-rate warmup over this many steps (for the baselines; RAdam needs none).
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Linear warmup over this fraction of the run's steps instead (Hugging Face's
    /// `warmup_ratio`), e.g. 0.1.
    #[arg(long, value_name = "FRACTION", conflicts_with = "warmup")]
    pub warmup_ratio: Option<f64>,
    /// Base learning rate [default: the task's, per optimizer].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule after warmup [default: the task's].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// Weight decay (L2; decoupled for AdamW, Adam-2k and `--decoupled-weight-decay`)
    /// [default: the task's].
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
    /// [default: artifacts/TASK-OPTIMIZER, e.g. artifacts/cifar-radam].
    #[arg(long)]
    pub artifact_dir: Option<PathBuf>,
    /// Continue the run in the artifact directory from its last checkpoint. Refused when its
    /// data changed since it started (each input file's SHA-256 is in run.json).
    #[arg(long)]
    pub resume: bool,
    /// Like --resume, but continue on data that changed since the run started (a model whose
    /// shapes no longer fit, e.g. after the vocabulary grew, is still refused).
    #[arg(long)]
    pub resume_with_new_data: bool,
    /// Replace the earlier run in the artifact directory (without it, a new run there is
    /// refused). The new run trains in .NAME.overwrite beside it and replaces it only once it
    /// has finished; until then the earlier run stays as it was.
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
    /// Adam-2k: the first steps that update only the second moment [default: 2000].
    #[arg(long)]
    pub frozen_steps: Option<usize>,
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
    /// How the CPU kernels (ndarray) are chosen where several compute an operation: `measured`
    /// times them on their first call and keeps the fastest; `fixed` follows fixed rules, the
    /// same in every run on one CPU; a run's kernels.json replays its choices, to reproduce it
    /// bit for bit. The choices are recorded in the artifact directory, and `--resume` reuses
    /// them. With `--nodes` above 1, `measured` means `fixed`, so that every node computes
    /// alike.
    #[arg(long, value_name = "measured|fixed|FILE", default_value = "measured", value_parser = KernelsFlag::parse)]
    pub kernels: KernelsFlag,
}

/// `--kernels`: how the CPU kernels are chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelsFlag {
    /// Timed on their first call, the fastest kept (`measured`); or the fixed rules (`fixed`).
    Select(KernelSelection),
    /// The choices recorded in this file (another run's `kernels.json`); shape classes it does
    /// not name are measured.
    Replay(PathBuf),
}

impl KernelsFlag {
    /// `measured`, `fixed`, or a file's path.
    ///
    /// # Errors
    /// An empty value.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("expected measured, fixed or a kernels.json file".to_string());
        }
        Ok(KernelSelection::parse(text)
            .map_or_else(|_| Self::Replay(PathBuf::from(text)), Self::Select))
    }
}

/// Parses the command line as `A`. `--help` and `--version` print as clap prints them; any
/// other problem ends the process with one `error: …` line (clap's message, its tip and the
/// possible values, without the usage block) and exit code 2.
///
/// Call it first in `main`, before any thread starts: it also sets the CPU defaults of
/// [`configure_cpu_runtime`](crate::backend::configure_cpu_runtime).
pub fn parse_args<A: clap::Parser>() -> A {
    crate::backend::configure_cpu_runtime();
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
