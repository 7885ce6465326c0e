//! Layer normalization over the last axis as Burn 0.19.1's `LayerNorm` computes it, as one
//! parallel pass each way on ndarray:
//!
//! - forward: `x̂ = (x − μ) / √(σ² + ε)` with the biased variance `σ²`, `y = x̂·γ + β`;
//! - backward: `∂γ = Σ ∂y·x̂`, `∂β = Σ ∂y` (over the rows), and with `g = ∂y·γ`,
//!   `∂x = (g − mean(g) − x̂·mean(g·x̂)) / √(σ² + ε)`.
//!
//! Burn composes the forward from eight tensor operations and the backward from about twenty,
//! each a single-threaded pass with its own allocation. The sums over rows are taken per block
//! of rows and the blocks added in order, so that the result does not depend on the threads.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;

use super::bridge::{
    Ad, Inner, f32_array, nd_tensor, primitive_of, register_gradients, slice, tensor_of,
};
use super::fill::{filled, zeros};
use crate::ops::dispatch::Native;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

/// `x̂` of every row of `x` (rows of `width`) into `normalized`, and `1 / √(σ² + ε)` per row
/// into `inverse_deviation`.
fn normalize(
    x: &[f32],
    width: usize,
    epsilon: f32,
    normalized: &mut [f32],
    inverse_deviation: &mut [f32],
) {
    normalized
        .par_chunks_mut(width * ROWS_PER_TASK)
        .zip(inverse_deviation.par_chunks_mut(ROWS_PER_TASK))
        .zip(x.par_chunks(width * ROWS_PER_TASK))
        .for_each(|((normalized, inverse_deviation), x)| {
            for ((normalized, inverse), x) in normalized
                .chunks_mut(width)
                .zip(inverse_deviation.iter_mut())
                .zip(x.chunks(width))
            {
                let mean = x.iter().sum::<f32>() / width as f32;
                let variance =
                    x.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / width as f32;
                let deviation = (variance + epsilon).sqrt();
                for (normalized, x) in normalized.iter_mut().zip(x) {
                    *normalized = (x - mean) / deviation;
                }
                *inverse = 1.0 / deviation;
            }
        });
}

/// `x̂·γ + β`, row by row.
fn scale_and_shift(normalized: &[f32], gamma: &[f32], beta: &[f32]) -> Vec<f32> {
    let width = gamma.len();
    filled(
        normalized.len(),
        width * ROWS_PER_TASK,
        #[inline(always)]
        |task, y| {
            let normalized = &normalized[task * width * ROWS_PER_TASK..];
            for (y, normalized) in y.chunks_mut(width).zip(normalized.chunks(width)) {
                for ((y, normalized), (gamma, beta)) in
                    y.iter_mut().zip(normalized).zip(gamma.iter().zip(beta))
                {
                    *y = normalized * gamma + beta;
                }
            }
        },
    )
}

/// What the backward needs.
#[derive(Debug)]
struct Saved {
    normalized: Vec<f32>,
    inverse_deviation: Vec<f32>,
    gamma: ArcArray<f32, IxDyn>,
    /// The shape of `x`.
    shape: Vec<usize>,
}

/// `∂x`, `∂γ`, `∂β` given `∂y`.
fn backward(saved: &Saved, grad: &[f32]) -> [Vec<f32>; 3] {
    let gamma = slice(&saved.gamma);
    let width = gamma.len();
    let mut grad_x = zeros(grad.len());
    // Per block of rows: its part of ∂γ, then of ∂β.
    let partial_sums: Vec<Vec<f32>> = grad_x
        .par_chunks_mut(width * ROWS_PER_TASK)
        .zip(grad.par_chunks(width * ROWS_PER_TASK))
        .zip(saved.normalized.par_chunks(width * ROWS_PER_TASK))
        .zip(saved.inverse_deviation.par_chunks(ROWS_PER_TASK))
        .map(|(((grad_x, grad), normalized), inverse_deviation)| {
            let mut sums = vec![0.0f32; 2 * width];
            let (grad_gamma, grad_beta) = sums.split_at_mut(width);
            for (((grad_x, grad), normalized), inverse) in grad_x
                .chunks_mut(width)
                .zip(grad.chunks(width))
                .zip(normalized.chunks(width))
                .zip(inverse_deviation)
            {
                let mut mean_g = 0.0f32;
                let mut mean_g_normalized = 0.0f32;
                for (((grad, normalized), gamma), (grad_gamma, grad_beta)) in grad
                    .iter()
                    .zip(normalized)
                    .zip(gamma)
                    .zip(grad_gamma.iter_mut().zip(grad_beta.iter_mut()))
                {
                    *grad_gamma += grad * normalized;
                    *grad_beta += grad;
                    let g = grad * gamma;
                    mean_g += g;
                    mean_g_normalized += g * normalized;
                }
                mean_g /= width as f32;
                mean_g_normalized /= width as f32;
                for (((grad_x, grad), normalized), gamma) in
                    grad_x.iter_mut().zip(grad).zip(normalized).zip(gamma)
                {
                    let g = grad * gamma;
                    *grad_x = (g - mean_g - normalized * mean_g_normalized) * inverse;
                }
            }
            sums
        })
        .collect();
    let mut sums = vec![0.0f32; 2 * width];
    for partial in &partial_sums {
        for (sum, part) in sums.iter_mut().zip(partial) {
            *sum += part;
        }
    }
    let grad_beta = sums.split_off(width);
    [grad_x, sums, grad_beta]
}

#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Inner, 3> for LayerNormBackward {
    type State = Arc<Saved>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = f32_array(grads.consume::<Inner>(&ops.node));
        let saved = ops.state;
        let width = saved.gamma.len();
        let shapes = [saved.shape.clone(), vec![width], vec![width]];
        let gradients = backward(&saved, slice(&grad));
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        register_gradients(grads, parents, gradients, shapes);
    }
}

/// `(x − μ) / √(σ² + ε)·γ + β` over the last axis of `x`, `B` being the ndarray backend
/// `native`.
pub(crate) fn layer_norm<B: Backend, const D: usize>(
    native: Native,
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Tensor<B, D> {
    let shape = x.dims().to_vec();
    let width = shape[D - 1];
    let rows = shape.iter().product::<usize>() / width.max(1);
    // The values of x, γ and β, and their autodiff nodes where `B` tracks gradients.
    let (values, gamma, beta, nodes) = match native {
        Native::NdArrayAutodiff => {
            let x = primitive_of::<Ad, _, D>(x);
            let gamma = primitive_of::<Ad, _, 1>(gamma);
            let beta = primitive_of::<Ad, _, 1>(beta);
            let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
            let values = f32_array(x.primitive);
            (
                values,
                f32_array(gamma.primitive),
                f32_array(beta.primitive),
                Some(nodes),
            )
        }
        Native::NdArray => (
            f32_array(primitive_of::<Inner, _, D>(x)),
            f32_array(primitive_of::<Inner, _, 1>(gamma)),
            f32_array(primitive_of::<Inner, _, 1>(beta)),
            None,
        ),
    };
    let mut normalized = zeros(rows * width);
    let mut inverse_deviation = vec![0.0f32; rows];
    normalize(
        slice(&values),
        width,
        epsilon as f32,
        &mut normalized,
        &mut inverse_deviation,
    );
    let y = nd_tensor(
        scale_and_shift(&normalized, slice(&gamma), slice(&beta)),
        &shape,
    );
    let Some(nodes) = nodes else {
        return tensor_of::<Inner, _, D>(y);
    };
    let y = match LayerNormBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            Arc::new(Saved {
                normalized,
                inverse_deviation,
                gamma,
                shape,
            }),
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    tensor_of::<Ad, _, D>(y)
}
