//! Training-mode batch normalization, optionally followed by a residual add and a ReLU, as one
//! native operation on `Autodiff<NdArray<f32>>`:
//!
//! - forward: per channel `μ_c`, `σ²_c` (biased, as Burn's `BatchNorm`), then
//!   `out = relu((x − μ_c)·γ_c/√(σ²_c + ε) + β_c + r)` in one pass;
//! - backward, with `g = ∂out·[out > 0]` and `x̂ = (x − μ_c)/√(σ²_c + ε)`:
//!   `∂β_c = Σ g`, `∂γ_c = Σ g·x̂`, `∂x = γ_c/√(σ²_c + ε)·(g − ∂β_c/M − x̂·∂γ_c/M)` and `∂r = g`
//!   (`M` = batch · height · width) — two passes over the activations.
//!
//! Burn 0.19.1's `BatchNorm` composes this from about ten single-threaded tensor operations and
//! as many in the backward pass (copies for the channel-first reshape included), plus the add and
//! the ReLU's own mask; here the reductions run in parallel over channels and the element-wise
//! passes in parallel over images.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;

use super::bridge::{Ad, Inner, checked_cast, f32_array, nd_tensor, register_gradients, slice};
use super::fill::{filled, zeros};
use crate::ops::dispatch::Native;

/// The shape of the normalized activations: `[batch, channels, height · width]`.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    channels: usize,
    plane: usize,
}

impl Dims {
    /// Elements per channel over the batch: `M`.
    fn per_channel(&self) -> usize {
        self.batch * self.plane
    }

    /// The `plane` elements of channel `c` in image `n`.
    fn block<'a>(&self, data: &'a [f32], n: usize, c: usize) -> &'a [f32] {
        let start = (n * self.channels + c) * self.plane;
        &data[start..start + self.plane]
    }
}

/// What the backward pass needs: the input, the output (for the ReLU's mask) and the
/// per-channel statistics and scale.
#[derive(Debug)]
struct Saved {
    input: ArcArray<f32, IxDyn>,
    /// The output after the ReLU; `None` without ReLU.
    output: Option<ArcArray<f32, IxDyn>>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
    dims: Dims,
}

/// Accumulators per sum: the loops below keep this many partial sums in f32, so that they
/// vectorize, and add the partial sums in f64.
const LANES: usize = 16;

/// `Σ_i f(a_i, b_i)`, in [`LANES`] f32 partial sums added in f64.
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut lanes = [0.0_f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(a).zip(b) {
            *lane += f(x, y);
        }
    }
    lanes.iter().map(|&lane| lane as f64).sum::<f64>() + tail as f64
}

/// Per-channel mean and biased variance (two passes).
fn statistics(x: &[f32], d: Dims) -> (Vec<f32>, Vec<f32>) {
    let m = d.per_channel() as f64;
    (0..d.channels)
        .into_par_iter()
        .map(|c| {
            let blocks = || (0..d.batch).map(move |n| d.block(x, n, c));
            let sum: f64 = blocks().map(|b| lane_sum(b, b, |v, _| v)).sum();
            let mean = (sum / m) as f32;
            let squares: f64 = blocks()
                .map(|b| lane_sum(b, b, |v, _| (v - mean) * (v - mean)))
                .sum();
            (mean, (squares / m) as f32)
        })
        .unzip()
}

/// `g = ∂out·[out > 0]` of one block (`∂out` itself without ReLU), into `g`.
fn gate(grad: &[f32], output: Option<&[f32]>, g: &mut [f32]) {
    match output {
        Some(output) => {
            for ((g, &d), &o) in g.iter_mut().zip(grad).zip(output) {
                *g = if o > 0.0 { d } else { 0.0 };
            }
        }
        None => g.copy_from_slice(grad),
    }
}

/// `relu?((x − μ)·γ/σ + β + r)`, in parallel over images.
fn normalize(x: &[f32], saved: &Saved, affine: &Affine<'_>) -> Vec<f32> {
    let Affine {
        beta,
        residual,
        relu,
        ..
    } = *affine;
    let d = saved.dims;
    let image = d.channels * d.plane;
    filled(
        x.len(),
        image,
        #[inline(always)]
        |n, out_image| {
            for (c, out) in out_image.chunks_mut(d.plane).enumerate() {
                let (mean, scale) = (saved.mean[c], saved.gamma[c] * saved.inv_std[c]);
                let shift = beta[c];
                let input = d.block(x, n, c);
                match residual {
                    Some(r) => {
                        let r = d.block(r, n, c);
                        for ((o, &v), &r) in out.iter_mut().zip(input).zip(r) {
                            *o = (v - mean) * scale + shift + r;
                        }
                    }
                    None => {
                        for (o, &v) in out.iter_mut().zip(input) {
                            *o = (v - mean) * scale + shift;
                        }
                    }
                }
                if relu {
                    out.iter_mut().for_each(|o| *o = o.max(0.0));
                }
            }
        },
    )
}

/// What the operation applies after normalizing, besides the input.
struct Affine<'a> {
    gamma: &'a [f32],
    beta: &'a [f32],
    residual: Option<&'a [f32]>,
    epsilon: f64,
    relu: bool,
}

/// The forward pass: the output, what the backward pass keeps and the batch's variance.
fn forward(
    input: ArcArray<f32, IxDyn>,
    affine: &Affine<'_>,
) -> (ArcArray<f32, IxDyn>, Saved, Vec<f32>) {
    let shape = input.shape().to_vec();
    let dims = Dims {
        batch: shape[0],
        channels: shape[1],
        plane: shape[2..].iter().product(),
    };
    let x = slice(&input);
    let (mean, var) = statistics(x, dims);
    let inv_std = var
        .iter()
        .map(|&v| (1.0 / (v as f64 + affine.epsilon).sqrt()) as f32)
        .collect();
    let mut saved = Saved {
        input: input.clone(),
        output: None,
        mean,
        inv_std,
        gamma: affine.gamma.to_vec(),
        dims,
    };
    let output = normalize(x, &saved, affine);
    let output = f32_array(nd_tensor(output, &shape));
    if affine.relu {
        saved.output = Some(output.clone());
    }
    (output, saved, var)
}

/// `∂x`, `∂γ`, `∂β` and `∂r` (which is `g`) from the output gradient.
fn backward(saved: &Saved, grad: &[f32]) -> [Vec<f32>; 4] {
    let d = saved.dims;
    let x = slice(&saved.input);
    let output = saved.output.as_ref().map(slice);
    let gated = |n: usize, c: usize, g: &mut [f32]| {
        gate(d.block(grad, n, c), output.map(|out| d.block(out, n, c)), g);
    };
    let (d_beta, d_gamma): (Vec<f32>, Vec<f32>) = (0..d.channels)
        .into_par_iter()
        .map_init(
            || vec![0.0_f32; d.plane],
            |g, c| {
                let mean = saved.mean[c];
                let (mut sum_g, mut sum_gx) = (0.0_f64, 0.0_f64);
                for n in 0..d.batch {
                    gated(n, c, g);
                    sum_g += lane_sum(g, g, |g, _| g);
                    sum_gx += lane_sum(g, d.block(x, n, c), |g, v| g * (v - mean));
                }
                (sum_g as f32, (sum_gx * saved.inv_std[c] as f64) as f32)
            },
        )
        .unzip();
    let m = d.per_channel() as f32;
    let image = d.channels * d.plane;
    let mut d_input = zeros(x.len());
    let mut d_residual = zeros(x.len());
    d_input
        .par_chunks_mut(image)
        .zip(d_residual.par_chunks_mut(image))
        .enumerate()
        .for_each(|(n, (dx_image, dr_image))| {
            for (c, (dx, dr)) in dx_image
                .chunks_mut(d.plane)
                .zip(dr_image.chunks_mut(d.plane))
                .enumerate()
            {
                gated(n, c, dr);
                let (mean, inv_std) = (saved.mean[c], saved.inv_std[c]);
                let scale = saved.gamma[c] * inv_std;
                let (mean_g, mean_gx) = (d_beta[c] / m, d_gamma[c] / m);
                for ((dx, &g), &v) in dx.iter_mut().zip(dr.iter()).zip(d.block(x, n, c)) {
                    let x_hat = (v - mean) * inv_std;
                    *dx = scale * (g - mean_g - x_hat * mean_gx);
                }
            }
        });
    [d_input, d_gamma, d_beta, d_residual]
}

/// The autodiff step; `N` is 3 (`x`, `γ`, `β`) or 4 (and the residual).
#[derive(Debug)]
struct BatchNormBackward<const N: usize>;

impl<const N: usize> Backward<Inner, N> for BatchNormBackward<N> {
    type State = std::sync::Arc<Saved>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = f32_array(grads.consume::<Inner>(&ops.node));
        let saved = ops.state;
        let shape = saved.input.shape().to_vec();
        let channels = [saved.dims.channels];
        let shapes: [&[usize]; 4] = [&shape, &channels, &channels, &shape];
        let gradients = backward(&saved, slice(&grad));
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        register_gradients(grads, parents, gradients, shapes);
    }
}

/// Runs the operation on `x` with the parents `parents` (`x`, `γ`, `β` and maybe the residual);
/// returns the output and the batch's mean and variance.
fn autodiff_forward<const N: usize>(
    parents: [&FloatTensor<Ad>; N],
    input: ArcArray<f32, IxDyn>,
    affine: &Affine<'_>,
) -> (FloatTensor<Ad>, Vec<f32>, Vec<f32>) {
    let (output, saved, var) = forward(input, affine);
    let mean = saved.mean.clone();
    let output = NdArrayTensor::F32(output);
    let tensor = match BatchNormBackward::<N>
        .prepare::<NoCheckpointing>(parents.map(|parent| parent.node.clone()))
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(std::sync::Arc::new(saved), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    (tensor, mean, var)
}

/// The output of [`batch_norm_train`]: `relu?(BN(x) + r)` and the batch's per-channel mean and
/// biased variance (untracked), for the running statistics.
pub(crate) type Normalized<B> = (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>);

/// `relu?((x − μ)·γ/√(σ² + ε) + β + residual)` with the batch's statistics, `B` being the
/// ndarray backend `native`, which the dispatch gives only as `Autodiff<NdArray<f32>>` (training).
pub(crate) fn batch_norm_train<B: Backend>(
    native: Native,
    input: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    residual: Option<Tensor<B, 4>>,
    epsilon: f64,
    relu: bool,
) -> Normalized<B> {
    assert_eq!(
        native,
        Native::NdArrayAutodiff,
        "native batch norm trains on autodiff ndarray only"
    );
    let device = input.device();
    let prim = |t: Tensor<Ad, 4>| t.into_primitive().tensor();
    let vector = |t: Tensor<Ad, 1>| t.into_primitive().tensor();
    let input = prim(checked_cast(input));
    let gamma = vector(checked_cast(gamma));
    let beta = vector(checked_cast(beta));
    let residual = residual.map(|r| prim(checked_cast(r)));
    let (gamma_values, beta_values) = (
        f32_array(gamma.primitive.clone()),
        f32_array(beta.primitive.clone()),
    );
    let r_values = residual.as_ref().map(|r| f32_array(r.primitive.clone()));
    let affine = Affine {
        gamma: slice(&gamma_values),
        beta: slice(&beta_values),
        residual: r_values.as_ref().map(slice),
        epsilon,
        relu,
    };
    let x = f32_array(input.primitive.clone());
    let (output, mean, var) = match &residual {
        Some(r) => autodiff_forward([&input, &gamma, &beta, r], x, &affine),
        None => autodiff_forward([&input, &gamma, &beta], x, &affine),
    };
    let output: Tensor<Ad, 4> = Tensor::from_primitive(TensorPrimitive::Float(output));
    let statistic = |values: Vec<f32>| {
        let channels = values.len();
        let inner: Tensor<Inner, 1> =
            Tensor::from_primitive(TensorPrimitive::Float(nd_tensor(values, &[channels])));
        let tracked: Tensor<Ad, 1> = Tensor::from_inner(inner);
        checked_cast::<_, Tensor<B, 1>>(tracked).to_device(&device)
    };
    (checked_cast(output), statistic(mean), statistic(var))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn statistics_are_the_biased_moments_per_channel() {
        // 2 images, 2 channels, 3 pixels: channel 0 holds 1..6, channel 1 twice 10, 20, 30.
        let x = [1., 2., 3., 10., 20., 30., 4., 5., 6., 10., 20., 30.];
        let dims = Dims {
            batch: 2,
            channels: 2,
            plane: 3,
        };
        let (mean, var) = statistics(&x, dims);
        assert_eq!(mean, vec![3.5, 20.0]);
        assert_eq!(var, vec![35.0 / 12.0, 200.0 / 3.0]);
        // Blocks longer than the lanes: 1..=40, mean 20.5, variance (40² − 1)/12.
        let x: Vec<f32> = (1..=40).map(|v| v as f32).collect();
        let dims = Dims {
            batch: 1,
            channels: 1,
            plane: 40,
        };
        assert_eq!(statistics(&x, dims), (vec![20.5], vec![1599.0 / 12.0]));
    }

    #[test]
    fn untracked_inputs_still_normalize() {
        // No parameter requires a gradient: the output is the same, and nothing is registered.
        let device = Default::default();
        let x = Tensor::<Ad, 4>::random([3, 2, 2, 2], Distribution::Normal(1.0, 2.0), &device);
        let ones = Tensor::<Ad, 1>::ones([2], &device);
        let zeros = Tensor::<Ad, 1>::zeros([2], &device);
        let (out, mean, _) =
            batch_norm_train(Native::NdArrayAutodiff, x, ones, zeros, None, 1e-5, false);
        let per_channel = out.swap_dims(0, 1).reshape([2, 12]).mean_dim(1);
        let values: Vec<f32> = per_channel.into_data().to_vec().unwrap();
        assert!(values.iter().all(|v| v.abs() < 1e-5), "{values:?}");
        assert_eq!(mean.dims(), [2]);
    }
}
