//! The 2-D matrix product on ndarray through the native [`gemm`], split across threads, with its
//! own backward (`∂a = g·bᵀ`, `∂b = aᵀ·g`).
//!
//! Burn 0.19.1's ndarray matmul leaves a single 2-D product (batch 1) to matrixmultiply's own
//! threads, which the programs turn off (`MATMUL_NUM_THREADS=1`) because everywhere else they
//! oversubscribe the cores; the language model's output layer, the largest product of its
//! step, is such a product. Transposed operands (a tied embedding's `weightᵀ`) are read in
//! place.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use ndarray::{ArcArray, IxDyn};

use super::bridge::{Ad, Inner, f32_array, nd_tensor, primitive_of, tensor_of};
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
    let ([m, k], n) = ([a.shape()[0], a.shape()[1]], b.shape()[1]);
    assert_eq!(b.shape()[0], k, "matmul: {m}×{k} by {:?}", b.shape());
    let (a_matrix, b_matrix) = (
        Matrix::of(a).expect("operand"),
        Matrix::of(b).expect("operand"),
    );
    let mut c = vec![0.0_f32; m * n];
    gemm(m, k, n, a_matrix, b_matrix, 0.0, &mut c);
    nd_tensor(c, &[m, n])
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
        let [node_a, node_b] = ops.parents;
        let grad = operand(grads.consume::<Inner>(&ops.node));
        let (a, b) = ops.state;
        if let Some(node) = node_a {
            // ∂a = g·bᵀ
            grads.register::<Inner>(node.id, product(&grad, &b.reversed_axes()));
        }
        if let Some(node) = node_b {
            // ∂b = aᵀ·g
            grads.register::<Inner>(node.id, product(&a.reversed_axes(), &grad));
        }
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
