//! Batch normalization as the ResNet uses it: `relu?(BN(x) + residual)`, with Burn's
//! [`BatchNorm`] module (its parameters, running statistics and records), computed in one native
//! operation when training on ndarray.
//!
//! In training, the running statistics are updated as PyTorch's `BatchNorm2d` updates them:
//! `running ← (1 − momentum)·running + momentum·batch`, the variance being the batch's
//! **unbiased** one (divided by `N − 1` for `N` values per channel), while the output is
//! normalized with the biased one. Burn's own `BatchNorm::forward` blends the biased variance
//! in; its training forward is therefore not used here (its inference forward is).

use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use crate::ops::dispatch;

/// `relu?(norm(input) + residual)`: with the batch's statistics (and an update of the running
/// ones) when `B` tracks gradients, with the running statistics otherwise — in one native
/// operation when training on ndarray.
pub(crate) fn batch_norm<B: Backend>(
    norm: &BatchNorm<B>,
    input: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    with_relu: bool,
) -> Tensor<B, 4> {
    match dispatch::batch_norm::<B>() {
        #[cfg(feature = "ndarray-kernels")]
        Some(native) => {
            let [n, _, h, w] = input.dims();
            let (output, mean, var) = crate::ops::ndarray::batch_norm::batch_norm_train(
                native,
                input,
                norm.gamma.val(),
                norm.beta.val(),
                residual,
                norm.epsilon,
                with_relu,
            );
            update_running_statistics(norm, mean, var, n * h * w);
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
    // Training as Burn's `BatchNorm::forward` decides it: when the backend tracks gradients.
    let x = if B::ad_enabled() {
        let [n, _, h, w] = input.dims();
        let (output, mean, var) = batch_statistics_norm(norm, input);
        update_running_statistics(norm, mean, var, n * h * w);
        output
    } else {
        norm.forward(input)
    };
    let x = match residual {
        Some(residual) => x + residual,
        None => x,
    };
    if with_relu { relu(x) } else { x }
}

/// `(x − μ)·γ/√(σ² + ε) + β` with the batch's per-channel mean μ and biased variance σ² (the
/// same operations as Burn's training forward), and μ and σ² `[channels]`.
fn batch_statistics_norm<B: Backend>(
    norm: &BatchNorm<B>,
    input: Tensor<B, 4>,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let [n, channels, h, w] = input.dims();
    let per_channel = |x: Tensor<B, 4>| {
        x.swap_dims(0, 1)
            .reshape([channels, n * h * w])
            .mean_dim(1)
            .reshape([1, channels, 1, 1])
    };
    let mean = per_channel(input.clone());
    let centered = input.sub(mean.clone());
    let var = per_channel(centered.clone().powi_scalar(2));
    let std = var.clone().add_scalar(norm.epsilon).sqrt();
    let shape = [1, channels, 1, 1];
    let output = centered
        .div(std)
        .mul(norm.gamma.val().reshape(shape))
        .add(norm.beta.val().reshape(shape));
    (output, mean.reshape([channels]), var.reshape([channels]))
}

/// `running ← (1 − momentum)·running + momentum·batch` for the mean and the variance, the
/// batch's biased variance `var` over `count` values per channel turned into the unbiased one
/// (`count / (count − 1)`), as PyTorch stores it. A single value per channel (which PyTorch
/// refuses to train on) keeps its biased variance, 0.
fn update_running_statistics<B: Backend>(
    norm: &BatchNorm<B>,
    mean: Tensor<B, 1>,
    var: Tensor<B, 1>,
    count: usize,
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
    let unbiased = var.mul_scalar(count as f64 / count.saturating_sub(1).max(1) as f64);
    norm.running_mean
        .update(blend(norm.running_mean.value_sync(), mean));
    norm.running_var
        .update(blend(norm.running_var.value_sync(), unbiased));
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

    /// Burn's `BatchNorm::forward`, then the residual and the ReLU: the reference, except for
    /// the running variance, which Burn blends in biased.
    fn burn(
        norm: &BatchNorm<Ad>,
        input: Tensor<Ad, 4>,
        residual: Option<Tensor<Ad, 4>>,
        with_relu: bool,
    ) -> Tensor<Ad, 4> {
        let x = norm.forward(input);
        let x = match residual {
            Some(residual) => x + residual,
            None => x,
        };
        if with_relu { relu(x) } else { x }
    }

    /// [`batch_norm`], [`generic`] or [`burn`].
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
    fn batch_norm_matches_burns_forward_and_gradients_and_keeps_pytorchs_running_variance() {
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
            let [n, _, h, w] = shape;
            let count = (n * h * w) as f32;
            let (burn_maps, burn_vectors) = run(
                burn,
                [&gamma, &beta],
                &input,
                residual_map.as_ref(),
                with_relu,
            );
            // PyTorch's running variance: Burn's blend with the unbiased batch variance,
            // (r − (1 − m)·r₀)·N/(N − 1) + (1 − m)·r₀ with r₀ = 1, m = 0.1.
            let mut expected = burn_vectors.clone();
            expected[3] = (expected[3].clone() - 0.9) * (count / (count - 1.0)) + 0.9;
            for forward in [batch_norm as Forward, generic] {
                let (maps, vectors) = run(
                    forward,
                    [&gamma, &beta],
                    &input,
                    residual_map.as_ref(),
                    with_relu,
                );
                assert_eq!(maps.len(), 2 + usize::from(residual));
                for (ours, burn) in maps.into_iter().zip(burn_maps.clone()) {
                    assert_tensors_close(ours, burn, 1e-4);
                }
                for (ours, expected) in vectors.into_iter().zip(expected.clone()) {
                    assert_tensors_close(ours, expected, 1e-4);
                }
            }
        }
    }
}
