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
