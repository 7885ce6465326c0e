//! The paper's analyses, one command each (`cargo run --release --bin experiments -- <name>`):
//! the [variance](variance_analysis) of the adaptive learning rate, the [warmup] ablation on the
//! translation task, and the [learning-rate robustness](lr_robustness) sweep on CIFAR.
//!
//! Every experiment writes CSV files and PNG figures into `--out/<name>/` and prints a short
//! table. The training experiments are lists of ordinary harness runs, one artifact directory
//! each: a run that finished is not trained again, an interrupted one resumes from its last
//! checkpoint, so an experiment can be stopped (Ctrl-C) and restarted with the same command.

pub mod lr_robustness;
pub mod progress;
pub mod seeds;
pub mod variance;
pub mod variance_analysis;
pub mod warmup;
pub mod warmup_search;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::harness::history::{History, Phase};
use crate::harness::{HarnessError, RunReport};
use crate::run_dir::{CSV, RESULTS, RunDir};

/// How big an experiment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Seconds: the CI check that every experiment runs and writes its files.
    Tiny,
    /// At most an hour on 2 CPU cores, in the regime of the paper's claims (the default).
    Cpu,
    /// The paper's sizes, for a GPU (`--backend wgpu`) and the real data sets.
    Paper,
}

/// The flags every experiment takes.
#[derive(clap::Args, Clone, Debug)]
pub struct ExperimentArgs {
    /// Size of the experiment.
    #[arg(long, value_enum, default_value_t = Scale::Cpu)]
    pub scale: Scale,
    /// Where the experiment's runs, CSV files and figures go (in a sub-directory per experiment).
    #[arg(long, default_value = "artifacts/experiments")]
    pub out: PathBuf,
    /// Backend of the training experiments.
    #[arg(long, value_enum, default_value_t = BackendKind::Ndarray)]
    pub backend: BackendKind,
    /// Real data for the training experiments (IWSLT'14 for `warmup`, CIFAR for
    /// `lr-robustness`) instead of the built-in sets.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// `warmup` only: train every run at this learning rate instead of the task's (a higher one
    /// shows more of the early instability). Results go to `warmup-lr<LR>/`.
    #[arg(long)]
    pub lr: Option<f64>,
    /// `warmup --scale cpu` only: the post-norm Transformer and Adam setting to run the ablation
    /// at, as `warmup-search` names them (e.g. `L2-d64-lr0.003-b0.999`) [default: the cheapest
    /// in which `warmup-search` found Adam without warmup to fail, read from its `search.csv`
    /// under `--out`]. Results go to `warmup-<setting>/`.
    #[arg(long, value_parser = warmup_search::SearchSetting::parse)]
    pub setting: Option<warmup_search::SearchSetting>,
    /// Discard earlier results in the output directory instead of reusing and resuming them.
    #[arg(long)]
    pub fresh: bool,
    /// Seeds per configuration (0, 1, …) [default: 1 for --scale tiny, else 3].
    #[arg(long)]
    pub seeds: Option<usize>,
    /// `warmup-search` only: a file of finished search runs (e.g. the committed
    /// `docs/warmup-search-ledger.csv`) to reuse instead of training them again, extended after
    /// every run, so that the search continues across machines.
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
}

impl ExperimentArgs {
    /// An experiment at `scale` on ndarray with built-in data, writing below `out`.
    pub fn new(scale: Scale, out: impl Into<PathBuf>) -> Self {
        Self {
            scale,
            out: out.into(),
            backend: BackendKind::Ndarray,
            data_dir: None,
            lr: None,
            setting: None,
            fresh: false,
            seeds: None,
            ledger: None,
        }
    }

    /// Refuses `--ledger` for `experiment`: only warmup-search keeps one.
    ///
    /// # Errors
    /// When `--ledger` was given.
    pub fn refuse_ledger(&self, experiment: &str) -> Result<(), HarnessError> {
        match self.ledger {
            Some(_) => Err(HarnessError::Invalid(format!(
                "--ledger: only warmup-search keeps a ledger, not {experiment}"
            ))),
            None => Ok(()),
        }
    }

    /// Refuses `--setting` for `experiment`, which does not train at a warmup-search setting.
    ///
    /// # Errors
    /// When `--setting` was given.
    pub fn refuse_setting(&self, experiment: &str) -> Result<(), HarnessError> {
        match self.setting {
            Some(_) => Err(HarnessError::Invalid(format!(
                "--setting: {experiment} does not train at a warmup-search setting (only \
                 `warmup --scale cpu` does)"
            ))),
            None => Ok(()),
        }
    }

    /// Refuses `--seeds` for `experiment`, which trains nothing and draws no seeds.
    ///
    /// # Errors
    /// When `--seeds` was given.
    pub fn refuse_seeds(&self, experiment: &str) -> Result<(), HarnessError> {
        match self.seeds {
            Some(_) => Err(HarnessError::Invalid(format!(
                "--seeds: {experiment} trains nothing (its simulation draws a fixed number of \
                 samples), so it takes no seeds"
            ))),
            None => Ok(()),
        }
    }

    /// Seeds per configuration: `--seeds`, or the scale's default.
    pub fn seed_count(&self) -> usize {
        self.seeds.unwrap_or(match self.scale {
            Scale::Tiny => 1,
            Scale::Cpu | Scale::Paper => 3,
        })
    }

    /// Every run of `runs` once per seed, named `<name>-seed<k>` with `--seed k`, the seeds
    /// of one run next to each other (so the outcomes come in chunks of
    /// [`seed_count`](Self::seed_count)).
    pub fn seeded(&self, runs: Vec<PlannedRun>) -> Vec<PlannedRun> {
        runs.into_iter()
            .flat_map(|run| {
                (0..self.seed_count()).map(move |seed| {
                    PlannedRun::new(format!("{}-seed{seed}", run.name), &[])
                        .with(&run.flags)
                        .with(&["--seed".to_string(), seed.to_string()])
                })
            })
            .collect()
    }

    /// `task`'s flags followed by the backend and data flags every run of the experiment shares.
    pub fn common_flags(&self, task: &[&str]) -> Vec<String> {
        let mut flags: Vec<String> = task.iter().map(|flag| flag.to_string()).collect();
        flags.extend([
            "--backend".to_string(),
            format!("{:?}", self.backend).to_lowercase(),
        ]);
        if let Some(dir) = &self.data_dir {
            flags.extend(["--data-dir".to_string(), dir.display().to_string()]);
        }
        flags
    }

    /// The output directory of experiment `name`, created (and emptied first with `--fresh`).
    ///
    /// # Errors
    /// `--seeds 0`, or if the directory cannot be removed or created.
    pub fn output_dir(&self, name: &str) -> Result<PathBuf, HarnessError> {
        if self.seeds == Some(0) {
            return Err(HarnessError::Invalid(
                "--seeds must be at least 1".to_string(),
            ));
        }
        let dir = self.out.join(name);
        if self.fresh && dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| HarnessError::Io(format!("cannot remove {}: {e}", dir.display())))?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| HarnessError::Io(format!("cannot create {}: {e}", dir.display())))?;
        Ok(dir)
    }
}

/// What a finished training run left for its experiment: enough to redraw the figures and the
/// table without training again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunOutcome {
    /// Task-specific results, e.g. `("test BLEU", 12.3)`.
    pub results: Vec<(String, f64)>,
    /// Training time in seconds.
    pub seconds: f64,
    /// Optimizer steps of the run (0 in outcomes saved before they were recorded).
    #[serde(default)]
    pub steps: usize,
    /// Every epoch's metrics (read back from `metrics.csv`; not stored in the JSON).
    #[serde(skip)]
    pub history: History,
}

const OUTCOME: &str = "outcome.json";

impl RunOutcome {
    fn from_report(report: &RunReport) -> Self {
        Self {
            results: report.results.clone(),
            seconds: report.wall_time.as_secs_f64(),
            steps: report.steps,
            history: report.history.clone(),
        }
    }

    /// Metric `metric` of `split` epoch by epoch, `(epoch, value)` for the epochs that have it.
    pub fn curve(&self, split: Phase, metric: &str) -> Vec<(f64, f64)> {
        self.history
            .epochs
            .iter()
            .filter_map(|record| Some((record.epoch as f64, record.get(split, metric)?)))
            .collect()
    }

    /// The last epoch's value of a metric (NaN if the run did not record it).
    pub fn final_value(&self, split: Phase, metric: &str) -> f64 {
        self.history
            .last()
            .and_then(|record| record.get(split, metric))
            .unwrap_or(f64::NAN)
    }

    /// The value of result `name`, if the run reported it.
    pub fn result(&self, name: &str) -> Option<f64> {
        self.results
            .iter()
            .find(|(result, _)| result == name)
            .map(|&(_, value)| value)
    }

    /// Reads the outcome of a finished run in `dir` (from `outcome.json`, or from the run's own
    /// `results.json` when that is missing or damaged), or `None` if it has not finished.
    ///
    /// # Errors
    /// A finished run whose `metrics.csv` is unreadable or holds an impossible value (a loss
    /// below 0, an accuracy outside [0, 100], a perplexity below 1, anything not finite).
    fn read(dir: &Path) -> Result<Option<Self>, HarnessError> {
        let parse = |name: &str| -> Option<Self> {
            serde_json::from_str(&std::fs::read_to_string(dir.join(name)).ok()?).ok()
        };
        let Some(mut outcome) = parse(OUTCOME).or_else(|| parse(RESULTS)) else {
            return Ok(None);
        };
        let csv = dir.join(CSV);
        let damaged = |why: String| {
            HarnessError::Invalid(format!(
                "{why}: the finished run in {} cannot be reused; remove that directory to train \
                 it again",
                dir.display()
            ))
        };
        outcome.history = History::read_csv(&csv).map_err(|e| damaged(e.to_string()))?;
        for record in &outcome.history.epochs {
            for ((split, name), &value) in &record.values {
                if !plausible(name, value) {
                    return Err(damaged(format!(
                        "{} holds an impossible {split:?} {name} of {value} at epoch {}",
                        csv.display(),
                        record.epoch
                    )));
                }
            }
        }
        Ok(Some(outcome))
    }

    fn write(&self, dir: &Path) -> Result<(), HarnessError> {
        let path = dir.join(OUTCOME);
        let json = serde_json::to_string_pretty(self).expect("outcome serialises");
        crate::run_dir::write_atomic(&path, json.as_bytes())
            .map_err(|e| HarnessError::Io(format!("cannot write {}: {e}", path.display())))
    }
}

/// One training run of an experiment: its name (and artifact directory) and the command-line
/// arguments of its task, without `--artifact-dir`, `--resume` and `--plain`, which the
/// experiment adds.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    /// Short name, also the run's directory inside the experiment's.
    pub name: String,
    /// The task's flags.
    pub flags: Vec<String>,
}

impl PlannedRun {
    /// A run named `name` with `flags`.
    pub fn new(name: impl Into<String>, flags: &[&str]) -> Self {
        Self {
            name: name.into(),
            flags: flags.iter().map(|flag| flag.to_string()).collect(),
        }
    }

    /// The same run with more flags.
    pub fn with(mut self, flags: &[String]) -> Self {
        self.flags.extend(flags.iter().cloned());
        self
    }
}

/// Runs each of `runs` with `train` (which parses the flags and trains), in `dir/<name>`,
/// skipping finished runs and resuming interrupted ones, with a progress bar over the whole
/// list. Returns the outcomes in the order of `runs`.
///
/// # Errors
/// The first run that fails stops the experiment (finished runs stay finished).
pub fn run_all(
    dir: &Path,
    runs: &[PlannedRun],
    mut train: impl FnMut(Vec<String>) -> Result<RunReport, HarnessError>,
) -> Result<Vec<RunOutcome>, HarnessError> {
    let mut bar = progress::ProgressBar::new(runs.len());
    let mut outcomes = Vec::with_capacity(runs.len());
    for run in runs {
        let run_dir = dir.join(&run.name);
        if let Some(outcome) = RunOutcome::read(&run_dir)? {
            bar.skip(&format!("{}: finished earlier, reused", run.name));
            outcomes.push(outcome);
            continue;
        }
        bar.start(&run.name);
        let mut flags = vec!["experiment".to_string()];
        flags.extend(run.flags.iter().cloned());
        flags.extend([
            "--plain".to_string(),
            "--artifact-dir".to_string(),
            run_dir.display().to_string(),
        ]);
        // An interrupted run continues (or starts over if it saved no checkpoint yet).
        if RunDir::new(&run_dir).holds_run() {
            flags.push("--resume".to_string());
        }
        let report = train(flags).map_err(|error| match error {
            HarnessError::Resume(message) => HarnessError::Resume(format!(
                "{message} (run `{}` of this experiment; add --fresh to start the experiment over)",
                run.name
            )),
            other => other,
        })?;
        let outcome = RunOutcome::from_report(&report);
        outcome.write(&run_dir)?;
        bar.finish(Duration::from_secs_f64(outcome.seconds));
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Whether `value` can be a value of the metric `name` (Burn's names: `Loss`, `Accuracy` in
/// percent, `Perplexity`; anything else only needs to be finite).
fn plausible(name: &str, value: f64) -> bool {
    value.is_finite()
        && match name {
            "Loss" | "LearningRate" => value >= 0.0,
            "Accuracy" => (0.0..=100.0).contains(&value),
            "Perplexity" => value >= 1.0,
            _ => true,
        }
}

/// Writes `text` to `path` (atomically).
///
/// # Errors
/// If the file cannot be written.
pub fn write_file(path: &Path, text: &str) -> Result<(), HarnessError> {
    crate::run_dir::write_atomic(path, text.as_bytes())
        .map_err(|e| HarnessError::Io(format!("cannot write {}: {e}", path.display())))
}

/// Draws `figure` into `path`; a figure that cannot be drawn (no fonts) is a warning, not a
/// failure, since the CSV files hold the same numbers.
pub fn save_figure(figure: &crate::figure::Figure, path: &Path) {
    match figure.save(path) {
        Ok(()) => println!("figure: {}", path.display()),
        Err(error) => eprintln!("warning: no figure {}: {error}", path.display()),
    }
}

/// Formats a table with a header row, right-aligned columns.
pub fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &width))| {
                if i == 0 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut table = line(header.to_vec());
    let dashes: Vec<String> = widths.iter().map(|&width| "-".repeat(width)).collect();
    table.push_str(&line(dashes.iter().map(String::as_str).collect()));
    for row in rows {
        table.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    table
}

/// The line that says where the runs stand in RAdam's warm-up: `r_t` halfway through and at the
/// last of `steps` steps (r_t grows with t, so `r_t` at the middle bounds the last half).
pub fn regime_line(steps: usize, beta_2: f32) -> String {
    let r = |t: usize| {
        radam_burn::rectification(f64::from(beta_2), t.max(1), 5.0).map_or_else(
            || "none (momentum phase)".to_string(),
            |r| format!("{r:.3}"),
        )
    };
    format!(
        "{steps} optimizer steps per run; RAdam's r_t (β2 {beta_2}) is {} at step {} and {} at \
         the last step.\n",
        r(steps / 2),
        steps / 2,
        r(steps)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_run_is_reused_only_while_its_files_hold_up() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        assert!(RunOutcome::read(run).unwrap().is_none());
        let csv = "epoch,train/Loss,valid/Accuracy\n1,2.25,31.5\n2,1.75,48.0\n";
        std::fs::write(run.join(CSV), csv).unwrap();
        // outcome.json damaged (truncated by a kill): the run's results.json stands in.
        std::fs::write(run.join(OUTCOME), "{\"results\": [[\"test BL").unwrap();
        std::fs::write(
            run.join(RESULTS),
            "{\"results\": [[\"test BLEU\", 12.5]], \"seconds\": 3.0, \"steps\": 16}",
        )
        .unwrap();
        let outcome = RunOutcome::read(run).unwrap().expect("a finished run");
        assert_eq!(outcome.result("test BLEU"), Some(12.5));
        assert_eq!((outcome.steps, outcome.history.epochs.len()), (16, 2));
        // A metrics file with a value no run can have is named, not averaged into a table.
        for (bad, why) in [
            (
                "2,-46.049,48.0",
                "an impossible Train Loss of -46.049 at epoch 2",
            ),
            (
                "2,1.75,148.0",
                "an impossible Valid Accuracy of 148 at epoch 2",
            ),
            ("2,NaN,48.0", "an impossible Train Loss of NaN at epoch 2"),
        ] {
            let text = format!("epoch,train/Loss,valid/Accuracy\n1,2.25,31.5\n{bad}\n");
            std::fs::write(run.join(CSV), text).unwrap();
            let error = RunOutcome::read(run).unwrap_err().to_string();
            assert!(error.contains(why), "{bad}: {error}");
            assert!(
                error.ends_with("remove that directory to train it again"),
                "{error}"
            );
        }
    }

    #[test]
    fn regime_line_reports_rectification_halfway_and_at_the_end() {
        // r_t at β2 0.999 from radam_burn's maths: 0.802 at t = 1800 (RADAM.md: 0.8 near 1800), 0.948 at 3600.
        let line = regime_line(3600, 0.999);
        let beta_2 = f64::from(0.999_f32);
        let expected = format!(
            "r_t (β2 0.999) is {:.3} at step 1800 and {:.3} at the last step",
            radam_burn::rectification(beta_2, 1800, 5.0).unwrap(),
            radam_burn::rectification(beta_2, 3600, 5.0).unwrap()
        );
        assert!(line.starts_with("3600 optimizer steps per run"), "{line}");
        assert!(line.contains(&expected), "{line}");
        assert!(line.contains("is 0.80"), "{line}");
        assert!(regime_line(8, 0.999).contains("none (momentum phase) at step 4"));
    }

    #[test]
    fn tables_align_their_columns() {
        let table = format_table(
            &["optimizer", "lr", "accuracy"],
            &[
                vec!["RAdam".into(), "0.1".into(), "41.5".into()],
                vec!["SGD".into(), "0.003".into(), "9.8".into()],
            ],
        );
        assert_eq!(
            table,
            "optimizer     lr  accuracy\n\
             ---------  -----  --------\n\
             RAdam        0.1      41.5\n\
             SGD        0.003       9.8\n"
        );
    }
}
