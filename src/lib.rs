//! # radam-train
//!
//! The facade of the radam-burn workspace: the [RAdam optimizer](optim), the [models] and the
//! [datasets] of the paper's experiments, and the training harness every example shares —
//! [backend] selection (`ndarray` or `wgpu`, picked at run time), the [optimizer
//! choice](optimizer_choice) (RAdam and the baselines), learning-rate [schedule]s, the [r_t metric](rectification_metric), metric
//! [renderer]s, the [run directory](run_dir) (atomic files, checkpoints, resume), a
//! [divergence] guard, the per-epoch [history] with its CSV and [training curves](training_curves), [BLEU](bleu), and the paper's
//! [tasks] run through the [harness]; the paper's [experiments] on top of them, drawn as
//! [figure]s, with [gradient histograms](gradient_histogram) and the [variance] analysis;
//! [distributed] (data-parallel) training on several devices and machines; the
//! [quickstart], the shortest complete program; and the speed [workloads] that the benchmarks
//! and the [GPU check](gpu_check) time.
//!
//! Everything model- and optimizer-side is generic over `B: Backend`; only this crate names the
//! concrete backends.
#![recursion_limit = "256"]
#![warn(missing_docs)]

pub use radam_burn as optim;
pub use radam_datasets as datasets;
pub use radam_models as models;

pub mod backend;
pub mod bleu;
pub mod distributed;
pub mod divergence;
pub mod experiments;
pub mod figure;
pub mod gpu_check;
pub mod gradient_histogram;
pub mod harness;
pub mod history;
pub mod optimizer_choice;
pub mod quickstart;
pub mod rectification_metric;
pub mod renderer;
pub mod run_dir;
pub mod schedule;
pub mod tasks;
pub mod training_curves;
pub mod variance;
pub mod workloads;
