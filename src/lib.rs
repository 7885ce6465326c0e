//! # radam-train
//!
//! The facade of the radam-burn workspace: the [RAdam optimizer](optim), the [models] and the
//! [datasets] of the paper's experiments, and what trains them:
//!
//! - [`harness`]: the one training path every example shares (flags, the session and its run
//!   directory, Burn's `LearnerBuilder`, what a run records), on the [backend] chosen at run time
//!   (`ndarray` or `wgpu`), with learning-rate [schedule]s and metric [renderer]s;
//! - [`run_dir`]: the artifact directory (atomic files, checksummed checkpoints, resume);
//! - [`tasks`]: the paper's three tasks run through the harness; [`experiments`]: the paper's
//!   experiments on top of them, drawn as [figure]s;
//! - [`distributed`]: data-parallel training on several devices and machines;
//! - [`quickstart`]: the shortest complete program;
//! - [`gpu_check`]: the GPU check and the speed workloads the benchmarks share.
//!
//! Everything model- and optimizer-side is generic over `B: Backend`; only this crate names the
//! concrete backends.
#![recursion_limit = "256"]
#![warn(missing_docs)]

pub use radam_burn as optim;
pub use radam_datasets as datasets;
pub use radam_models as models;

pub mod backend;
pub mod distributed;
pub mod experiments;
pub mod figure;
pub mod gpu_check;
pub mod harness;
pub mod quickstart;
pub mod renderer;
pub mod run_dir;
pub mod schedule;
pub mod tasks;
