//! A strided view of an f32 matrix, the operand type of [`gemm`](super::gemm::gemm).

use ndarray::{ArcArray, IxDyn};

/// A row-major matrix view for [`gemm`]: `rows × cols` with the given strides.
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a> {
    pub(super) data: &'a [f32],
    pub(super) row_stride: isize,
    pub(super) col_stride: isize,
}

impl<'a> Matrix<'a> {
    pub(crate) fn row_major(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// A 2-D array in any contiguous layout (row-major, or a transposed view of one); `None`
    /// for others (broadcast or reversed axes).
    pub(crate) fn of(array: &'a ArcArray<f32, IxDyn>) -> Option<Self> {
        let strides = array.strides();
        if array.ndim() != 2 || strides.iter().any(|&stride| stride < 0) {
            return None;
        }
        Some(Self {
            data: array.as_slice_memory_order()?,
            row_stride: strides[0],
            col_stride: strides[1],
        })
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
