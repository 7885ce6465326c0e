//! Native ndarray kernels, with their own backward on `Autodiff<NdArray<f32>>`, for the
//! operations where Burn 0.19.1's ndarray backend is slow to train: convolution (im2col), the
//! LSTM recurrence, softmax cross-entropy and training-mode batch normalization.
//!
//! Each entry point takes generic tensors, recognises `NdArray<f32>` and
//! `Autodiff<NdArray<f32>>` at run time from their type, and hands every other backend back to
//! the caller, which then uses Burn tensor operations. Model code never names a backend.

pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod cross_entropy;
pub(crate) mod lstm;

use burn::backend::ndarray::NdArrayTensor;
use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Tensor, TensorMetadata, TensorPrimitive};
use ndarray::{ArcArray, IxDyn};

pub(crate) type Inner = NdArray<f32>;
pub(crate) type Ad = Autodiff<Inner>;

pub(crate) fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn core::any::Any).downcast_mut::<Option<U>>() {
        Some(target) => Ok(target.take().expect("just filled")),
        None => Err(slot.expect("untouched")),
    }
}

pub(crate) fn same_type<T: 'static, U: 'static>() -> bool {
    core::any::TypeId::of::<T>() == core::any::TypeId::of::<U>()
}

pub(crate) fn checked_cast<T: 'static, U: 'static>(value: T) -> U {
    cast(value).unwrap_or_else(|_| unreachable!("the types were compared first"))
}

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

pub(crate) fn nd_tensor(values: Vec<f32>, shape: &[usize]) -> NdArrayTensor {
    NdArrayTensor::F32(
        ArcArray::from_shape_vec(IxDyn(shape), values).expect("shape matches the values"),
    )
}

pub(crate) fn inner<const D: usize>(tensor: NdArrayTensor) -> Tensor<Inner, D> {
    Tensor::from_primitive(TensorPrimitive::Float(tensor))
}

pub(crate) fn primitive<const D: usize>(tensor: Tensor<Inner, D>) -> NdArrayTensor {
    tensor.into_primitive().tensor()
}

pub(crate) fn slice(array: &ArcArray<f32, IxDyn>) -> &[f32] {
    array.as_slice().expect("standard layout")
}

/// A row-major matrix view for [`gemm`]: `rows × cols` with the given strides.
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a> {
    data: &'a [f32],
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Matrix<'a> {
    pub(crate) fn row_major(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub(crate) fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: cols as isize,
        }
    }
}

/// `c ← a·b + beta·c`, `a: m × k`, `b: k × n`, `c: m × n` row-major.
pub(crate) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Matrix<'_>,
    b: Matrix<'_>,
    beta: f32,
    c: &mut [f32],
) {
    assert!(c.len() >= m * n, "gemm output too small");
    let a_end = (m.saturating_sub(1) as isize * a.row_stride
        + k.saturating_sub(1) as isize * a.col_stride) as usize;
    let b_end = (k.saturating_sub(1) as isize * b.row_stride
        + n.saturating_sub(1) as isize * b.col_stride) as usize;
    assert!(m * k == 0 || a_end < a.data.len(), "gemm: a out of bounds");
    assert!(k * n == 0 || b_end < b.data.len(), "gemm: b out of bounds");
    // SAFETY: the bounds of a, b and c were checked above for the given shapes and strides.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.row_stride,
            a.col_stride,
            b.data.as_ptr(),
            b.row_stride,
            b.col_stride,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
