//! The training harness every example shares, one concern a module: the command-line
//! [flags], the resolved [settings] saved as `run.json` with the [data
//! fingerprint](data_fingerprint), the [session] that checks them, decides where a run starts
//! in its artifact directory, places its replicas and [fits](session::fit) the model through
//! Burn's `LearnerBuilder`; this process's node of a multi-node run; the [memory
//! budget](memory_budget) a run's size flags are checked against; what a run records as it
//! trains — the [r_t metric](rectification_metric), the per-epoch [history] with its CSV and
//! [training curves](training_curves), [gradient histograms](gradient_histogram) — and the
//! [divergence] guard that stops it; the [optimizer choice](optimizer_choice) (RAdam and the
//! baselines); the [report] a finished run prints, and the [error]s a run ends with.

pub mod data_fingerprint;
pub mod divergence;
pub mod error;
pub mod flags;
pub mod gradient_histogram;
pub mod history;
pub mod memory_budget;
mod node;
pub mod optimizer_choice;
pub mod rectification_metric;
pub mod report;
pub mod session;
pub mod settings;
pub mod training_curves;

pub use data_fingerprint::DataFingerprint;
pub use error::{HarnessError, exit_on_error};
pub use flags::{SizePreset, TrainArgs, parse_args, usage_error_line};
pub use report::RunReport;
pub use session::Session;
pub use session::fit::{RunLearnerBuilder, TrainedRun, TrainingData};
pub use settings::{RunSettings, TaskDefaults, TaskOptions};
