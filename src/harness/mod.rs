//! The training harness every example shares, one concern a module: the command-line
//! [flags], the resolved [settings] saved as `run.json` with the [data
//! fingerprint](data_fingerprint), the [session] that checks them and
//! decides where a run starts in its artifact directory, this process's node of a
//! multi-node run, the [placement] of replicas and their data, the [memory
//! budget](memory_budget) a run's size flags are checked against, the [learner] wiring around
//! Burn's `LearnerBuilder`, the [report] a finished run prints, and the [error]s a run ends with.

pub mod data_fingerprint;
pub mod error;
pub mod flags;
pub mod learner;
pub mod memory_budget;
mod node;
pub mod placement;
pub mod report;
pub mod session;
pub mod settings;

pub use data_fingerprint::DataFingerprint;
pub use error::{HarnessError, exit_on_error};
pub use flags::{SizePreset, TrainArgs, parse_args, usage_error_line};
pub use learner::{RunLearnerBuilder, TrainedRun, TrainingData};
pub use report::RunReport;
pub use session::Session;
pub use settings::{RunSettings, TaskDefaults, TaskOptions};
