//! The paper's analyses, one command each:
//!
//! ```text
//! cargo run --release --bin experiments -- variance
//! cargo run --release --bin experiments -- warmup-search
//! cargo run --release --bin experiments -- warmup
//! cargo run --release --bin experiments -- lr-robustness
//! ```
//!
//! `--scale cpu` (default) finishes each in at most an hour on 2 CPU cores; `--scale paper`
//! uses the paper's sizes (with `--backend wgpu` and `--data-dir`). Files go to
//! `artifacts/experiments/<name>/`; an interrupted experiment resumes when run again.
#![recursion_limit = "256"]

use clap::{Parser, Subcommand};
use radam_train::experiments::{
    ExperimentArgs, lr_robustness, variance_analysis, warmup, warmup_search,
};
use radam_train::harness::{exit_on_error, parse_args};

/// Reproduce the analyses of "On the Variance of the Adaptive Learning Rate and Beyond".
#[derive(Parser)]
#[command(name = "experiments")]
struct Cli {
    #[command(subcommand)]
    experiment: Experiment,
}

#[derive(Subcommand)]
enum Experiment {
    /// Var(ψ) of the adaptive learning rate: exact (Eq. 2) vs first order (Eq. 5), and simulated
    /// gradient trajectories, un-rectified vs rectified.
    Variance(ExperimentArgs),
    /// Adam with and without warmup on post-norm Transformers, cheapest first, until Adam
    /// without warmup fails by a criterion fixed in advance (2 of 3 seeds at ≥ 1.5× the train
    /// loss): the setting the warmup ablation needs. Runs no RAdam.
    WarmupSearch(ExperimentArgs),
    /// Transformer translation: Adam with and without warmup, RAdam, Adam-2k, Adam-eps; and the
    /// |gradient| histograms of the first updates.
    Warmup(ExperimentArgs),
    /// ResNet on CIFAR with lr 0.1, 0.03, 0.01, 0.003 for RAdam, Adam and SGD.
    LrRobustness(ExperimentArgs),
}

fn main() -> std::process::ExitCode {
    exit_on_error(|| {
        match parse_args::<Cli>().experiment {
            Experiment::Variance(args) => variance_analysis::run(&args)?,
            Experiment::WarmupSearch(args) => warmup_search::run(&args)?,
            Experiment::Warmup(args) => warmup::run(&args)?,
            Experiment::LrRobustness(args) => lr_robustness::run(&args)?,
        };
        Ok(())
    })
}
