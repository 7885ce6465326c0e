//! The bridge between Burn's generic tensors and the ndarray arrays the kernels compute on: a
//! tensor of a generic backend `B`, which the [dispatch](crate::ops::dispatch) found to be
//! `NdArray<f32>` or `Autodiff<NdArray<f32>>`, is cast to that backend's primitive, its f32
//! values are read as a slice, and the kernel's values go back the same way.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::Ops;
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorMetadata, TensorPrimitive};
use ndarray::{ArcArray, IxDyn};

pub(crate) use crate::ops::dispatch::{Ad, Inner};

/// `value` as a `U`, where the dispatch has found `T` to be `U`.
pub(crate) fn checked_cast<T: 'static, U: 'static>(value: T) -> U {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn core::any::Any).downcast_mut::<Option<U>>() {
        Some(target) => target.take().expect("just filled"),
        None => unreachable!("the dispatch recognised the backend"),
    }
}

/// The f32 values of an ndarray primitive, in standard layout.
pub(crate) fn f32_array(tensor: NdArrayTensor) -> ArcArray<f32, IxDyn> {
    match tensor {
        NdArrayTensor::F32(array) if array.is_standard_layout() => array,
        NdArrayTensor::F32(array) => array.as_standard_layout().into_owned().into_shared(),
        other => panic!(
            "the ndarray convolution kernels take f32 tensors, got {:?}",
            other.dtype()
        ),
    }
}

/// An ndarray primitive of `shape` holding `values`.
pub(crate) fn nd_tensor(values: Vec<f32>, shape: &[usize]) -> NdArrayTensor {
    NdArrayTensor::F32(
        ArcArray::from_shape_vec(IxDyn(shape), values).expect("shape matches the values"),
    )
}

/// The float primitive of `tensor`, whose backend `B` is `K` (the dispatch
/// recognised `B`).
pub(crate) fn primitive_of<K: Backend, B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
) -> FloatTensor<K> {
    checked_cast::<_, Tensor<K, D>>(tensor)
        .into_primitive()
        .tensor()
}

/// The tensor of `B` holding `primitive`, a float primitive of `K`, where `B` is `K` (the dispatch
/// recognised `B`).
pub(crate) fn tensor_of<K: Backend, B: Backend, const D: usize>(
    primitive: FloatTensor<K>,
) -> Tensor<B, D> {
    checked_cast(Tensor::<K, D>::from_primitive(TensorPrimitive::Float(
        primitive,
    )))
}

/// The values of a standard-layout array.
pub(crate) fn slice(array: &ArcArray<f32, IxDyn>) -> &[f32] {
    array.as_slice().expect("standard layout")
}

/// Registers the gradient of each parent of an autodiff step: `gradients` row-major in `shapes`,
/// in the order of `parents` (the parents' node ids, `None` for those that track none).
pub(crate) fn register_gradients<S: AsRef<[usize]>>(
    grads: &mut Gradients,
    parents: impl IntoIterator<Item = Option<NodeId>>,
    gradients: impl IntoIterator<Item = Vec<f32>>,
    shapes: impl IntoIterator<Item = S>,
) {
    for ((parent, gradient), shape) in parents.into_iter().zip(gradients).zip(shapes) {
        if let Some(id) = parent {
            grads.register::<Inner>(id, nd_tensor(gradient, shape.as_ref()));
        }
    }
}

/// The backward of an autodiff step with one input: registers `input_gradient(∂y, state)` as
/// the gradient of `ops`' parent, if it tracks one.
pub(crate) fn register_input_gradient<S>(
    ops: Ops<S, 1>,
    grads: &mut Gradients,
    input_gradient: impl FnOnce(ArcArray<f32, IxDyn>, &S) -> NdArrayTensor,
) {
    let grad = f32_array(grads.consume::<Inner>(&ops.node));
    let [parent] = ops.parents;
    if let Some(node) = parent {
        grads.register::<Inner>(node.id, input_gradient(grad, &ops.state));
    }
}
