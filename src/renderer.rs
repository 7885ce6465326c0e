//! Metric renderers for Burn's `LearnerBuilder::renderer`.
//!
//! Burn 0.19.1 starts its TUI whenever stdout is a terminal and otherwise prints a debug line for
//! *every* iteration. [`PlainRenderer`] prints a few readable lines instead — suited to log files,
//! CI and `--plain` — and [`QuietRenderer`] prints nothing at all (tests).

use std::io::Write;
use std::time::{Duration, Instant};

use burn::train::LearnerSummary;
use burn::train::metric::NumericEntry;
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, TrainingProgress,
};

/// A renderer that shows nothing, not even the final summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct QuietRenderer;

impl MetricsRendererTraining for QuietRenderer {
    fn update_train(&mut self, _state: MetricState) {}
    fn update_valid(&mut self, _state: MetricState) {}
    fn render_train(&mut self, _item: TrainingProgress) {}
    fn render_valid(&mut self, _item: TrainingProgress) {}
    fn on_train_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        Ok(())
    }
}

impl MetricsRendererEvaluation for QuietRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
    fn render_test(&mut self, _item: EvaluationProgress) {}
}

impl MetricsRenderer for QuietRenderer {
    fn manual_close(&mut self) {}
}

/// The latest value of each of one split's metrics, in order of first report. Burn formats a
/// numeric metric as `epoch <running value> - batch <value>`; the running value over the epoch
/// is what a log line shows (as four significant digits, keeping any unit).
#[derive(Default)]
struct EpochMetrics {
    metrics: Vec<(String, String)>,
}

/// `"epoch 85.2 % - batch 84 %"` → `"85.20 %"`; anything else as it is.
fn epoch_value(formatted: &str) -> String {
    let Some(rest) = formatted.strip_prefix("epoch ") else {
        return formatted.to_string();
    };
    let running = rest.split(" - batch").next().unwrap_or(rest).trim();
    let mut parts = running.splitn(2, ' ');
    let number = parts.next().unwrap_or_default();
    match number.parse::<f64>() {
        Ok(value) => match parts.next() {
            Some(unit) => format!("{} {unit}", format_value(value)),
            None => format_value(value),
        },
        Err(_) => running.to_string(),
    }
}

impl EpochMetrics {
    fn update(&mut self, state: MetricState) {
        let (name, value) = match state {
            MetricState::Numeric(entry, NumericEntry::Value(value))
                if !entry.formatted.starts_with("epoch ") =>
            {
                (entry.name.to_string(), format_value(value))
            }
            MetricState::Numeric(entry, _) | MetricState::Generic(entry) => {
                (entry.name.to_string(), epoch_value(&entry.formatted))
            }
        };
        match self
            .metrics
            .iter_mut()
            .find(|(existing, _)| *existing == name)
        {
            Some((_, latest)) => *latest = value,
            None => self.metrics.push((name, value)),
        }
    }

    fn clear(&mut self) {
        self.metrics.clear();
    }

    fn describe(&self) -> String {
        self.metrics
            .iter()
            .map(|(name, value)| format!("{name} {value}"))
            .collect::<Vec<_>>()
            .join("  ")
    }
}

/// Four significant digits, switching to scientific notation for very small or large values.
fn format_value(value: f64) -> String {
    four_significant_digits(value, 1e5, "0.000")
}

/// `value` with four significant digits: plain notation for magnitudes in `[1e-3, plain_below)`,
/// scientific (`1.235e-4`) otherwise, and `zero` for zero. Shared by the training logs and
/// gpu-check's report.
pub(crate) fn four_significant_digits(value: f64, plain_below: f64, zero: &str) -> String {
    let magnitude = value.abs();
    if value == 0.0 {
        zero.to_string()
    } else if (1e-3..plain_below).contains(&magnitude) {
        let decimals = (3 - magnitude.log10().floor() as i32).clamp(0, 6) as usize;
        format!("{value:.decimals$}")
    } else {
        format!("{value:.3e}")
    }
}

/// Log-style progress: a line every `interval` during an epoch, and one line per finished epoch
/// with the epoch means of the training and validation metrics.
///
/// ```text
/// epoch 1/3  train  41% (1664/4096)  Loss 1.873  Accuracy 31.02  ETA 14 s
/// epoch 1/3  train: Loss 1.512  Accuracy 45.30  |  valid: Loss 1.207  Accuracy 57.80  [24.1 s]
/// ```
pub struct PlainRenderer {
    out: Box<dyn Write + Send + Sync>,
    interval: Duration,
    train: EpochMetrics,
    valid: EpochMetrics,
    epoch: usize,
    epoch_total: usize,
    epoch_started: Instant,
    last_line: Instant,
    pending_epoch_line: bool,
    /// The last epoch whose line is printed: with several devices, Burn's other replicas may
    /// report their last training items after it, and they must not open it again.
    printed_epoch: usize,
}

impl Default for PlainRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl PlainRenderer {
    /// Prints to standard output, with a progress line at most every 10 seconds.
    pub fn new() -> Self {
        Self::to_writer(std::io::stdout(), Duration::from_secs(10))
    }

    /// Prints to `out`, with a progress line at most every `interval`.
    pub fn to_writer(out: impl Write + Send + Sync + 'static, interval: Duration) -> Self {
        let now = Instant::now();
        Self {
            out: Box::new(out),
            interval,
            train: EpochMetrics::default(),
            valid: EpochMetrics::default(),
            epoch: 0,
            epoch_total: 0,
            epoch_started: now,
            last_line: now,
            pending_epoch_line: false,
            printed_epoch: 0,
        }
    }

    fn line(&mut self, text: String) {
        // A closed pipe (e.g. `| head`) must not stop training.
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
        self.last_line = Instant::now();
    }

    fn start_epoch_if_new(&mut self, item: &TrainingProgress) {
        if item.epoch != self.epoch {
            self.finish_epoch();
            self.epoch = item.epoch;
            self.epoch_total = item.epoch_total;
            self.epoch_started = Instant::now();
            self.last_line = self.epoch_started;
            self.train.clear();
            self.valid.clear();
        }
    }

    fn finish_epoch(&mut self) {
        if !self.pending_epoch_line {
            return;
        }
        self.pending_epoch_line = false;
        self.printed_epoch = self.epoch;
        let mut text = format!(
            "epoch {}/{}  train: {}",
            self.epoch,
            self.epoch_total,
            self.train.describe()
        );
        if !self.valid.metrics.is_empty() {
            text.push_str(&format!("  |  valid: {}", self.valid.describe()));
        }
        text.push_str(&format!(
            "  [{:.2} s]",
            self.epoch_started.elapsed().as_secs_f64()
        ));
        self.line(text);
    }
}

impl MetricsRendererTraining for PlainRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.train.update(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.valid.update(state);
    }

    fn render_train(&mut self, item: TrainingProgress) {
        if item.epoch <= self.printed_epoch {
            // A late item of another replica, for an epoch already printed.
            return;
        }
        self.start_epoch_if_new(&item);
        self.pending_epoch_line = true;
        let progress = &item.progress;
        if self.last_line.elapsed() >= self.interval && progress.items_total > 0 {
            let fraction = progress.items_processed as f64 / progress.items_total as f64;
            let elapsed = self.epoch_started.elapsed().as_secs_f64();
            let eta = if fraction > 0.0 {
                elapsed * (1.0 - fraction) / fraction
            } else {
                f64::NAN
            };
            let text = format!(
                "epoch {}/{}  train {:>3.0}% ({}/{})  {}  ETA {:.0} s",
                item.epoch,
                item.epoch_total,
                100.0 * fraction,
                progress.items_processed,
                progress.items_total,
                self.train.describe(),
                eta
            );
            self.line(text);
        }
    }

    fn render_valid(&mut self, item: TrainingProgress) {
        let progress = &item.progress;
        if progress.items_total > 0 && progress.items_processed >= progress.items_total {
            self.finish_epoch();
        }
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        self.finish_epoch();
        if let Some(summary) = summary {
            self.line(format!("{summary}"));
        }
        Ok(())
    }
}

impl MetricsRendererEvaluation for PlainRenderer {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.valid.update(state);
    }

    fn render_test(&mut self, item: EvaluationProgress) {
        let progress = &item.progress;
        if progress.items_total > 0 && progress.items_processed >= progress.items_total {
            let text = format!("test: {}", self.valid.describe());
            self.line(text);
            self.valid.clear();
        }
    }
}

impl MetricsRenderer for PlainRenderer {
    fn manual_close(&mut self) {}
}

/// `75 s`, `4m05s`, `1h02m`.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 90 {
        format!("{seconds} s")
    } else if seconds < 3600 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose text the test reads back.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn progress(epoch: usize, processed: usize, total: usize) -> TrainingProgress {
        TrainingProgress {
            progress: burn::data::dataloader::Progress {
                items_processed: processed,
                items_total: total,
            },
            epoch,
            epoch_total: 2,
            iteration: processed,
        }
    }

    #[test]
    fn a_late_item_of_another_replica_does_not_print_its_epoch_again() {
        let out = Captured::default();
        let mut renderer = PlainRenderer::to_writer(out.clone(), Duration::from_secs(3600));
        // Two replicas train epoch 1; the main one validates and ends the epoch while the
        // other still reports its last item, as Burn's DDP does.
        renderer.render_train(progress(1, 4, 8));
        renderer.render_train(progress(1, 8, 8));
        renderer.render_valid(progress(1, 2, 2));
        renderer.render_train(progress(1, 8, 8));
        renderer.render_train(progress(2, 4, 8));
        renderer.render_valid(progress(2, 2, 2));
        renderer.on_train_end(None).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .map(|l| &l[..l.find("  train").unwrap()])
            .collect();
        assert_eq!(lines, ["epoch 1/2", "epoch 2/2"], "{text}");
    }

    #[test]
    fn durations_read_in_seconds_minutes_or_hours() {
        assert_eq!(format_duration(Duration::from_secs(75)), "75 s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn values_keep_four_significant_digits() {
        assert_eq!(format_value(0.0), "0.000");
        assert_eq!(format_value(1.23456), "1.235");
        assert_eq!(format_value(85.2), "85.20");
        assert_eq!(format_value(1234.5), "1234");
        assert_eq!(format_value(0.0123456), "0.01235");
        assert_eq!(format_value(1e-4), "1.000e-4");
        assert_eq!(format_value(2.5e7), "2.500e7");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn epoch_values_come_from_burns_formatted_entries() {
        assert_eq!(epoch_value("epoch 0.43219 - batch 0.41"), "0.4322");
        assert_eq!(epoch_value("epoch 85.2 % - batch 84 %"), "85.20 %");
        assert_eq!(epoch_value("epoch 12.500 - batch 13.000"), "12.50");
        assert_eq!(epoch_value("momentum phase"), "momentum phase");
    }
}
