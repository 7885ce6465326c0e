//! Helpers shared by the models' unit tests.

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use radam_burn::RAdamConfig;

pub type TestBackend = NdArray<f32>;
pub type TestAutodiffBackend = Autodiff<TestBackend>;

/// Asserts `|a − b| ≤ tolerance · max(|b|, 1)` element-wise.
pub fn assert_tensors_close<B: Backend, const D: usize>(
    actual: Tensor<B, D>,
    expected: Tensor<B, D>,
    tolerance: f32,
) {
    assert_eq!(actual.dims(), expected.dims());
    let actual: Vec<f32> = actual.into_data().convert::<f32>().to_vec().unwrap();
    let expected: Vec<f32> = expected.into_data().convert::<f32>().to_vec().unwrap();
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance * e.abs().max(1.0),
            "element {i}: {a} vs {e} (tolerance {tolerance})"
        );
    }
}

/// The largest difference between `actual` and `expected`, over `expected`'s largest element.
pub fn relative_error(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len());
    let largest = expected.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let difference = actual
        .iter()
        .zip(expected)
        .fold(0.0f32, |m, (a, e)| m.max((a - e).abs()));
    difference / largest.max(f32::MIN_POSITIVE)
}

/// Runs `steps` RAdam steps at learning rate `lr` on the loss `loss_of(model)` and returns the
/// loss before and after.
pub fn overfit<M: AutodiffModule<TestAutodiffBackend>>(
    model: M,
    steps: usize,
    lr: f64,
    loss_of: impl Fn(&M) -> Tensor<TestAutodiffBackend, 1>,
) -> (f32, f32) {
    let first = loss_of(&model).into_scalar();
    let model = trained(model, steps, lr, &loss_of);
    (first, loss_of(&model).into_scalar())
}

/// `model` after `steps` RAdam steps at learning rate `lr` on the loss `loss_of(model)`.
pub fn trained<M: AutodiffModule<TestAutodiffBackend>>(
    mut model: M,
    steps: usize,
    lr: f64,
    loss_of: impl Fn(&M) -> Tensor<TestAutodiffBackend, 1>,
) -> M {
    let mut optimizer = RAdamConfig::new().init::<TestAutodiffBackend, M>();
    for _ in 0..steps {
        let loss = loss_of(&model);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(lr, model, grads);
    }
    model
}

/// A distribution the initial weights are drawn from, by its reference's formula.
#[derive(Clone, Copy, Debug)]
pub enum Law {
    /// `U(−bound, bound)`.
    Uniform { bound: f64 },
    /// `N(0, std²)`.
    Normal { std: f64 },
}

impl Law {
    /// Variance and fourth central moment.
    fn moments(self) -> (f64, f64) {
        match self {
            Law::Uniform { bound } => (bound * bound / 3.0, bound.powi(4) / 5.0),
            Law::Normal { std } => (std * std, 3.0 * std.powi(4)),
        }
    }
}

/// Asserts that `values` (at least 10⁵) look drawn from `law`: the sample mean within three
/// standard errors of 0, the sample variance within three standard errors (`√((μ₄ − σ⁴)/n)`) of
/// the law's, and, for a uniform law, every value within its bounds. Returns the sample mean and
/// variance for the caller to print.
pub fn assert_drawn_from(values: &[f32], law: Law, what: &str) -> (f64, f64) {
    let n = values.len() as f64;
    assert!(n >= 1e5, "{what}: {n} draws, too few to test the moments");
    let mean = values.iter().map(|&x| x as f64).sum::<f64>() / n;
    let variance = values
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    let (sigma2, mu4) = law.moments();
    let mean_error = 3.0 * (sigma2 / n).sqrt();
    let variance_error = 3.0 * ((mu4 - sigma2 * sigma2) / n).sqrt();
    assert!(
        mean.abs() <= mean_error,
        "{what}: mean {mean:e}, expected 0 ± {mean_error:e} ({law:?})"
    );
    assert!(
        (variance - sigma2).abs() <= variance_error,
        "{what}: variance {variance:e}, expected {sigma2:e} ± {variance_error:e} ({law:?})"
    );
    if let Law::Uniform { bound } = law {
        let largest = values.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            largest as f64 <= bound,
            "{what}: {largest} outside ±{bound}"
        );
    }
    (mean, variance)
}
