//! Reshape on ndarray without a copy: a row-major array is the same buffer read in another shape
//! (`into_shape_with_order` keeps the shared buffer), and so is its gradient in the backward.
//! Arrays in another layout are made row-major first, as Burn's reshape does. Writers of a
//! shared buffer copy it first (ndarray's copy-on-write), so the view is safe to hand out.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorMetadata};
use ndarray::IxDyn;

use super::bridge::{Ad, Inner, f32_array, primitive_of, register_input_gradient, tensor_of};
use crate::ops::dispatch::Native;

/// The f32 values of `tensor` in `shape`, sharing its buffer where it is row-major.
fn reshaped(tensor: NdArrayTensor, shape: &[usize]) -> NdArrayTensor {
    let array = f32_array(tensor);
    let size = array.len();
    NdArrayTensor::F32(
        array
            .into_shape_with_order(IxDyn(shape))
            .unwrap_or_else(|_| panic!("reshape: {size} elements do not fill {shape:?}")),
    )
}

/// The autodiff step: the gradient in the input's shape.
#[derive(Debug)]
struct ReshapeBackward;

impl Backward<Inner, 1> for ReshapeBackward {
    /// The input's shape.
    type State = Vec<usize>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        register_input_gradient(ops, grads, |grad, shape| {
            reshaped(NdArrayTensor::F32(grad), shape)
        });
    }
}

/// `x` in `shape`, `B` being the ndarray backend `native`.
pub(crate) fn reshape<B: Backend, const D1: usize, const D2: usize>(
    native: Native,
    x: Tensor<B, D1>,
    shape: [usize; D2],
) -> Tensor<B, D2> {
    if native == Native::NdArray {
        let x = primitive_of::<Inner, _, D1>(x);
        return tensor_of::<Inner, _, D2>(reshaped(x, &shape));
    }
    let x = primitive_of::<Ad, _, D1>(x);
    let input_shape = x.primitive.shape().dims;
    let output = reshaped(x.primitive.clone(), &shape);
    let y = match ReshapeBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(input_shape, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    tensor_of::<Ad, _, D2>(y)
}
