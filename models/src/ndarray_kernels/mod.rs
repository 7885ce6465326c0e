//! Native ndarray kernels, with their own backward on `Autodiff<NdArray<f32>>`, for the
//! operations where Burn 0.19.1's ndarray backend is slow to train: convolution (im2col), the
//! LSTM recurrence, softmax cross-entropy, training-mode batch normalization, the 2-D matrix
//! product, GELU and dropout masks.
//!
//! Each entry point takes generic tensors, recognises `NdArray<f32>` and
//! `Autodiff<NdArray<f32>>` at run time from their type, and hands every other backend back to
//! the caller, which then uses Burn tensor operations. Model code never names a backend.

#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod cross_entropy;
pub(crate) mod dropout;
pub(crate) mod gelu;
#[cfg(target_arch = "x86_64")]
mod implicit_conv;
pub(crate) mod lstm;
pub(crate) mod matmul;

use burn::backend::ndarray::NdArrayTensor;
use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorMetadata, TensorPrimitive};
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;

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

/// The float primitive of `tensor`, whose backend `B` is `K` (the caller compared the types with
/// [`same_type`]).
pub(crate) fn primitive_of<K: Backend, B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
) -> FloatTensor<K> {
    checked_cast::<_, Tensor<K, D>>(tensor)
        .into_primitive()
        .tensor()
}

/// The tensor of `B` holding `primitive`, a float primitive of `K`, where `B` is `K` (the caller
/// compared the types with [`same_type`]).
pub(crate) fn tensor_of<K: Backend, B: Backend, const D: usize>(
    primitive: FloatTensor<K>,
) -> Tensor<B, D> {
    checked_cast(Tensor::<K, D>::from_primitive(TensorPrimitive::Float(
        primitive,
    )))
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

/// Elements per parallel task of the element-wise kernels (dropout masks, GELU).
pub(crate) const ELEMENTS_PER_TASK: usize = 1 << 14;

/// Multiply-adds below which a product is not split across threads.
const SPLIT_WORK: usize = 1 << 22;

/// A pointer that may cross threads: the tasks of [`gemm`] write disjoint blocks through it.
#[derive(Clone, Copy)]
struct SharedOutput(*mut f32);

// SAFETY: every task of `gemm` writes only its own block of rows or columns of `c`.
unsafe impl Send for SharedOutput {}
unsafe impl Sync for SharedOutput {}

impl SharedOutput {
    /// The element `offset` past the start (a method, so that closures capture the whole
    /// wrapper, which is Sync, rather than its raw-pointer field).
    ///
    /// # Safety
    /// `offset` must lie within the output.
    unsafe fn at(&self, offset: usize) -> *mut f32 {
        // SAFETY: the caller keeps `offset` within the output.
        unsafe { self.0.add(offset) }
    }
}

/// Which register kernels a product may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernels {
    /// matrixmultiply's, which copy both operands into packed panels.
    MatrixMultiply,
    /// The AVX-512 kernels of `avx512` (x86-64), which read the larger operand in place, where
    /// the CPU has AVX-512F and the layout and shape suit them; matrixmultiply's otherwise.
    /// Faster on the convolution's skinny per-image products (measured on ResNet-20: 1.3× the
    /// whole step), slower on the LSTM's and no faster on the Transformer's, so only the
    /// convolution asks for them.
    InPlace,
}

/// `c ← a·b + beta·c`, `a: m × k`, `b: k × n`, `c: m × n` row-major, with matrixmultiply.
///
/// Called outside a rayon task, a large product is split into one block of rows (or of columns,
/// when `n > m`) per rayon thread; inside one (the convolution's per-image products) it runs on
/// the calling thread. Either way matrixmultiply itself should not add threads on top
/// (`MATMUL_NUM_THREADS=1`, which the programs set by default).
pub(crate) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Matrix<'_>,
    b: Matrix<'_>,
    beta: f32,
    c: &mut [f32],
) {
    gemm_with(Kernels::MatrixMultiply, m, k, n, a, b, beta, c);
}

/// [`gemm`] with the given [`Kernels`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_with(
    kernels: Kernels,
    m: usize,
    k: usize,
    n: usize,
    a: Matrix<'_>,
    b: Matrix<'_>,
    beta: f32,
    c: &mut [f32],
) {
    let threads = match rayon::current_thread_index() {
        Some(_) => 1,
        None => rayon::current_num_threads(),
    };
    gemm_split(kernels, threads, SPLIT_WORK, m, k, n, a, b, beta, c);
}

/// [`gemm`] in at most `threads` blocks of at least `work_per_task` multiply-adds each.
#[allow(clippy::too_many_arguments)]
fn gemm_split(
    kernels: Kernels,
    threads: usize,
    work_per_task: usize,
    m: usize,
    k: usize,
    n: usize,
    a: Matrix<'_>,
    b: Matrix<'_>,
    beta: f32,
    c: &mut [f32],
) {
    assert!(c.len() >= m * n, "gemm output too small");
    if m == 0 || n == 0 {
        return;
    }
    let a_end = (m.saturating_sub(1) as isize * a.row_stride
        + k.saturating_sub(1) as isize * a.col_stride) as usize;
    let b_end = (k.saturating_sub(1) as isize * b.row_stride
        + n.saturating_sub(1) as isize * b.col_stride) as usize;
    assert!(m * k == 0 || a_end < a.data.len(), "gemm: a out of bounds");
    assert!(k * n == 0 || b_end < b.data.len(), "gemm: b out of bounds");
    let by_rows = m >= n;
    let split = if by_rows { m } else { n };
    let tasks = threads.min(split).min((m * k * n / work_per_task).max(1));
    let block = split.div_ceil(tasks);
    // Blocks of `block` rows may cover `split` in fewer tasks (5 rows in 4 tasks: 3 of 2 rows).
    let tasks = split.div_ceil(block);
    let output = SharedOutput(c.as_mut_ptr());
    let run = |task: usize| {
        let (first, count) = (task * block, block.min(split - task * block));
        // Offsets of the block's first row (or column) in a (or b) and c.
        let (a_offset, b_offset, c_offset, rows, cols) = if by_rows {
            (first as isize * a.row_stride, 0, first * n, count, n)
        } else {
            (0, first as isize * b.col_stride, first, m, count)
        };
        let a_block = Matrix {
            data: &a.data[a_offset as usize..],
            ..a
        };
        // SAFETY: the bounds of a, b and c were checked above for the whole product; this task
        // reads within them and writes only its own rows (or columns) of c.
        unsafe {
            block_product(
                kernels,
                rows,
                k,
                cols,
                a_block,
                b.data.as_ptr().offset(b_offset),
                b,
                beta,
                output.at(c_offset),
                n,
            )
        };
    };
    if tasks <= 1 {
        run(0);
    } else {
        (0..tasks).into_par_iter().for_each(run);
    }
}

/// Shortest common dimension for which [`avx512::product_with_transpose`]'s dot products, one
/// horizontal sum per element of `c`, are used: matrixmultiply was 1.9× as fast at 64 (576 × 64
/// × 64) and 1.3× at 128 (560 × 128 × 10 000), ours 1.6× at 256 and 5× at 1024 (ResNet-20's
/// weight-gradient shapes 288 × 256 × 32 and 144 × 1024 × 16; measured on 2 cores).
const DOT_PRODUCT_MIN_K: usize = 256;

/// Most rows of `c` for which [`avx512::product_with_rows`] is used. Its advantage is that `b`
/// is not copied: with few rows of `a` matrixmultiply's packing of `b` is a large share of the
/// product (16 × 144 × 1024, ResNet-20's first stage: 157 against 54 GFLOP/s), while on large
/// products matrixmultiply's packed 16 × 16 kernel is as fast or faster (1024 × 256 × 1024: 161
/// against 202).
const ROWS_KERNEL_MAX_M: usize = 512;

/// `c ← a·b + beta·c` for one block of [`gemm_split`]: with [`Kernels::InPlace`], the AVX-512
/// kernels where the CPU has them and the layout suits one (`b` row-major; or `a` row-major and
/// `b` a transposed row-major matrix with long rows), matrixmultiply otherwise.
///
/// # Safety
/// `a` holds `m × k`, `b` points at `k × n` elements with `layout`'s strides, and `c` at `m`
/// writable rows of `n` elements `ldc` apart.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
unsafe fn block_product(
    kernels: Kernels,
    m: usize,
    k: usize,
    n: usize,
    a: Matrix<'_>,
    b: *const f32,
    layout: Matrix<'_>,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if kernels == Kernels::InPlace && avx512::available() {
        if layout.col_stride == 1 && m <= ROWS_KERNEL_MAX_M && k > 0 {
            // SAFETY: AVX-512F is there; the shapes are the caller's.
            unsafe {
                let b = avx512::Rows::Strided(b, layout.row_stride as usize);
                avx512::product_with_rows(&avx512::PackedRows::new(a, m, k), n, b, beta, c, ldc)
            };
            return;
        }
        if layout.row_stride == 1 && a.col_stride == 1 && k >= DOT_PRODUCT_MIN_K {
            // SAFETY: as above; bᵀ is row-major with rows `col_stride` apart.
            unsafe {
                let a = avx512::Rows::Strided(a.data.as_ptr(), a.row_stride as usize);
                let b = avx512::Rows::Strided(b, layout.col_stride as usize);
                avx512::product_with_transpose(m, k, n, a, b, beta, c, ldc)
            };
            return;
        }
    }
    // SAFETY: the caller's bounds.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.row_stride,
            a.col_stride,
            b,
            layout.row_stride,
            layout.col_stride,
            beta,
            c,
            ldc as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a·b` by the definition, in f64 (also the reference of the AVX-512 kernels' tests).
    pub(super) fn naive(m: usize, k: usize, n: usize, a: Matrix<'_>, b: Matrix<'_>) -> Vec<f64> {
        let at = |mat: Matrix<'_>, i: usize, j: usize| {
            mat.data[(i as isize * mat.row_stride + j as isize * mat.col_stride) as usize] as f64
        };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| at(a, i, p) * at(b, p, j)).sum();
            }
        }
        c
    }

    #[test]
    fn split_products_match_the_definition() {
        // Large enough to be split on two threads, by rows (m ≥ n) and by columns (n > m), with
        // plain and transposed operands and beta = 0 and 1; and a product too small to split.
        for (m, k, n) in [(301, 200, 150), (150, 200, 333), (3, 4, 5)] {
            let a_data: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 19) as f32 - 9.0) / 8.0)
                .collect();
            let b_data: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 23) as f32 - 11.0) / 8.0)
                .collect();
            for (a, b) in [
                (Matrix::row_major(&a_data, k), Matrix::row_major(&b_data, n)),
                (
                    Matrix::transposed(&a_data, m),
                    Matrix::transposed(&b_data, k),
                ),
            ] {
                let expected = naive(m, k, n, a, b);
                for (beta, kernels) in [0.0, 1.0]
                    .into_iter()
                    .flat_map(|beta| [Kernels::MatrixMultiply, Kernels::InPlace].map(|k| (beta, k)))
                {
                    let mut c = vec![1.0_f32; m * n];
                    gemm_split(kernels, 2, SPLIT_WORK, m, k, n, a, b, beta, &mut c);
                    for (i, (&got, &want)) in c.iter().zip(&expected).enumerate() {
                        let want = want + beta as f64;
                        assert!(
                            (got as f64 - want).abs() < 1e-3,
                            "{m}x{k}x{n} [{i}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn blocks_that_do_not_divide_the_product_evenly_cover_it_once() {
        // 5 rows (or columns) for 4 threads: blocks of 2 rows, so 3 tasks; 7 for 3: 3, 3, 1.
        for (threads, m, k, n) in [(4, 5, 6, 3), (4, 3, 6, 5), (3, 7, 2, 4), (8, 9, 1, 9)] {
            let a_data: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
            let b_data: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 - 2.0).collect();
            let (a, b) = (Matrix::row_major(&a_data, k), Matrix::row_major(&b_data, n));
            for kernels in [Kernels::MatrixMultiply, Kernels::InPlace] {
                let mut c = vec![0.5_f32; m * n];
                gemm_split(kernels, threads, 1, m, k, n, a, b, 1.0, &mut c);
                for (i, (&got, &want)) in c.iter().zip(&naive(m, k, n, a, b)).enumerate() {
                    assert_eq!(got as f64, want + 0.5, "{m}x{k}x{n} in {threads} [{i}]");
                }
            }
        }
    }
}
