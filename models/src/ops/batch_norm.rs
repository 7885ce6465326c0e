//! Batch normalization as the ResNet uses it: `relu?(BN(x) + residual)`, with Burn's
//! [`BatchNorm`] module (its parameters, running statistics and records), computed in one native
//! operation when training on ndarray.

use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use crate::ops::dispatch;

/// `relu?(norm(input) + residual)`: with the batch's statistics (and an update of the running
/// ones) when `B` tracks gradients, with the running statistics otherwise — as
/// [`BatchNorm::forward`] then an add and a ReLU, in one native operation when training on
/// ndarray.
pub(crate) fn batch_norm<B: Backend>(
    norm: &BatchNorm<B>,
    input: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    with_relu: bool,
) -> Tensor<B, 4> {
    match dispatch::batch_norm::<B>() {
        #[cfg(feature = "ndarray-kernels")]
        Some(native) => {
            let (output, mean, var) = crate::ops::ndarray::batch_norm::batch_norm_train(
                native,
                input,
                norm.gamma.val(),
                norm.beta.val(),
                residual,
                norm.epsilon,
                with_relu,
            );
            update_running_statistics(norm, mean, var);
            output
        }
        _ => generic(norm, input, residual, with_relu),
    }
}

/// [`batch_norm`] with Burn's tensor operations, on every backend.
fn generic<B: Backend>(
    norm: &BatchNorm<B>,
    input: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    with_relu: bool,
) -> Tensor<B, 4> {
    let x = norm.forward(input);
    let x = match residual {
        Some(residual) => x + residual,
        None => x,
    };
    if with_relu { relu(x) } else { x }
}

/// `running ← (1 − momentum)·running + momentum·batch`, as [`BatchNorm`] updates its mean and
/// (biased) variance in training.
#[cfg(feature = "ndarray-kernels")]
fn update_running_statistics<B: Backend>(
    norm: &BatchNorm<B>,
    mean: Tensor<B, 1>,
    var: Tensor<B, 1>,
) {
    let momentum = norm.momentum;
    let blend = |running: Tensor<B, 1>, batch: Tensor<B, 1>| {
        let device = batch.device();
        running
            .to_device(&device)
            .mul_scalar(1.0 - momentum)
            .add(batch.detach().mul_scalar(momentum))
            .detach()
    };
    norm.running_mean
        .update(blend(norm.running_mean.value_sync(), mean));
    norm.running_var
        .update(blend(norm.running_var.value_sync(), var));
}

#[cfg(all(test, feature = "ndarray-kernels"))]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend, TestBackend, assert_tensors_close};
    use burn::module::Param;
    use burn::nn::BatchNormConfig;
    use burn::tensor::Distribution;

    type Ad = TestAutodiffBackend;

    /// A fresh BatchNorm (its own running statistics: clones share them) with γ and β.
    fn norm(gamma: &Tensor<TestBackend, 1>, beta: &Tensor<TestBackend, 1>) -> BatchNorm<Ad> {
        let mut norm = BatchNormConfig::new(gamma.dims()[0]).init::<Ad>(&gamma.device());
        norm.gamma = Param::from_tensor(Tensor::from_inner(gamma.clone()));
        norm.beta = Param::from_tensor(Tensor::from_inner(beta.clone()));
        norm
    }

    /// [`batch_norm`] or [`generic`].
    type Forward = fn(&BatchNorm<Ad>, Tensor<Ad, 4>, Option<Tensor<Ad, 4>>, bool) -> Tensor<Ad, 4>;

    /// Output, ∂x, ∂γ, ∂β, ∂residual and the running mean and variance, by `forward`.
    fn run(
        forward: Forward,
        [gamma, beta]: [&Tensor<TestBackend, 1>; 2],
        input: &Tensor<TestBackend, 4>,
        residual: Option<&Tensor<TestBackend, 4>>,
        with_relu: bool,
    ) -> (Vec<Tensor<TestBackend, 4>>, Vec<Tensor<TestBackend, 1>>) {
        let norm = norm(gamma, beta);
        let x = Tensor::<Ad, 4>::from_inner(input.clone()).require_grad();
        let r = residual.map(|r| Tensor::<Ad, 4>::from_inner(r.clone()).require_grad());
        let output = forward(&norm, x.clone(), r.clone(), with_relu);
        // A loss whose gradient differs per element, so that every term of the backward counts.
        let count = output.dims().iter().product::<usize>() as i64;
        let weights: Tensor<TestBackend, 4> = Tensor::arange(0..count, &x.device())
            .float()
            .sin()
            .reshape(output.dims());
        let weights = Tensor::<Ad, 4>::from_inner(weights);
        let grads = (output.clone() * weights).sum().backward();
        let mut maps = vec![output.inner(), x.grad(&grads).unwrap()];
        if let Some(r) = r {
            maps.push(r.grad(&grads).unwrap());
        }
        let vectors = vec![
            norm.gamma.val().grad(&grads).unwrap(),
            norm.beta.val().grad(&grads).unwrap(),
            norm.running_mean.value_sync().inner(),
            norm.running_var.value_sync().inner(),
        ];
        (maps, vectors)
    }

    #[test]
    fn native_batch_norm_matches_burns_forward_gradients_and_running_statistics() {
        let device = Default::default();
        // The ResNet's cases: BN + ReLU, BN alone, BN + residual + ReLU; an odd shape too.
        for (shape, residual, with_relu) in [
            ([4, 3, 5, 5], false, true),
            ([4, 3, 5, 5], false, false),
            ([2, 8, 4, 4], true, true),
            ([3, 2, 1, 7], true, false),
        ] {
            let channels = shape[1];
            let gamma = Tensor::random([channels], Distribution::Uniform(0.5, 1.5), &device);
            let beta = Tensor::random([channels], Distribution::Uniform(-0.5, 0.5), &device);
            let input =
                Tensor::<TestBackend, 4>::random(shape, Distribution::Normal(0.7, 2.0), &device);
            let residual_map = residual.then(|| {
                Tensor::<TestBackend, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device)
            });
            let (native_maps, native_vectors) = run(
                batch_norm,
                [&gamma, &beta],
                &input,
                residual_map.as_ref(),
                with_relu,
            );
            let (burn_maps, burn_vectors) = run(
                generic,
                [&gamma, &beta],
                &input,
                residual_map.as_ref(),
                with_relu,
            );
            assert_eq!(native_maps.len(), 2 + usize::from(residual));
            for (native, burn) in native_maps.into_iter().zip(burn_maps) {
                assert_tensors_close(native, burn, 1e-4);
            }
            for (native, burn) in native_vectors.into_iter().zip(burn_vectors) {
                assert_tensors_close(native, burn, 1e-4);
            }
        }
    }
}
