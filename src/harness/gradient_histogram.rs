//! Histograms of the absolute gradient values over the first updates — the paper's picture of
//! Adam's early distortion (Liu et al. 2020, Figure 2): without warmup the gradient distribution
//! is pushed towards tiny values within the first updates.
//!
//! [`GradientLog`] is attached to the training optimizer (see
//! [`AnyOptimizer::with_gradient_log`](crate::harness::optimizer_choice::AnyOptimizer::with_gradient_log)); on
//! each of the first `steps` updates it bins `log10 |g|` of every gradient entry of the model and
//! rewrites its CSV file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

/// The lowest bin edge, `log10 |g|`; smaller magnitudes (zeros included) go to the first bin.
pub const LOG10_LOW: f64 = -12.0;
/// The highest bin edge, `log10 |g|`; larger magnitudes go to the last bin.
pub const LOG10_HIGH: f64 = 2.0;
/// Bins per decade.
pub const BINS_PER_DECADE: usize = 4;

/// The number of bins between [`LOG10_LOW`] and [`LOG10_HIGH`].
pub fn bin_count() -> usize {
    ((LOG10_HIGH - LOG10_LOW) as usize) * BINS_PER_DECADE
}

/// The bin of a gradient value (magnitudes outside the range fall in the first or last bin;
/// NaN falls in the last).
pub fn bin_of(value: f32) -> usize {
    let magnitude = (value as f64).abs();
    if magnitude.is_nan() {
        return bin_count() - 1;
    }
    let position = (magnitude.log10() - LOG10_LOW) * BINS_PER_DECADE as f64;
    if position < 0.0 {
        0
    } else {
        (position as usize).min(bin_count() - 1)
    }
}

/// One update's histogram: the fraction of gradient entries in each bin.
#[derive(Clone, Debug, PartialEq)]
pub struct StepHistogram {
    /// The update, from 1.
    pub step: usize,
    /// Fraction of all gradient entries per bin; sums to 1.
    pub fractions: Vec<f64>,
}

/// Records gradient histograms for the first `steps` updates into a CSV file.
#[derive(Clone, Debug)]
pub struct GradientLog {
    steps: usize,
    path: PathBuf,
    recorded: Arc<Mutex<Vec<StepHistogram>>>,
}

impl GradientLog {
    /// Records the first `steps` updates into the CSV file `path`.
    pub fn new(steps: usize, path: &Path) -> Self {
        Self {
            steps,
            path: path.to_path_buf(),
            recorded: Arc::default(),
        }
    }

    /// The histograms recorded so far.
    pub fn histograms(&self) -> Vec<StepHistogram> {
        self.recorded.lock().expect("gradient log poisoned").clone()
    }

    /// Bins the gradients of `module`'s parameters, if this update is among the first `steps`.
    pub fn observe<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
        module: &M,
        grads: &GradientsParams,
    ) {
        let mut recorded = self.recorded.lock().expect("gradient log poisoned");
        if recorded.len() >= self.steps {
            return;
        }
        let mut counter = BinCounter {
            grads,
            counts: vec![0; bin_count()],
        };
        module.visit(&mut counter);
        let total: u64 = counter.counts.iter().sum();
        let fractions = counter
            .counts
            .iter()
            .map(|&count| count as f64 / total.max(1) as f64)
            .collect();
        let step = recorded.len() + 1;
        recorded.push(StepHistogram { step, fractions });
        if let Err(error) = crate::run_dir::write_atomic(&self.path, to_csv(&recorded).as_bytes()) {
            eprintln!("warning: cannot write {}: {error}", self.path.display());
        }
    }
}

/// The histograms as CSV: `step,log10_low,log10_high,fraction`, one row per step and bin.
pub fn to_csv(histograms: &[StepHistogram]) -> String {
    let mut csv = String::from("step,log10_low,log10_high,fraction\n");
    let width = 1.0 / BINS_PER_DECADE as f64;
    for histogram in histograms {
        for (bin, fraction) in histogram.fractions.iter().enumerate() {
            let low = LOG10_LOW + bin as f64 * width;
            csv.push_str(&format!(
                "{},{low},{},{fraction}\n",
                histogram.step,
                low + width
            ));
        }
    }
    csv
}

struct BinCounter<'a> {
    grads: &'a GradientsParams,
    counts: Vec<u64>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for BinCounter<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let Ok(values) = grad.into_data().convert::<f32>().into_vec::<f32>() else {
            return;
        };
        for value in values {
            self.counts[bin_of(value)] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::NdArrayBackend;
    use burn::nn::{Linear, LinearConfig};

    #[test]
    fn bins_cover_twelve_to_plus_two_decades() {
        assert_eq!(bin_count(), 56);
        assert_eq!(bin_of(0.0), 0);
        assert_eq!(bin_of(1e-30), 0);
        assert_eq!(bin_of(-1.0), 48); // log10 1 = 0: (0 + 12)·4
        assert_eq!(bin_of(1.5), 48);
        assert_eq!(bin_of(2.0), 49); // log10 2 = 0.301 → 12.3 decades · 4 = 49.2
        assert_eq!(bin_of(1e9), 55);
        assert_eq!(bin_of(f32::NAN), 55);
    }

    #[test]
    fn records_the_first_steps_only_and_writes_csv() {
        let device = Default::default();
        let model: Linear<NdArrayBackend> = LinearConfig::new(3, 2).init(&device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grad_histogram.csv");
        let log = GradientLog::new(2, &path);
        for _ in 0..3 {
            let x = Tensor::<NdArrayBackend, 2>::ones([4, 3], &device);
            let loss = model.forward(x).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            log.observe(&model, &grads);
        }
        let histograms = log.histograms();
        assert_eq!(histograms.len(), 2);
        // d(sum)/dW = 4 for all 6 weights, d(sum)/db = 4 for both biases: all in one bin.
        let bin = bin_of(4.0);
        assert_eq!(histograms[0].fractions[bin], 1.0);
        assert!((histograms[1].fractions.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let csv = std::fs::read_to_string(&path).unwrap();
        assert_eq!(csv.lines().count(), 1 + 2 * bin_count());
        assert!(csv.starts_with("step,log10_low,log10_high,fraction\n1,-12,-11.75,0\n"));
    }
}
