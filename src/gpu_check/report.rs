//! The figures of a `gpu-check` run: each printed as one line the moment it is measured, and the
//! whole set rewritten to the `--json` file after every figure, so a run cut off by its budget
//! (or by the loan of the machine ending) still leaves everything it measured.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

/// One measured figure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measurement {
    /// What was measured, e.g. `step-radam-fused-n10000000`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit, e.g. `ns/param`.
    pub unit: String,
}

/// What a run has measured so far, as saved to the JSON file.
#[derive(Debug, Default, Serialize)]
struct Measured {
    /// The adapter wgpu found.
    adapter: String,
    /// The figures, in the order they were measured.
    figures: Vec<Measurement>,
    /// Notes: what was skipped, and why.
    notes: Vec<String>,
    /// Correctness cases that failed.
    failures: Vec<String>,
    /// Whether the correctness part ran to its end.
    correctness_complete: bool,
    /// Whether every part ran to its end within the budget.
    complete: bool,
}

/// Everything a run has measured so far, shared between the measuring thread and the one that
/// stops the run when its budget is spent.
#[derive(Debug)]
pub struct Report {
    measured: Mutex<Measured>,
    json: Option<PathBuf>,
}

impl Report {
    /// A report of a run on `adapter` that also writes `json`, if given.
    pub fn new(adapter: String, json: Option<PathBuf>) -> Self {
        Self {
            measured: Mutex::new(Measured {
                adapter,
                ..Measured::default()
            }),
            json,
        }
    }

    fn measured(&self) -> std::sync::MutexGuard<'_, Measured> {
        // A panic elsewhere cannot leave the figures half-updated: each change is one push.
        self.measured
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a figure: prints `gpu-check <name> <value> <unit>` and saves the JSON file.
    pub fn figure(&self, name: impl Into<String>, value: f64, unit: &str) {
        let figure = Measurement {
            name: name.into(),
            value,
            unit: unit.to_string(),
        };
        let mut measured = self.measured();
        println!("gpu-check {} {} {}", figure.name, format_value(value), unit);
        let _ = std::io::stdout().flush();
        measured.figures.push(figure);
        self.save(&measured);
    }

    /// Records a note (a skipped part and why): printed as `gpu-check note: …`.
    pub fn note(&self, note: String) {
        let mut measured = self.measured();
        println!("gpu-check note: {note}");
        let _ = std::io::stdout().flush();
        measured.notes.push(note);
        self.save(&measured);
    }

    /// Records a failed correctness case.
    pub fn fail(&self, failure: String) {
        let mut measured = self.measured();
        eprintln!("gpu-check FAILED: {failure}");
        measured.failures.push(failure);
        self.save(&measured);
    }

    /// Marks the correctness part as run to its end.
    pub fn correctness_done(&self) {
        let mut measured = self.measured();
        measured.correctness_complete = true;
        self.save(&measured);
    }

    /// Marks the whole run as finished within its budget.
    pub fn all_done(&self) {
        let mut measured = self.measured();
        measured.complete = true;
        self.save(&measured);
    }

    /// The process's exit code: 1 if a correctness case failed, 3 if the correctness part did
    /// not finish, else 0.
    pub fn exit_code(&self) -> i32 {
        let measured = self.measured();
        if !measured.failures.is_empty() {
            1
        } else if !measured.correctness_complete {
            3
        } else {
            0
        }
    }

    /// Writes the JSON file (atomically: a half-written file is never left behind).
    fn save(&self, measured: &Measured) {
        let Some(path) = &self.json else { return };
        let written = serde_json::to_vec_pretty(measured)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::run_dir::write_atomic(path, &bytes));
        if let Err(error) = written {
            eprintln!("gpu-check: cannot write {}: {error}", path.display());
        }
    }
}

/// Four significant digits, in plain notation below 10⁶ (and `0` for zero), scientific
/// otherwise.
fn format_value(value: f64) -> String {
    crate::renderer::four_significant_digits(value, 1e6, "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_with_four_significant_digits() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(1234.5678), "1235");
        assert_eq!(format_value(12.345678), "12.35");
        assert_eq!(format_value(0.5), "0.5000");
        assert_eq!(format_value(3.1e-8), "3.100e-8");
        assert_eq!(format_value(2.5e7), "2.500e7");
    }

    #[test]
    fn the_json_file_holds_every_figure_and_the_exit_code_says_what_failed() {
        let dir = std::env::temp_dir().join(format!("gpu-check-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("figures.json");
        let report = Report::new("lavapipe".to_string(), Some(path.clone()));
        assert_eq!(report.exit_code(), 3, "correctness not run yet");
        report.figure("bandwidth-n100", 12.5, "GB/s");
        report.correctness_done();
        assert_eq!(report.exit_code(), 0);
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(saved["adapter"], "lavapipe");
        assert_eq!(saved["figures"][0]["name"], "bandwidth-n100");
        assert_eq!(saved["figures"][0]["value"], 12.5);
        assert_eq!(saved["figures"][0]["unit"], "GB/s");
        report.fail("step-diff-torch-l2-n1 2e-5".to_string());
        assert_eq!(report.exit_code(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
