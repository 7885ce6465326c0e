//! The 2-D matrix product on ndarray through the native [`gemm`], split across threads, with its
//! own backward (`∂a = g·bᵀ`, `∂b = aᵀ·g`), and the linear layer `x·W + b` as one product whose
//! output starts as the bias rows (`∂b` = the column sums of the gradient).
//!
//! Burn 0.19.1's ndarray matmul leaves a single 2-D product (batch 1) to matrixmultiply's own
//! threads, which the programs turn off (`MATMUL_NUM_THREADS=1`) because everywhere else they
//! oversubscribe the cores; the language model's output layer, the largest product of its
//! step, is such a product. Transposed operands (a tied embedding's `weightᵀ`) are read in
//! place.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;

use super::ELEMENTS_PER_TASK;
use super::bridge::{
    Ad, Inner, checked_cast, f32_array, nd_tensor, primitive_of, slice, tensor_of,
};
use super::fill::{filled, zeros};
use super::gemm::gemm;
use super::matrix::Matrix;
use crate::ops::dispatch::Native;

/// An f32 array in the layout it has, made row-major ([`f32_array`]) only if [`Matrix::of`]
/// cannot read it.
fn operand(tensor: NdArrayTensor) -> ArcArray<f32, IxDyn> {
    match tensor {
        NdArrayTensor::F32(array) if Matrix::of(&array).is_some() => array,
        other => f32_array(other),
    }
}

/// `a·b` for `a: m × k`, `b: k × n`, row-major.
fn product(a: &ArcArray<f32, IxDyn>, b: &ArcArray<f32, IxDyn>) -> NdArrayTensor {
    product_plus(a, b, None)
}

/// `a·b`, plus `bias` (`n` values) on every row, for `a: m × k`, `b: k × n`, row-major: `c`
/// starts as the bias rows (where it would start as zeros) and the product adds to it, so the
/// bias costs no pass of its own.
fn product_plus(
    a: &ArcArray<f32, IxDyn>,
    b: &ArcArray<f32, IxDyn>,
    bias: Option<&[f32]>,
) -> NdArrayTensor {
    let ([m, k], n) = ([a.shape()[0], a.shape()[1]], b.shape()[1]);
    assert_eq!(b.shape()[0], k, "matmul: {m}×{k} by {:?}", b.shape());
    let (a_matrix, b_matrix) = (
        Matrix::of(a).expect("operand"),
        Matrix::of(b).expect("operand"),
    );
    let (mut c, beta) = match bias {
        Some(bias) => {
            assert_eq!(
                bias.len(),
                n,
                "linear: bias of {} for {n} outputs",
                bias.len()
            );
            (bias_rows(m, bias), 1.0)
        }
        None => (zeros(m * n), 0.0),
    };
    gemm(m, k, n, a_matrix, b_matrix, beta, &mut c);
    nd_tensor(c, &[m, n])
}

/// `m` rows, each a copy of `bias`, written by [`filled`]: the starting value of a product that
/// adds a bias.
pub(super) fn bias_rows(m: usize, bias: &[f32]) -> Vec<f32> {
    let n = bias.len();
    let rows = (ELEMENTS_PER_TASK / n.max(1)).max(1);
    filled(m * n, rows * n, |_, c| {
        for row in c.chunks_exact_mut(n) {
            row.copy_from_slice(bias);
        }
    })
}

/// The sums of the columns of `values` (rows of `n`, row-major), each added in row order; the
/// columns are split across the threads.
pub(super) fn column_sums(values: &[f32], n: usize) -> Vec<f32> {
    let mut sums = vec![0.0_f32; n];
    let columns_per_task = n
        .div_ceil(rayon::current_num_threads())
        .max(COLUMNS_PER_TASK);
    sums.par_chunks_mut(columns_per_task)
        .enumerate()
        .for_each(|(task, sums)| {
            let first = task * columns_per_task;
            for row in values.chunks_exact(n) {
                for (sum, &value) in sums.iter_mut().zip(&row[first..]) {
                    *sum += value;
                }
            }
        });
    sums
}

/// The fewest columns of [`column_sums`] one task adds up.
const COLUMNS_PER_TASK: usize = 256;

/// Registers `∂a = g·bᵀ` and `∂b = aᵀ·g` for the parents that track gradients (their ids).
fn register_product_gradients(
    grads: &mut Gradients,
    grad: &ArcArray<f32, IxDyn>,
    (a, b): (ArcArray<f32, IxDyn>, ArcArray<f32, IxDyn>),
    [a_id, b_id]: [Option<NodeId>; 2],
) {
    if let Some(id) = a_id {
        grads.register::<Inner>(id, product(grad, &b.reversed_axes()));
    }
    if let Some(id) = b_id {
        grads.register::<Inner>(id, product(&a.reversed_axes(), grad));
    }
}

#[derive(Debug)]
struct MatmulBackward;

impl Backward<Inner, 2> for MatmulBackward {
    type State = (ArcArray<f32, IxDyn>, ArcArray<f32, IxDyn>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = operand(grads.consume::<Inner>(&ops.node));
        let ids = ops.parents.map(|node| node.map(|node| node.id));
        register_product_gradients(grads, &grad, ops.state, ids);
    }
}

/// The autodiff step of [`linear`]: the product's gradients, and `∂bias = Σ_rows g`.
#[derive(Debug)]
struct LinearBackward;

impl Backward<Inner, 3> for LinearBackward {
    type State = (ArcArray<f32, IxDyn>, ArcArray<f32, IxDyn>);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = f32_array(grads.consume::<Inner>(&ops.node));
        let [node_x, node_weight, node_bias] = ops.parents;
        if let Some(node) = node_bias {
            let sums = column_sums(slice(&grad), grad.shape()[1]);
            let outputs = sums.len();
            grads.register::<Inner>(node.id, nd_tensor(sums, &[outputs]));
        }
        let ids = [node_x, node_weight].map(|node| node.map(|node| node.id));
        register_product_gradients(grads, &grad, ops.state, ids);
    }
}

/// `a·b` for 2-D tensors with the native product, `B` being the ndarray backend `native`.
pub(crate) fn matmul<B: Backend>(native: Native, a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 2> {
    if native == Native::NdArrayAutodiff {
        let (a, b) = (primitive_of::<Ad, _, 2>(a), primitive_of::<Ad, _, 2>(b));
        let (a_values, b_values) = (operand(a.primitive.clone()), operand(b.primitive.clone()));
        let output = product(&a_values, &b_values);
        let output = match MatmulBackward
            .prepare::<NoCheckpointing>([a.node.clone(), b.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((a_values, b_values), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        return tensor_of::<Ad, _, 2>(output);
    }
    let (a, b) = (
        primitive_of::<Inner, _, 2>(a),
        primitive_of::<Inner, _, 2>(b),
    );
    tensor_of::<Inner, _, 2>(product(&operand(a), &operand(b)))
}

/// `x·weight + bias` (`bias` on every row) with the native product, `B` being the ndarray
/// backend `native`.
pub(crate) fn linear<B: Backend>(
    native: Native,
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
) -> Tensor<B, 2> {
    if native == Native::NdArrayAutodiff {
        let (x, weight) = (
            primitive_of::<Ad, _, 2>(x),
            primitive_of::<Ad, _, 2>(weight),
        );
        let bias = checked_cast::<_, Tensor<Ad, 1>>(bias)
            .into_primitive()
            .tensor();
        let (x_values, weight_values) = (
            operand(x.primitive.clone()),
            operand(weight.primitive.clone()),
        );
        let bias_values = f32_array(bias.primitive.clone());
        let output = product_plus(&x_values, &weight_values, Some(slice(&bias_values)));
        let output = match LinearBackward
            .prepare::<NoCheckpointing>([x.node.clone(), weight.node.clone(), bias.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x_values, weight_values), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        return tensor_of::<Ad, _, 2>(output);
    }
    let (x, weight) = (
        primitive_of::<Inner, _, 2>(x),
        primitive_of::<Inner, _, 2>(weight),
    );
    let bias = f32_array(
        checked_cast::<_, Tensor<Inner, 1>>(bias)
            .into_primitive()
            .tensor(),
    );
    let output = product_plus(&operand(x), &operand(weight), Some(slice(&bias)));
    tensor_of::<Inner, _, 2>(output)
}
