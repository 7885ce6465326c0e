//! Scaled dot-product attention over heads as one task per sentence on ndarray, with its own
//! backward, computing what Burn 0.19.1's `MultiHeadAttention` computes between its
//! projections: for each head `h`,
//!
//! - `S = Q_h·K_hᵀ / √d_k`, scores dropped (`S·mask / (1 − p)`, Burn's order: before the masks),
//!   masked positions set to `min_float`;
//! - `P = softmax(S)` along the keys;
//! - `O_h = P·V_h`.
//!
//! The heads are read in place from the projections `[rows, length, d_model]` (head `h` is
//! columns `h·d_k .. (h + 1)·d_k`) and the context is written in the same layout, where Burn
//! splits the heads into a transposed copy, multiplies them one small matrix at a time, and
//! merges them back with another copy, then runs the softmax and its backward as a dozen
//! single-threaded passes. Backward, with `P` saved:
//!
//! - `∂V_h = Pᵀ·∂O_h`, `∂P = ∂O_h·V_hᵀ`;
//! - `∂S = P ⊙ (∂P − rowsum(∂P ⊙ P))`, zero where masked, times the dropout mask, over `√d_k`;
//! - `∂Q_h = ∂S·K_h`, `∂K_h = ∂Sᵀ·Q_h`.

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
use super::dropout::mask_values_drawn;
use super::fast_math;
use super::fill::zeros;
use super::gemm::gemm;
use super::matrix::Matrix;
use crate::ops::dispatch::Native;

/// The sizes of one attention call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AttentionShape {
    /// Sentences.
    pub(crate) rows: usize,
    /// Heads.
    pub(crate) heads: usize,
    /// Query positions per sentence.
    pub(crate) queries: usize,
    /// Key (and value) positions per sentence.
    pub(crate) keys: usize,
    /// Width of one head, `d_model / heads`.
    pub(crate) d_k: usize,
}

impl AttentionShape {
    fn d_model(&self) -> usize {
        self.heads * self.d_k
    }

    /// Scores (or weights) of one head: `queries × keys`.
    fn per_head(&self) -> usize {
        self.queries * self.keys
    }

    /// Scores of one sentence, all heads.
    fn per_row(&self) -> usize {
        self.heads * self.per_head()
    }
}

/// Which scores are masked, to what, and how many are dropped while training.
pub(crate) struct ScoreRule {
    /// Per sentence, query and key `[rows, queries, keys]`: whether the score is masked.
    pub(crate) masked: Vec<bool>,
    /// The value of a masked score.
    pub(crate) fill: f32,
    /// The probability of dropping a score while training.
    pub(crate) dropout: f64,
}

/// How the scores are dropped and masked, the dropout mask drawn.
struct ScoreMasks {
    /// Per score `[rows, heads, queries, keys]`: 0 where dropped, `1 / (1 − p)` where kept;
    /// `None` without dropout.
    keep: Option<Vec<f32>>,
    /// Per sentence, query and key `[rows, queries, keys]`: whether the score is masked.
    masked: Vec<bool>,
    /// The value of a masked score.
    fill: f32,
}

/// Head `head` of the row-major `[positions, d_model]` matrix `data`: `positions × d_k`, read in
/// place.
fn head_of(data: &[f32], shape: AttentionShape, head: usize) -> Matrix<'_> {
    Matrix {
        data: &data[head * shape.d_k..],
        row_stride: shape.d_model() as isize,
        col_stride: 1,
    }
}

/// The transpose of [`head_of`]: `d_k × positions`.
fn head_transposed(data: &[f32], shape: AttentionShape, head: usize) -> Matrix<'_> {
    Matrix {
        data: &data[head * shape.d_k..],
        row_stride: 1,
        col_stride: shape.d_model() as isize,
    }
}

/// Writes `values` (`positions × d_k`, row-major) into head `head` of the `[positions, d_model]`
/// matrix `out`.
fn put_head(out: &mut [f32], values: &[f32], shape: &AttentionShape, head: usize) {
    let d_model = shape.d_model();
    for (out, values) in out.chunks_mut(d_model).zip(values.chunks(shape.d_k)) {
        out[head * shape.d_k..][..shape.d_k].copy_from_slice(values);
    }
}

/// Scales, drops and masks one head's scores `s` in place, then turns each query's row into its
/// softmax.
fn softmax_of_scores(
    s: &mut [f32],
    keys: usize,
    scale: f32,
    keep: Option<&[f32]>,
    masked: &[bool],
    fill: f32,
) {
    for (index, score) in s.iter_mut().enumerate() {
        let mut x = *score / scale;
        if let Some(keep) = keep {
            x *= keep[index];
        }
        *score = if masked[index] { fill } else { x };
    }
    for row in s.chunks_mut(keys) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for x in row.iter_mut() {
            *x = fast_math::exp(*x - max);
        }
        let sum: f32 = row.iter().sum();
        for x in row.iter_mut() {
            *x /= sum;
        }
    }
}

/// The attention weights `P` (`[heads, queries, keys]` per sentence, into `weights`) and the
/// context (`[rows·queries, d_model]`) of the projections `query`, `keys` and `values`.
fn forward(
    shape: &AttentionShape,
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    masks: &ScoreMasks,
    weights: &mut [f32],
) -> Vec<f32> {
    let AttentionShape {
        queries,
        keys: n_keys,
        d_k,
        ..
    } = *shape;
    let d_model = shape.d_model();
    let scale = (d_k as f32).sqrt();
    let mut context = zeros(shape.rows * queries * d_model);
    context
        .par_chunks_mut(queries * d_model)
        .zip(weights.par_chunks_mut(shape.per_row()))
        .enumerate()
        .for_each(|(row, (context, weights))| {
            let query = &query[row * queries * d_model..][..queries * d_model];
            let keys = &keys[row * n_keys * d_model..][..n_keys * d_model];
            let values = &values[row * n_keys * d_model..][..n_keys * d_model];
            let masked = &masks.masked[row * shape.per_head()..][..shape.per_head()];
            let mut head_context = vec![0.0f32; queries * d_k];
            for (head, p) in weights.chunks_mut(shape.per_head()).enumerate() {
                gemm(
                    queries,
                    d_k,
                    n_keys,
                    head_of(query, *shape, head),
                    head_transposed(keys, *shape, head),
                    0.0,
                    p,
                );
                let keep = masks.keep.as_ref().map(|keep| {
                    &keep[(row * shape.heads + head) * shape.per_head()..][..shape.per_head()]
                });
                softmax_of_scores(p, n_keys, scale, keep, masked, masks.fill);
                gemm(
                    queries,
                    n_keys,
                    d_k,
                    Matrix::row_major(p, n_keys),
                    head_of(values, *shape, head),
                    0.0,
                    &mut head_context,
                );
                put_head(context, &head_context, shape, head);
            }
        });
    context
}

/// What the backward needs: the inputs, the weights `P` and the masks.
#[derive(Debug)]
struct Saved {
    shape: AttentionShape,
    query: ArcArray<f32, IxDyn>,
    keys: ArcArray<f32, IxDyn>,
    values: ArcArray<f32, IxDyn>,
    weights: Vec<f32>,
    keep: Option<Vec<f32>>,
    masked: Vec<bool>,
}

/// The gradients of the query, keys and values, given that of the context `grad`.
fn backward(saved: &Saved, grad: &[f32]) -> [Vec<f32>; 3] {
    let shape = &saved.shape;
    let AttentionShape {
        queries,
        keys: n_keys,
        d_k,
        ..
    } = *shape;
    let d_model = shape.d_model();
    let scale = (d_k as f32).sqrt();
    let (query, keys, values) = (
        slice(&saved.query),
        slice(&saved.keys),
        slice(&saved.values),
    );
    let mut grad_query = zeros(shape.rows * queries * d_model);
    let mut grad_keys = zeros(shape.rows * n_keys * d_model);
    let mut grad_values = zeros(shape.rows * n_keys * d_model);
    grad_query
        .par_chunks_mut(queries * d_model)
        .zip(grad_keys.par_chunks_mut(n_keys * d_model))
        .zip(grad_values.par_chunks_mut(n_keys * d_model))
        .enumerate()
        .for_each(|(row, ((grad_query, grad_keys), grad_values))| {
            // This sentence's positions of a `[rows·positions, d_model]` matrix.
            let sentence =
                |positions: usize| row * positions * d_model..(row + 1) * positions * d_model;
            let grad = &grad[sentence(queries)];
            let query = &query[sentence(queries)];
            let keys = &keys[sentence(n_keys)];
            let values = &values[sentence(n_keys)];
            let masked = &saved.masked[row * shape.per_head()..][..shape.per_head()];
            let mut grad_scores = vec![0.0f32; shape.per_head()];
            let mut by_query = vec![0.0f32; queries * d_k];
            let mut by_key = vec![0.0f32; n_keys * d_k];
            for head in 0..shape.heads {
                let first = (row * shape.heads + head) * shape.per_head();
                let p = &saved.weights[first..][..shape.per_head()];
                // ∂V_h = Pᵀ·∂O_h
                gemm(
                    n_keys,
                    queries,
                    d_k,
                    Matrix::transposed(p, n_keys),
                    head_of(grad, *shape, head),
                    0.0,
                    &mut by_key,
                );
                put_head(grad_values, &by_key, shape, head);
                // ∂P = ∂O_h·V_hᵀ, then ∂S in place.
                gemm(
                    queries,
                    d_k,
                    n_keys,
                    head_of(grad, *shape, head),
                    head_transposed(values, *shape, head),
                    0.0,
                    &mut grad_scores,
                );
                let keep = saved
                    .keep
                    .as_ref()
                    .map(|keep| &keep[first..][..shape.per_head()]);
                for (query_index, (ds, p)) in grad_scores
                    .chunks_mut(n_keys)
                    .zip(p.chunks(n_keys))
                    .enumerate()
                {
                    let dot: f32 = ds.iter().zip(p).map(|(ds, p)| ds * p).sum();
                    for (key_index, (ds, &p)) in ds.iter_mut().zip(p).enumerate() {
                        let index = query_index * n_keys + key_index;
                        let mut g = if masked[index] { 0.0 } else { p * (*ds - dot) };
                        if let Some(keep) = keep {
                            g *= keep[index];
                        }
                        *ds = g / scale;
                    }
                }
                // ∂Q_h = ∂S·K_h
                gemm(
                    queries,
                    n_keys,
                    d_k,
                    Matrix::row_major(&grad_scores, n_keys),
                    head_of(keys, *shape, head),
                    0.0,
                    &mut by_query,
                );
                put_head(grad_query, &by_query, shape, head);
                // ∂K_h = ∂Sᵀ·Q_h
                gemm(
                    n_keys,
                    queries,
                    d_k,
                    Matrix::transposed(&grad_scores, n_keys),
                    head_of(query, *shape, head),
                    0.0,
                    &mut by_key,
                );
                put_head(grad_keys, &by_key, shape, head);
            }
        });
    [grad_query, grad_keys, grad_values]
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Inner, 3> for AttentionBackward {
    type State = Arc<Saved>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = f32_array(grads.consume::<Inner>(&ops.node));
        let saved = ops.state;
        let AttentionShape {
            rows,
            queries,
            keys,
            ..
        } = saved.shape;
        let d_model = saved.shape.d_model();
        let shapes = [
            [rows, queries, d_model],
            [rows, keys, d_model],
            [rows, keys, d_model],
        ];
        let gradients = backward(&saved, slice(&grad));
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        register_gradients(grads, parents, gradients, shapes);
    }
}

/// The context `[rows, queries, d_model]` of attention of the projections `query` (`[rows,
/// queries, d_model]`) over `keys` and `values` (`[rows, keys, d_model]`) in `heads` heads,
/// scores masked and (while training) dropped by `rule`. `B` is the ndarray backend `native`.
pub(crate) fn attention_context<B: Backend>(
    native: Native,
    [query, keys, values]: [Tensor<B, 3>; 3],
    heads: usize,
    rule: ScoreRule,
) -> Tensor<B, 3> {
    let ScoreRule {
        masked,
        fill,
        dropout,
    } = rule;
    let [rows, queries, d_model] = query.dims();
    let n_keys = keys.dims()[1];
    let shape = AttentionShape {
        rows,
        heads,
        queries,
        keys: n_keys,
        d_k: d_model / heads,
    };
    assert_eq!(masked.len(), rows * queries * n_keys, "one mask per score");
    let scores = rows * shape.per_row();
    // The inputs' values, and their autodiff nodes where `B` tracks gradients.
    let (inputs, nodes) = match native {
        Native::NdArrayAutodiff => {
            let inputs = [query, keys, values].map(|tensor| primitive_of::<Ad, _, 3>(tensor));
            let nodes = inputs.each_ref().map(|tensor| tensor.node.clone());
            (
                inputs.map(|tensor| f32_array(tensor.primitive)),
                Some(nodes),
            )
        }
        Native::NdArray => {
            let inputs =
                [query, keys, values].map(|tensor| f32_array(primitive_of::<Inner, _, 3>(tensor)));
            (inputs, None)
        }
    };
    // Scores are dropped while training only.
    let masks = ScoreMasks {
        keep: (nodes.is_some() && dropout > 0.0).then(|| mask_values_drawn(scores, dropout)),
        masked,
        fill,
    };
    let mut weights = vec![0.0f32; scores];
    let context = {
        let [query, keys, values] = &inputs;
        let [query, keys, values] = [query, keys, values].map(slice);
        forward(&shape, query, keys, values, &masks, &mut weights)
    };
    let output = nd_tensor(context, &[rows, queries, d_model]);
    let Some(nodes) = nodes else {
        return tensor_of::<Inner, _, 3>(output);
    };
    let output = match AttentionBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let [query, keys, values] = inputs;
            let saved = Saved {
                shape,
                query,
                keys,
                values,
                weights,
                keep: masks.keep,
                masked: masks.masked,
            };
            prep.finish(Arc::new(saved), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    tensor_of::<Ad, _, 3>(output)
}
