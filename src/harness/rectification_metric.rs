//! A training metric that shows RAdam's rectification term r_t at every step, or that RAdam is
//! still in its momentum phase (ρ_t at or below the threshold).

use std::sync::Arc;

use burn::train::metric::{Metric, MetricEntry, MetricMetadata, MetricName, Numeric, NumericEntry};
use radam_burn::tooling::widen;
use radam_burn::{RAdamConfig, rectification, rho};

/// r_t (Eq. 6 of the paper) of the step just taken; 0 while RAdam is in its momentum phase.
///
/// The Learner reports iterations per epoch, so the metric counts optimizer steps itself,
/// starting after `steps_before` (non-zero when a run resumes from a checkpoint).
#[derive(Clone)]
pub struct RectificationMetric {
    name: MetricName,
    beta_2: f64,
    threshold: f64,
    skips_below_threshold: bool,
    steps_before: usize,
    updates_per_step: usize,
    updates: usize,
    current: f64,
}

impl RectificationMetric {
    /// The metric for an optimizer configured by `config`, whose first step here is step
    /// `steps_before + 1`.
    pub fn new(config: &RAdamConfig, steps_before: usize) -> Self {
        Self {
            name: Arc::new("RAdam r_t".to_string()),
            beta_2: widen(config.beta_2),
            threshold: config.threshold,
            skips_below_threshold: !config.degenerated_to_sgd,
            steps_before,
            updates_per_step: 1,
            updates: 0,
            current: f64::NAN,
        }
    }

    /// The same metric for a learner that reports each step `updates` times: Burn's DDP does,
    /// once per local device.
    ///
    /// # Panics
    /// If `updates` is zero.
    pub fn with_updates_per_step(mut self, updates: usize) -> Self {
        assert!(updates > 0, "a learner reports each step at least once");
        self.updates_per_step = updates;
        self
    }

    /// The text shown for step `t`: `r_t 0.02582` or `momentum phase (ρ_t 4.996)`.
    pub fn describe(&self, t: usize) -> (f64, String) {
        match rectification(self.beta_2, t, self.threshold) {
            Some(r_t) => (r_t, format!("{r_t:.4}")),
            None => {
                let phase = if self.skips_below_threshold {
                    "no update"
                } else {
                    "momentum phase"
                };
                (0.0, format!("{phase} (ρ_t {:.3})", rho(self.beta_2, t)))
            }
        }
    }
}

impl Metric for RectificationMetric {
    type Input = ();

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, _item: &(), _metadata: &MetricMetadata) -> MetricEntry {
        self.updates += 1;
        let step = self.steps_before + self.updates.div_ceil(self.updates_per_step);
        let (value, formatted) = self.describe(step);
        self.current = value;
        MetricEntry::new(self.name.clone(), formatted, value.to_string())
    }

    /// Keeps the step count: r_t follows optimizer steps across epochs.
    fn clear(&mut self) {}
}

impl Numeric for RectificationMetric {
    fn value(&self) -> NumericEntry {
        NumericEntry::Value(self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_momentum_phase_then_r_t() {
        let metric = RectificationMetric::new(&RAdamConfig::new(), 0);
        let (value, text) = metric.describe(5);
        assert_eq!(value, 0.0);
        assert_eq!(text, "momentum phase (ρ_t 4.996)");
        let (value, text) = metric.describe(6);
        assert!((value - 0.025821).abs() < 1e-6, "{value}");
        assert_eq!(text, "0.0258");
        let official = RectificationMetric::new(&RAdamConfig::official(), 0);
        assert!(official.describe(1).1.starts_with("no update"));
    }

    #[test]
    fn counts_steps_across_epochs_and_resumes() {
        let mut metric = RectificationMetric::new(&RAdamConfig::new(), 5);
        let metadata = MetricMetadata {
            progress: burn::data::dataloader::Progress::new(1, 1),
            epoch: 2,
            epoch_total: 2,
            iteration: 1,
            lr: None,
        };
        metric.update(&(), &metadata);
        metric.clear();
        assert!((metric.value().current() - 0.025821).abs() < 1e-5);
        metric.update(&(), &metadata);
        // β2 is an f32 in the config; the optimizer and the metric widen the same value.
        let r_7 = rectification(0.999, 7, 5.0).unwrap();
        assert_eq!(metric.value().current(), r_7);
    }

    #[test]
    fn several_reports_per_step_count_once() {
        let mut metric = RectificationMetric::new(&RAdamConfig::new(), 0).with_updates_per_step(2);
        let metadata = MetricMetadata {
            progress: burn::data::dataloader::Progress::new(1, 1),
            epoch: 1,
            epoch_total: 1,
            iteration: 1,
            lr: None,
        };
        for _ in 0..11 {
            metric.update(&(), &metadata);
        }
        // Reports 11 and 12 belong to step 6, the first rectified step.
        assert!((metric.value().current() - 0.025821).abs() < 1e-5);
        for _ in 0..2 {
            metric.update(&(), &metadata);
        }
        let r_7 = rectification(0.999, 7, 5.0).unwrap();
        assert_eq!(metric.value().current(), r_7);
    }
}
