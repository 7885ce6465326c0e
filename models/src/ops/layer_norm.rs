//! Layer normalization as Burn's [`LayerNorm`] computes it: natively on ndarray (one parallel
//! pass each way), with Burn's module on every other backend.

use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::ops::dispatch;

/// The ε of every layer norm the models build: [`LayerNormConfig`]'s default, set explicitly
/// because Burn's [`LayerNorm`] keeps its own private.
pub(crate) const EPSILON: f64 = 1e-5;

/// A layer norm over `d_model` features with ε = [`EPSILON`].
pub(crate) fn layer_norm_config(d_model: usize) -> LayerNormConfig {
    LayerNormConfig::new(d_model).with_epsilon(EPSILON)
}

/// `norm.forward(x)` for a norm built by [`layer_norm_config`].
pub(crate) fn layer_norm<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    match dispatch::native::<B>() {
        #[cfg(feature = "ndarray-kernels")]
        Some(native) => crate::ops::ndarray::layer_norm::layer_norm(
            native,
            x,
            norm.gamma.val(),
            norm.beta.val(),
            EPSILON,
        ),
        _ => norm.forward(x),
    }
}

#[cfg(all(test, feature = "ndarray-kernels"))]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend as Ad, TestBackend, relative_error as error};
    use burn::module::AutodiffModule;
    use burn::tensor::Distribution;

    /// Burn's module in f64: the reference.
    type Reference = burn::backend::Autodiff<burn::backend::NdArray<f64>>;

    /// The output and the gradients of `x`, γ and β of `norm` (built from γ and β) on `A`,
    /// natively or with Burn's module, for a loss that weighs every output differently; in f32.
    fn output_and_gradients<A: burn::tensor::backend::AutodiffBackend>(
        native: bool,
        x: &Tensor<TestBackend, 3>,
        [gamma, beta]: [&Tensor<TestBackend, 1>; 2],
    ) -> [Vec<f32>; 4] {
        let device = Default::default();
        let of = |x: burn::tensor::TensorData| x.convert::<A::FloatElem>();
        let mut norm = layer_norm_config(x.dims()[2]).init::<A>(&device);
        norm.gamma = norm
            .gamma
            .map(|_| Tensor::from_data(of(gamma.to_data()), &device).require_grad());
        norm.beta = norm
            .beta
            .map(|_| Tensor::from_data(of(beta.to_data()), &device).require_grad());
        let x = Tensor::<A, 3>::from_data(of(x.to_data()), &device).require_grad();
        let y = if native {
            layer_norm(&norm, x.clone())
        } else {
            norm.forward(x.clone())
        };
        let weights = y.clone().inner().sin();
        let grads = (y.clone() * Tensor::from_inner(weights)).sum().backward();
        let values =
            |data: burn::tensor::TensorData| data.convert::<f32>().to_vec::<f32>().unwrap();
        [
            values(y.inner().into_data()),
            values(x.grad(&grads).unwrap().into_data()),
            values(norm.gamma.val().grad(&grads).unwrap().into_data()),
            values(norm.beta.val().grad(&grads).unwrap().into_data()),
        ]
    }

    #[test]
    fn native_layer_norm_matches_an_f64_reference_of_burns_module() {
        // 130 rows (three parallel blocks, the last one short) of 48 features, offset and
        // scaled away from N(0, 1).
        let x = Tensor::<TestBackend, 3>::random(
            [10, 13, 48],
            Distribution::Normal(3.0, 2.0),
            &Default::default(),
        );
        let gamma = Tensor::random([48], Distribution::Normal(1.0, 0.5), &Default::default());
        let beta = Tensor::random([48], Distribution::Normal(0.0, 0.5), &Default::default());
        let native = output_and_gradients::<Ad>(true, &x, [&gamma, &beta]);
        let burn = output_and_gradients::<Ad>(false, &x, [&gamma, &beta]);
        let reference = output_and_gradients::<Reference>(false, &x, [&gamma, &beta]);
        for (index, ((native, burn), reference)) in
            native.iter().zip(&burn).zip(&reference).enumerate()
        {
            let (ours, burns) = (error(native, reference), error(burn, reference));
            assert!(
                ours <= 2e-6,
                "output {index}: native error {ours} (Burn's f32 {burns})"
            );
        }
    }

    #[test]
    fn inference_matches_burns_module() {
        let device = Default::default();
        let norm = layer_norm_config(32).init::<Ad>(&device).valid();
        let x =
            Tensor::<TestBackend, 2>::random([20, 32], Distribution::Normal(-1.0, 3.0), &device);
        let native: Vec<f32> = layer_norm(&norm, x.clone()).into_data().to_vec().unwrap();
        let burn: Vec<f32> = norm.forward(x).into_data().to_vec().unwrap();
        assert!(
            error(&native, &burn) <= 2e-6,
            "error {}",
            error(&native, &burn)
        );
    }
}
