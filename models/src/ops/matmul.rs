//! The 2-D matrix product and linear layer the models use on rows of features: natively on
//! ndarray (split across threads, with its own backward), with Burn's tensor operations on
//! every other backend.

use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::ops::dispatch;

/// `a·b` for `a: m × k`, `b: k × n`.
pub(crate) fn matmul<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 2> {
    match dispatch::native::<B>() {
        #[cfg(feature = "ndarray-kernels")]
        Some(native) => crate::ops::ndarray::matmul::matmul(native, a, b),
        _ => a.matmul(b),
    }
}

/// `x·W + b` of the Burn [`Linear`] layer `layer` for rows `x` (`[rows, d_input]`), as
/// [`Linear::forward`] computes it.
pub(crate) fn linear<B: Backend>(layer: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "ndarray-kernels")]
    if let (Some(native), Some(bias)) = (dispatch::native::<B>(), &layer.bias) {
        return crate::ops::ndarray::matmul::linear(native, x, layer.weight.val(), bias.val());
    }
    let y = matmul(x, layer.weight.val());
    match &layer.bias {
        Some(bias) => y + bias.val().unsqueeze_dim(0),
        None => y,
    }
}

#[cfg(all(test, feature = "ndarray-kernels"))]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend as Ad, TestBackend, assert_tensors_close};
    use burn::nn::LinearConfig;
    use burn::tensor::Distribution;

    /// Output and the gradients of `x`, the weight and the bias, by `forward`.
    fn run(
        forward: impl Fn(&Linear<Ad>, Tensor<Ad, 2>) -> Tensor<Ad, 2>,
        layer: &Linear<Ad>,
        x: &Tensor<TestBackend, 2>,
    ) -> Vec<Tensor<TestBackend, 2>> {
        let x = Tensor::<Ad, 2>::from_inner(x.clone()).require_grad();
        let y = forward(layer, x.clone());
        let count = y.dims().iter().product::<usize>() as i64;
        let weights: Tensor<TestBackend, 2> = Tensor::arange(0..count, &x.device())
            .float()
            .sin()
            .reshape(y.dims());
        let grads = (y.clone() * Tensor::from_inner(weights)).sum().backward();
        let bias = layer.bias.as_ref().unwrap().val().grad(&grads).unwrap();
        vec![
            y.inner(),
            x.grad(&grads).unwrap(),
            layer.weight.val().grad(&grads).unwrap(),
            bias.unsqueeze_dim(0),
        ]
    }

    #[test]
    fn native_linear_matches_burns_forward_and_gradients() {
        let device = Default::default();
        // Small, and large enough (≥ 2 · 2²² multiply-adds) to be split across threads.
        for (rows, d_in, d_out) in [(5, 3, 4), (70, 256, 600)] {
            let layer = LinearConfig::new(d_in, d_out).init::<Ad>(&device);
            let x = Tensor::random([rows, d_in], Distribution::Normal(0.0, 1.0), &device);
            let native = run(linear, &layer, &x);
            let burn = run(|layer, x| layer.forward(x), &layer, &x);
            for (native, burn) in native.into_iter().zip(burn) {
                assert_tensors_close(native, burn, 1e-4);
            }
        }
    }

    #[test]
    fn native_matmul_reads_a_transposed_operand_in_place() {
        // The tied output layer: rows · embeddingᵀ, gradients through the transpose.
        let device = Default::default();
        let rows = Tensor::<TestBackend, 2>::random([6, 5], Distribution::Default, &device);
        let embedding = Tensor::<TestBackend, 2>::random([7, 5], Distribution::Default, &device);
        let run = |native: bool| {
            let x = Tensor::<Ad, 2>::from_inner(rows.clone()).require_grad();
            let e = Tensor::<Ad, 2>::from_inner(embedding.clone()).require_grad();
            let y = if native {
                matmul(x.clone(), e.clone().transpose())
            } else {
                x.clone().matmul(e.clone().transpose())
            };
            let grads = (y.clone() * y.clone()).sum().backward();
            [y.inner(), x.grad(&grads).unwrap(), e.grad(&grads).unwrap()]
        };
        for (native, burn) in run(true).into_iter().zip(run(false)) {
            assert_tensors_close(native, burn, 1e-4);
        }
    }
}
