//! What a finished run reports: its metrics, its task's results (also kept in `results.json`,
//! which marks the run as complete), and the closing lines it prints.

use std::path::PathBuf;
use std::time::Duration;

use super::error::{HarnessError, io_error};
use super::session::Session;
use super::session::fit::TrainedRun;
use crate::harness::history::History;
use crate::run_dir::{CSV, PLOT, RESULTS, write_atomic};

impl Session {
    /// Completes the run once every phase after training is done: its report, with the task's
    /// `results` (test BLEU, test perplexity) also written to `results.json` (atomically, by
    /// node 0). A run stopped before this is resumed into those phases.
    ///
    /// # Errors
    /// If `results.json` cannot be written.
    pub fn complete<M>(
        &self,
        run: &TrainedRun<M>,
        results: Vec<(String, f64)>,
    ) -> Result<RunReport, HarnessError> {
        let report = RunReport::new(self, run, results);
        if self.node_rank() == 0 {
            // The schema of an experiment's `RunOutcome`, which can be rebuilt from it.
            let json = serde_json::to_string_pretty(&serde_json::json!({
                "results": report.results,
                "seconds": report.wall_time.as_secs_f64(),
                "steps": report.steps,
            }))
            .expect("results serialise");
            let path = self.dir().join(RESULTS);
            write_atomic(&path, json.as_bytes()).map_err(|e| io_error("write", &path, e))?;
        }
        Ok(report)
    }
}

/// What a task reports when it finishes.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Every epoch's metrics.
    pub history: History,
    /// Training time of this process.
    pub wall_time: Duration,
    /// Optimizer steps of the whole run.
    pub steps: usize,
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
            steps: run.steps,
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
                .filter(|((split, _), _)| *split == crate::harness::history::Phase::Valid)
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
