//! The matrix product every kernel uses, `c ← a·b + beta·c`, split into blocks across rayon's
//! threads; each block runs on the register kernel that the [dispatch](crate::ops::dispatch)
//! chooses for its shape (the AVX-512 kernels of [`avx512`](super::avx512), matrixmultiply's or
//! the `gemm` crate's).

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::avx512;
use super::matrix::Matrix;
use crate::ops::dispatch::{self, GemmBlock, GemmKernel, Product};

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
    gemm_for(Product::General, m, k, n, a, b, beta, c);
}

/// [`gemm`] for the given kind of [`Product`], whose blocks run on the kernels the dispatch
/// chooses for it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_for(
    product: Product,
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
    gemm_split(product, threads, SPLIT_WORK, m, k, n, a, b, beta, c);
}

/// [`gemm`] in at most `threads` blocks of at least `work_per_task` multiply-adds each.
#[allow(clippy::too_many_arguments)]
fn gemm_split(
    product: Product,
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
                product,
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

/// `c ← a·b + beta·c` for one block of [`gemm_split`], on the kernel
/// [`dispatch::gemm_kernel`] chooses for `product` and the block's shape and layout (timing the
/// candidates, the first time, into scratch space).
///
/// # Safety
/// `a` holds `m × k`, `b` points at `k × n` elements with `layout`'s strides, and `c` at `m`
/// writable rows of `n` elements `ldc` apart.
#[allow(clippy::too_many_arguments)]
unsafe fn block_product(
    product: Product,
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
    let block = GemmBlock {
        product,
        m,
        k,
        n,
        a_row_major: a.col_stride == 1,
        b_row_major: layout.col_stride == 1,
        b_transposed: layout.row_stride == 1,
    };
    // The candidates' results go to scratch space; `beta·c` costs the same whatever c holds.
    let mut scratch = Vec::new();
    let kernel = dispatch::gemm_kernel(block, |kernel| {
        scratch.resize(m * n, 0.0_f32);
        // SAFETY: the caller's `a` and `b`; `scratch` holds `m` rows of `n`.
        unsafe { block_on(kernel, m, k, n, a, b, layout, beta, scratch.as_mut_ptr(), n) }
    });
    // SAFETY: the caller's bounds.
    unsafe { block_on(kernel, m, k, n, a, b, layout, beta, c, ldc) }
}

/// `c ← a·b + beta·c` on `kernel`, one of the dispatch's candidates for this block.
///
/// # Safety
/// As [`block_product`]; `kernel` is one of [`dispatch::gemm_candidates`] for the block.
#[allow(clippy::too_many_arguments)]
unsafe fn block_on(
    kernel: GemmKernel,
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
    match kernel {
        #[cfg(target_arch = "x86_64")]
        GemmKernel::AvxRows => {
            // SAFETY: a candidate, so the CPU has AVX-512F and `b`'s rows are contiguous; the
            // shapes are the caller's.
            unsafe {
                let b = avx512::Rows::Strided(b, layout.row_stride as usize);
                avx512::product_with_rows(&avx512::PackedRows::new(a, m, k), n, b, beta, c, ldc)
            };
        }
        #[cfg(target_arch = "x86_64")]
        GemmKernel::AvxDotProducts => {
            // SAFETY: as above; `a` is row-major, and bᵀ is row-major with rows `col_stride`
            // apart.
            unsafe {
                let a = avx512::Rows::Strided(a.data.as_ptr(), a.row_stride as usize);
                let b = avx512::Rows::Strided(b, layout.col_stride as usize);
                avx512::product_with_transpose(m, k, n, a, b, beta, c, ldc)
            };
        }
        GemmKernel::Gemm => {
            // SAFETY: the caller's bounds; the `gemm` crate computes dst ← α·dst + β·lhs·rhs,
            // reading dst only when asked to.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c,
                    1,
                    ldc as isize,
                    beta != 0.0,
                    a.data.as_ptr(),
                    a.col_stride,
                    a.row_stride,
                    b,
                    layout.col_stride,
                    layout.row_stride,
                    beta,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
        _ => {
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
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `a·b` by the definition, in f64 (also the reference of the AVX-512 kernels' tests).
    pub(in crate::ops::ndarray) fn naive(
        m: usize,
        k: usize,
        n: usize,
        a: Matrix<'_>,
        b: Matrix<'_>,
    ) -> Vec<f64> {
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
                for (beta, product) in [0.0, 1.0]
                    .into_iter()
                    .flat_map(|beta| [Product::General, Product::Convolution].map(|k| (beta, k)))
                {
                    let mut c = vec![1.0_f32; m * n];
                    gemm_split(product, 2, SPLIT_WORK, m, k, n, a, b, beta, &mut c);
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

    /// Every kernel the dispatch can choose, on every layout, against the definition: the
    /// measured choice may pick any of them for any shape, the fixed rules' thresholds aside.
    #[test]
    fn every_candidate_kernel_matches_the_definition() {
        for (m, k, n) in [
            (1, 1, 1),
            (3, 4, 5),
            (17, 3, 33),
            (5, 256, 9),
            (64, 300, 70),
            (16, 144, 1024),
        ] {
            let a_data: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 19) as f32 - 9.0) / 8.0)
                .collect();
            let b_data: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 23) as f32 - 11.0) / 8.0)
                .collect();
            let a_layouts = [
                Matrix::row_major(&a_data, k),
                Matrix::transposed(&a_data, m),
            ];
            let b_layouts = [
                Matrix::row_major(&b_data, n),
                Matrix::transposed(&b_data, k),
            ];
            for (a, b) in a_layouts
                .into_iter()
                .flat_map(|a| b_layouts.map(|b| (a, b)))
            {
                let expected = naive(m, k, n, a, b);
                let block = GemmBlock {
                    product: Product::General,
                    m,
                    k,
                    n,
                    a_row_major: a.col_stride == 1,
                    b_row_major: b.col_stride == 1,
                    b_transposed: b.row_stride == 1,
                };
                for kernel in dispatch::gemm_candidates(block) {
                    for beta in [0.0, 1.0] {
                        let mut c = vec![0.5_f32; m * n];
                        // SAFETY: a and b hold the whole product, c its m × n result.
                        unsafe {
                            block_on(
                                kernel,
                                m,
                                k,
                                n,
                                a,
                                b.data.as_ptr(),
                                b,
                                beta,
                                c.as_mut_ptr(),
                                n,
                            )
                        };
                        for (i, (&got, &want)) in c.iter().zip(&expected).enumerate() {
                            let want = want + 0.5 * beta as f64;
                            assert!(
                                (got as f64 - want).abs() < 1e-3,
                                "{kernel:?} {m}x{k}x{n} {:?} beta {beta} [{i}]: {got} vs {want}",
                                (a.row_stride, b.row_stride)
                            );
                        }
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
            for product in [Product::General, Product::Convolution] {
                let mut c = vec![0.5_f32; m * n];
                gemm_split(product, threads, 1, m, k, n, a, b, 1.0, &mut c);
                for (i, (&got, &want)) in c.iter().zip(&naive(m, k, n, a, b)).enumerate() {
                    assert_eq!(got as f64, want + 0.5, "{m}x{k}x{n} in {threads} [{i}]");
                }
            }
        }
    }
}
