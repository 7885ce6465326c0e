//! Label-smoothed softmax cross-entropy as one native operation on ndarray: one pass over the
//! logits forward, one backward (`∂z = w·[(g₀ + g₁)·p − (g₀(1 − ε) + g₁)·e_y − g₀·ε/C]`),
//! instead of the half-dozen full-size temporaries of `log_softmax` + `gather` + masking.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;

use super::bridge::{Ad, Inner, f32_array, nd_tensor, primitive_of, slice, tensor_of};
use super::fast_math::exp;
use super::fill::filled;
use super::simd::vectorized;
use crate::ops::dispatch::Native;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 16;

#[derive(Debug)]
struct Saved {
    logits: ArcArray<f32, IxDyn>,
    targets: Vec<usize>,
    /// 1 for rows that count, 0 for padding.
    weights: Vec<f32>,
    smoothing: f32,
    /// `log Σ_c exp(z_c)` of every row, from the forward pass.
    log_sum_exps: Vec<f32>,
}

/// `log Σ_c exp(z_c)` of one row, computed stably: the terms a block at a time (a vectorised
/// loop), summed in the row's order.
#[inline(always)]
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut terms = [0.0_f32; 64];
    let mut sum = 0.0_f32;
    for block in row.chunks(terms.len()) {
        let terms = &mut terms[..block.len()];
        for (term, &z) in terms.iter_mut().zip(block) {
            *term = exp(z - max);
        }
        sum = terms.iter().fold(sum, |sum, &term| sum + term);
    }
    max + sum.ln()
}

/// `[Σ_i w_i·((1 − ε)·nll_i + ε·smooth_i), Σ_i w_i·nll_i]`, accumulated in f64; keeps each
/// row's log-sum-exp for the backward pass.
fn forward(logits: &[f32], classes: usize, saved: &mut Saved) -> [f32; 2] {
    let eps = saved.smoothing as f64;
    saved.log_sum_exps = logits
        .par_chunks(classes)
        .map(|row| {
            vectorized(
                #[inline(always)]
                || log_sum_exp(row),
            )
        })
        .collect();
    let saved = &*saved;
    let [loss, nll] = logits
        .par_chunks(classes * ROWS_PER_TASK)
        .enumerate()
        .map(|(task, rows)| {
            let mut sums = [0.0_f64; 2];
            for (r, row) in rows.chunks(classes).enumerate() {
                let i = task * ROWS_PER_TASK + r;
                let w = saved.weights[i] as f64;
                if w == 0.0 {
                    continue;
                }
                let lse = saved.log_sum_exps[i] as f64;
                let nll = lse - row[saved.targets[i]] as f64;
                let smooth = lse - row.iter().map(|&z| z as f64).sum::<f64>() / classes as f64;
                sums[0] += w * ((1.0 - eps) * nll + eps * smooth);
                sums[1] += w * nll;
            }
            sums
        })
        .reduce(|| [0.0; 2], |a, b| [a[0] + b[0], a[1] + b[1]]);
    [loss as f32, nll as f32]
}

fn backward(saved: &Saved, classes: usize, grad: [f32; 2]) -> Vec<f32> {
    let [g0, g1] = grad;
    let eps = saved.smoothing;
    let logits = slice(&saved.logits);
    filled(
        logits.len(),
        classes * ROWS_PER_TASK,
        #[inline(always)]
        |task, out_rows| {
            let rows = &logits[task * classes * ROWS_PER_TASK..];
            for (r, (out_row, row)) in out_rows
                .chunks_mut(classes)
                .zip(rows.chunks(classes))
                .enumerate()
            {
                let i = task * ROWS_PER_TASK + r;
                let w = saved.weights[i];
                if w == 0.0 {
                    continue;
                }
                let lse = saved.log_sum_exps[i];
                let uniform = g0 * eps / classes as f32;
                for (d, &z) in out_row.iter_mut().zip(row) {
                    *d = w * ((g0 + g1) * exp(z - lse) - uniform);
                }
                out_row[saved.targets[i]] -= w * (g0 * (1.0 - eps) + g1);
            }
        },
    )
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl Backward<Inner, 1> for CrossEntropyBackward {
    type State = std::sync::Arc<Saved>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = f32_array(grads.consume::<Inner>(&ops.node));
        let grad = [slice(&grad)[0], slice(&grad)[1]];
        let saved = ops.state;
        let shape = saved.logits.shape().to_vec();
        let [node] = ops.parents;
        if let Some(node) = node {
            grads.register::<Inner>(node.id, nd_tensor(backward(&saved, shape[1], grad), &shape));
        }
    }
}

/// `[Σ_i w_i·((1 − ε)·nll_i + ε·smooth_i), Σ_i w_i·nll_i]` over the rows of `logits: [rows, C]`
/// with `w_i = 0` where the target is `pad`, `B` being the ndarray backend `native`.
pub(crate) fn cross_entropy_sums<B: Backend>(
    native: Native,
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    smoothing: f64,
    pad: Option<usize>,
) -> Tensor<B, 1> {
    let classes = logits.dims()[1];
    let ids: Vec<i64> = targets
        .into_data()
        .convert::<i64>()
        .to_vec()
        .expect("integer targets");
    for &id in &ids {
        assert!(
            id >= 0 && (id as usize) < classes,
            "target {id} is outside the {classes} classes"
        );
    }
    let weights = ids
        .iter()
        .map(|&id| if Some(id as usize) == pad { 0.0 } else { 1.0 })
        .collect();
    let targets = ids.into_iter().map(|id| id as usize).collect();
    let make_saved = |logits: NdArrayTensor| Saved {
        logits: f32_array(logits),
        targets,
        weights,
        smoothing: smoothing as f32,
        log_sum_exps: Vec::new(),
    };
    if native == Native::NdArrayAutodiff {
        let logits = primitive_of::<Ad, _, 2>(logits);
        let mut saved = make_saved(logits.primitive);
        let values = saved.logits.clone();
        let sums = forward(slice(&values), classes, &mut saved);
        let output = nd_tensor(sums.to_vec(), &[2]);
        let output = match CrossEntropyBackward
            .prepare::<NoCheckpointing>([logits.node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(std::sync::Arc::new(saved), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        return tensor_of::<Ad, _, 1>(output);
    }
    let mut saved = make_saved(primitive_of::<Inner, _, 2>(logits));
    let values = saved.logits.clone();
    let sums = forward(slice(&values), classes, &mut saved);
    tensor_of::<Inner, _, 1>(nd_tensor(sums.to_vec(), &[2]))
}
