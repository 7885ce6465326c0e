//! The GELU activation as Burn computes it (exact forward, Burn's tanh-approximation gradient),
//! natively on ndarray and with Burn's operation on every other backend.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::ops::dispatch;

/// `x·Φ(x)`, element-wise.
pub(crate) fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    match dispatch::native::<B>() {
        #[cfg(feature = "ndarray-kernels")]
        Some(native) => crate::ops::ndarray::gelu::gelu(native, x),
        _ => burn::tensor::activation::gelu(x),
    }
}

#[cfg(all(test, feature = "ndarray-kernels"))]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend as Ad, TestBackend, assert_tensors_close};
    use burn::tensor::Distribution;

    #[test]
    fn native_gelu_matches_burns_value_and_gradient() {
        let device = Default::default();
        let values =
            Tensor::<TestBackend, 3>::random([4, 70, 300], Distribution::Normal(0.0, 2.0), &device);
        let weights = values.clone().sin();
        let run = |native: bool| {
            let x = Tensor::<Ad, 3>::from_inner(values.clone()).require_grad();
            let y = if native {
                gelu(x.clone())
            } else {
                burn::tensor::activation::gelu(x.clone())
            };
            let grads = (y.clone() * Tensor::from_inner(weights.clone()))
                .sum()
                .backward();
            [y.inner(), x.grad(&grads).unwrap()]
        };
        for (native, burn) in run(true).into_iter().zip(run(false)) {
            assert_tensors_close(native, burn, 1e-5);
        }
        // Without autodiff too.
        assert_tensors_close(
            gelu(values.clone()),
            burn::tensor::activation::gelu(values),
            1e-5,
        );
    }
}
