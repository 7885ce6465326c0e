//! Per-epoch metric history: collected from the Learner's metric events by a renderer wrapper,
//! kept across resumed runs, and written as CSV after every epoch.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use burn::train::LearnerSummary;
use burn::train::metric::NumericEntry;
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, TrainingProgress,
};

use crate::harness::divergence::DivergenceGuard;

/// Which phase of an epoch a value was measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Training batches.
    Train,
    /// Validation batches.
    Valid,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Valid => "valid",
        }
    }
}

/// One finished epoch: the epoch mean of every numeric metric, per split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// `(split, metric name) → epoch mean` (the last value for metrics that report no mean).
    pub values: BTreeMap<(Phase, String), f64>,
}

impl EpochRecord {
    /// The value of `metric` on `split`, if recorded.
    pub fn get(&self, split: Phase, metric: &str) -> Option<f64> {
        self.values.get(&(split, metric.to_string())).copied()
    }
}

/// The metric history of a run, epoch by epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Finished epochs, in order.
    pub epochs: Vec<EpochRecord>,
}

impl History {
    /// Metric names, in order of first appearance, each with the splits that report it.
    pub fn metrics(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for record in &self.epochs {
            for (_, name) in record.values.keys() {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        names
    }

    /// The last finished epoch.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// A table of every metric: its value after the first and the last epoch, and its minimum
    /// and maximum with their epochs.
    pub fn summary_table(&self) -> String {
        let mut keys: Vec<(Phase, String)> = Vec::new();
        for record in &self.epochs {
            for key in record.values.keys() {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
        keys.sort();
        let mut text = format!(
            "| {:<5} | {:<16} | {:>10} | {:>10} | {:>16} | {:>16} |\n|{}|\n",
            "split",
            "metric",
            "first",
            "last",
            "min (epoch)",
            "max (epoch)",
            [
                "-------",
                "------------------",
                "------------",
                "------------",
                "------------------",
                "------------------"
            ]
            .join("|")
        );
        for key in keys {
            let series: Vec<(usize, f64)> = self
                .epochs
                .iter()
                .filter_map(|r| r.values.get(&key).map(|&v| (r.epoch, v)))
                .collect();
            let (Some(first), Some(last)) = (series.first(), series.last()) else {
                continue;
            };
            let pick = |better: fn(f64, f64) -> bool| {
                series
                    .iter()
                    .copied()
                    .reduce(|a, b| if better(b.1, a.1) { b } else { a })
                    .expect("non-empty")
            };
            let (min, max) = (pick(|a, b| a < b), pick(|a, b| a > b));
            text.push_str(&format!(
                "| {:<5} | {:<16} | {:>10.4} | {:>10.4} | {:>16} | {:>16} |\n",
                key.0.label(),
                key.1,
                first.1,
                last.1,
                format!("{:.4} ({})", min.1, min.0),
                format!("{:.4} ({})", max.1, max.0)
            ));
        }
        text
    }

    /// The CSV text: `epoch,train/<metric>,valid/<metric>,…`, one row per epoch, empty cells
    /// where a split has no value.
    pub fn to_csv(&self) -> String {
        let columns: Vec<(Phase, String)> = self
            .metrics()
            .into_iter()
            .flat_map(|name| [(Phase::Train, name.clone()), (Phase::Valid, name)])
            .filter(|key| {
                self.epochs
                    .iter()
                    .any(|record| record.values.contains_key(key))
            })
            .collect();
        let mut text = String::from("epoch");
        for (split, name) in &columns {
            text.push_str(&format!(",{}/{}", split.label(), name.replace(',', ";")));
        }
        text.push('\n');
        for record in &self.epochs {
            text.push_str(&record.epoch.to_string());
            for key in &columns {
                text.push(',');
                if let Some(value) = record.values.get(key) {
                    text.push_str(&value.to_string());
                }
            }
            text.push('\n');
        }
        text
    }

    /// Reads a history written by [`to_csv`](Self::to_csv).
    ///
    /// # Errors
    /// If the file cannot be read or is not such a CSV (the message names the line).
    pub fn read_csv(path: &Path) -> io::Result<Self> {
        let text = fs::read_to_string(path)?;
        let invalid = |line: usize, why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}:{line}: {why}", path.display()),
            )
        };
        let mut lines = text.lines();
        let header = lines.next().ok_or_else(|| invalid(1, "empty file"))?;
        let mut columns = Vec::new();
        for column in header.split(',').skip(1) {
            let (split, name) = column
                .split_once('/')
                .ok_or_else(|| invalid(1, "a column is not `split/metric`"))?;
            let split = match split {
                "train" => Phase::Train,
                "valid" => Phase::Valid,
                _ => return Err(invalid(1, "unknown split")),
            };
            columns.push((split, name.to_string()));
        }
        let mut history = Self::default();
        for (index, line) in lines.enumerate() {
            let mut cells = line.split(',');
            let epoch = cells
                .next()
                .and_then(|cell| cell.parse().ok())
                .ok_or_else(|| invalid(index + 2, "the epoch is not a number"))?;
            let mut record = EpochRecord {
                epoch,
                values: BTreeMap::new(),
            };
            for (key, cell) in columns.iter().zip(cells) {
                if !cell.is_empty() {
                    let value = cell
                        .parse()
                        .map_err(|_| invalid(index + 2, "a value is not a number"))?;
                    record.values.insert(key.clone(), value);
                }
            }
            history.epochs.push(record);
        }
        Ok(history)
    }
}

/// Called with the whole history after each finished epoch (to write the CSV and the plot).
pub type EpochCallback = Box<dyn FnMut(&History) + Send + Sync>;

/// A renderer that passes everything to another renderer and records each epoch's numeric
/// metrics into a shared [`History`].
pub struct RecordingRenderer {
    inner: Box<dyn MetricsRenderer>,
    history: Arc<Mutex<History>>,
    on_epoch: EpochCallback,
    pending_train: Vec<(String, f64)>,
    current: Option<EpochRecord>,
    guard: Option<DivergenceGuard>,
}

impl RecordingRenderer {
    /// Records into `history` (which may already hold the epochs of an interrupted run; they
    /// are kept) and calls `on_epoch` after every finished epoch.
    pub fn new(
        inner: Box<dyn MetricsRenderer>,
        history: Arc<Mutex<History>>,
        on_epoch: EpochCallback,
    ) -> Self {
        Self {
            inner,
            history,
            on_epoch,
            pending_train: Vec::new(),
            current: None,
            guard: None,
        }
    }

    /// The same renderer, showing every step's training loss (the metric named `Loss`) to
    /// `guard`.
    pub fn with_guard(mut self, guard: DivergenceGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    fn numeric(state: &MetricState) -> Option<(String, f64)> {
        match state {
            MetricState::Numeric(entry, value) => {
                let value = match value {
                    NumericEntry::Aggregated { sum, count, .. } if *count > 0 => {
                        sum / *count as f64
                    }
                    NumericEntry::Aggregated { current, .. } => *current,
                    NumericEntry::Value(value) => *value,
                };
                Some((entry.name.to_string(), value))
            }
            MetricState::Generic(_) => None,
        }
    }

    fn finish_epoch(&mut self) {
        let Some(record) = self.current.take() else {
            return;
        };
        let mut history = self.history.lock().expect("history lock poisoned");
        history
            .epochs
            .retain(|existing| existing.epoch < record.epoch);
        history.epochs.push(record);
        (self.on_epoch)(&history);
    }
}

impl MetricsRendererTraining for RecordingRenderer {
    fn update_train(&mut self, state: MetricState) {
        if let Some(value) = Self::numeric(&state) {
            self.pending_train.push(value);
        }
        self.inner.update_train(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        if let (Some((name, value)), Some(current)) = (Self::numeric(&state), &mut self.current) {
            current.values.insert((Phase::Valid, name), value);
        }
        self.inner.update_valid(state);
    }

    fn render_train(&mut self, item: TrainingProgress) {
        if let Some(guard) = &self.guard
            && let Some((_, loss)) = self.pending_train.iter().find(|(name, _)| name == "Loss")
        {
            guard.observe(item.epoch, item.iteration, *loss);
        }
        if self.current.as_ref().is_some_and(|c| c.epoch != item.epoch) {
            self.finish_epoch();
        }
        let current = self.current.get_or_insert_with(|| EpochRecord {
            epoch: item.epoch,
            values: BTreeMap::new(),
        });
        for (name, value) in self.pending_train.drain(..) {
            current.values.insert((Phase::Train, name), value);
        }
        self.inner.render_train(item);
    }

    fn render_valid(&mut self, item: TrainingProgress) {
        self.inner.render_valid(item);
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        self.finish_epoch();
        self.inner.on_train_end(summary)
    }
}

impl MetricsRendererEvaluation for RecordingRenderer {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        self.inner.update_test(name, state);
    }

    fn render_test(&mut self, item: EvaluationProgress) {
        self.inner.render_test(item);
    }
}

impl MetricsRenderer for RecordingRenderer {
    fn manual_close(&mut self) {
        self.finish_epoch();
        self.inner.manual_close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> History {
        let mut first = EpochRecord {
            epoch: 1,
            values: BTreeMap::new(),
        };
        first.values.insert((Phase::Train, "Loss".into()), 2.5);
        first.values.insert((Phase::Valid, "Loss".into()), 2.25);
        first
            .values
            .insert((Phase::Train, "Learning Rate".into()), 0.001);
        let mut second = first.clone();
        second.epoch = 2;
        second.values.insert((Phase::Train, "Loss".into()), 1.125);
        History {
            epochs: vec![first, second],
        }
    }

    #[test]
    fn csv_round_trips() {
        let history = sample();
        let csv = history.to_csv();
        assert_eq!(
            csv.lines().next().unwrap(),
            "epoch,train/Learning Rate,train/Loss,valid/Loss"
        );
        assert_eq!(csv.lines().nth(2).unwrap(), "2,0.001,1.125,2.25");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        fs::write(&path, &csv).unwrap();
        assert_eq!(History::read_csv(&path).unwrap(), history);
    }

    #[test]
    fn the_summary_shows_first_last_and_extremes() {
        let table = sample().summary_table();
        let loss = table
            .lines()
            .find(|l| l.starts_with("| train | Loss"))
            .unwrap();
        assert!(
            loss.contains("2.5000") && loss.contains("1.1250 (2)") && loss.contains("2.5000 (1)"),
            "{table}"
        );
        assert_eq!(table.lines().count(), 2 + 3, "{table}");
    }

    #[test]
    fn a_broken_csv_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        fs::write(&path, "epoch,train/Loss\n1,0.5\nx,0.4\n").unwrap();
        let error = History::read_csv(&path).unwrap_err().to_string();
        assert!(
            error.ends_with("metrics.csv:3: the epoch is not a number"),
            "{error}"
        );
    }
}
