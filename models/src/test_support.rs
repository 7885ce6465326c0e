//! Helpers shared by the models' unit tests.

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use radam_burn::RAdamConfig;

use crate::decoding::SpecialTokens;
use crate::transformer::{TransformerNmt, TransformerNmtConfig};

pub type TestBackend = NdArray<f32>;
pub type TestAutodiffBackend = Autodiff<TestBackend>;

/// Padding token of the translation tests.
pub const PAD: usize = 0;
/// Beginning of sentence of the translation tests.
pub const BOS: usize = 1;
/// End of sentence of the translation tests.
pub const EOS: usize = 2;
/// The translation tests' special tokens.
pub const SPECIAL: SpecialTokens = SpecialTokens {
    bos: BOS,
    eos: EOS,
    pad: PAD,
};

/// Token ids `[rows, width]` on the default device.
pub fn ids<B: Backend>(rows: Vec<Vec<i64>>) -> Tensor<B, 2, Int> {
    let shape = [rows.len(), rows[0].len()];
    Tensor::from_data(TensorData::new(rows.concat(), shape), &Default::default())
}

/// Where `tokens` hold [`PAD`].
pub fn padding<B: Backend>(tokens: &Tensor<B, 2, Int>) -> Tensor<B, 2, Bool> {
    tokens.clone().equal_elem(PAD as i64)
}

/// A pre-norm 2 + 2-layer Transformer of width 32 without dropout.
pub fn tiny_model<B: Backend>(vocab: usize) -> TransformerNmt<B> {
    TransformerNmtConfig::tiny(vocab, PAD)
        .with_d_model(32)
        .with_d_ff(64)
        .with_dropout(0.0)
        .init(&Default::default())
}

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
