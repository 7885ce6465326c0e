//! f32 matrix products with AVX-512 register kernels that read the larger operand in place,
//! for the products where matrixmultiply (16 × 16 AVX-512 kernel, but both operands copied into
//! packed panels on every call) spends a large share of its time copying:
//!
//! - [`product_with_rows`]: `c ← a·b + beta·c` with `b` row-major and `a` the small operand (a
//!   convolution's weight). `a` is packed once ([`PackedRows`]) for any number of products; `b`
//!   is read in place, 32 columns at a time, so the convolution's patches are not copied again.
//!   Register tile: 8 rows × 32 columns.
//! - [`product_with_transpose`]: `c ← a·bᵀ + beta·c` with `a` and `b` row-major, as dot
//!   products along their common rows: the weight gradient `im2col(x)·∂yᵀ`, whose long rows are
//!   read in place. Register tile: 4 × 4 dot products of 16 lanes.
//!
//! The operands read in place are given as [`Rows`]: evenly spaced rows, or a table of row
//! offsets, which lets a stride-1 convolution read its patches as shifted views of one padded
//! image instead of copying them out (`super::implicit_conv`).
//!
//! x86-64 only. [`super::gemm`] runs them where the [dispatch](crate::ops::dispatch) chooses
//! them (a CPU with AVX-512F, a convolution's product of a suitable shape).

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_fmadd_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
    _mm512_reduce_add_ps, _mm512_set1_ps, _mm512_setzero_ps,
};

use super::matrix::Matrix;

/// Rows of `c` in the register tile of [`product_with_rows`].
const TILE_ROWS: usize = 8;
/// Columns of `c` in that tile: two 16-lane vectors.
const TILE_COLUMNS: usize = 32;
/// Rows of `a` packed at a time, so that the packed block stays in L2.
const BLOCK_ROWS: usize = 128;
/// Columns of `a` (rows of `b`) per pass, so that the 32 columns of `b` a tile reads
/// (`BLOCK_DEPTH × 128` bytes) stay in L1.
const BLOCK_DEPTH: usize = 256;
/// Rows and columns of `c` in the tile of [`product_with_transpose`].
const DOT_TILE: usize = 4;
/// Bytes of `b` per block of [`product_with_transpose`] (a quarter of a 1 MiB L2).
const DOT_BLOCK_BYTES: usize = 256 * 1024;
/// f32 lanes of one AVX-512 vector.
const LANES: usize = 16;

/// The lanes `0..count.min(16)` of a vector, as a mask.
fn lanes(count: usize) -> __mmask16 {
    if count >= LANES {
        u16::MAX
    } else {
        (1u16 << count) - 1
    }
}

/// Where the rows of an operand that is read in place start.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rows<'a> {
    /// Row `p` at `base + p·stride`.
    Strided(*const f32, usize),
    /// Row `p` at `base + offsets[p]`.
    Table(*const f32, &'a [usize]),
}

impl Rows<'_> {
    /// The start of row `p` (computed with wrapping arithmetic; reading it is the caller's
    /// business).
    #[inline(always)]
    fn row(self, p: usize) -> *const f32 {
        match self {
            Rows::Strided(base, stride) => base.wrapping_add(p * stride),
            Rows::Table(base, offsets) => base.wrapping_add(offsets[p]),
        }
    }
}

/// The small operand `a` (`m × k`) of [`product_with_rows`], packed once so that it can serve
/// many products (a convolution's weight, for every image of the batch): for each block of
/// [`BLOCK_ROWS`] rows and [`BLOCK_DEPTH`] columns, panels of [`TILE_ROWS`] rows stored column
/// by column (`depth × TILE_ROWS`), rows past the end as zeros.
pub(crate) struct PackedRows {
    m: usize,
    k: usize,
    data: Vec<f32>,
}

impl PackedRows {
    /// Packs `a`, `m × k` with any strides.
    pub(crate) fn new(a: Matrix<'_>, m: usize, k: usize) -> Self {
        let mut data = Vec::with_capacity(m.next_multiple_of(TILE_ROWS) * k);
        for first in (0..m).step_by(BLOCK_ROWS) {
            let rows = BLOCK_ROWS.min(m - first);
            for depth_start in (0..k).step_by(BLOCK_DEPTH) {
                let depth_end = k.min(depth_start + BLOCK_DEPTH);
                for top in (first..first + rows).step_by(TILE_ROWS) {
                    for p in depth_start..depth_end {
                        for row in top..top + TILE_ROWS {
                            data.push(if row < m {
                                a.data[(row as isize * a.row_stride + p as isize * a.col_stride)
                                    as usize]
                            } else {
                                0.0
                            });
                        }
                    }
                }
            }
        }
        Self { m, k, data }
    }
}

/// `c ← a·b + beta·c`: `a: m × k` packed, `b: k × n` with row-major rows at `b`, `c: m × n`
/// row-major with rows `ldc` apart, `k ≥ 1`. With `beta = 0`, `c` is not read.
///
/// # Safety
/// The CPU has AVX-512F (the dispatch checked it); each of `b`'s `k` rows starts `n` readable elements
/// and `c` points at `m` writable rows of `n` elements `ldc` apart.
pub(crate) unsafe fn product_with_rows(
    a: &PackedRows,
    n: usize,
    b: Rows<'_>,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    let (m, k) = (a.m, a.k);
    let mut panels = a.data.as_slice();
    for first in (0..m).step_by(BLOCK_ROWS) {
        let rows = BLOCK_ROWS.min(m - first);
        for depth_start in (0..k).step_by(BLOCK_DEPTH) {
            let depth = BLOCK_DEPTH.min(k - depth_start);
            let (block, rest) = panels.split_at(rows.div_ceil(TILE_ROWS) * depth * TILE_ROWS);
            panels = rest;
            // The first block of the common dimension applies beta; the others add to it.
            let beta = if depth_start == 0 { beta } else { 1.0 };
            for column in (0..n).step_by(TILE_COLUMNS) {
                let width = TILE_COLUMNS.min(n - column);
                for (panel, values) in block.chunks_exact(depth * TILE_ROWS).enumerate() {
                    let top = first + panel * TILE_ROWS;
                    // SAFETY: the tile's rows and columns lie inside `c` and `b` (caller).
                    unsafe {
                        tile_with_rows(
                            values,
                            b,
                            depth_start,
                            column,
                            c.wrapping_add(top * ldc + column),
                            ldc,
                            TILE_ROWS.min(m - top),
                            width,
                            beta,
                        );
                    }
                }
            }
        }
    }
}

/// One register tile of [`product_with_rows`]: `rows ≤ 8` rows and `width ≤ 32` columns of
/// `c`, from a packed panel of `a` (`depth × 8`) and columns `column..column + width` of `b`'s
/// rows `first..first + depth`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_with_rows(
    panel: &[f32],
    b: Rows<'_>,
    first: usize,
    column: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    width: usize,
    beta: f32,
) {
    let masks = [lanes(width), lanes(width.saturating_sub(LANES))];
    let mut sums = [[_mm512_setzero_ps(); 2]; TILE_ROWS];
    // Plain counted loops over raw pointers: they unroll, and keep the sums in registers, at
    // the test profile's opt-level 1 too (where iterator adaptors stay out-of-line calls).
    let mut a_column = panel.as_ptr();
    let mut p = 0;
    while p < panel.len() / TILE_ROWS {
        let b_row = b.row(first + p).wrapping_add(column);
        // SAFETY: masked-off lanes are not read; the others lie in row p of b (caller); the
        // panel holds TILE_ROWS values per row of b.
        let (b_low, b_high) = unsafe {
            (
                _mm512_maskz_loadu_ps(masks[0], b_row),
                _mm512_maskz_loadu_ps(masks[1], b_row.wrapping_add(LANES)),
            )
        };
        let mut r = 0;
        while r < TILE_ROWS {
            // SAFETY: as above.
            let a_value = _mm512_set1_ps(unsafe { *a_column.add(r) });
            sums[r][0] = _mm512_fmadd_ps(a_value, b_low, sums[r][0]);
            sums[r][1] = _mm512_fmadd_ps(a_value, b_high, sums[r][1]);
            r += 1;
        }
        a_column = a_column.wrapping_add(TILE_ROWS);
        p += 1;
    }
    let mut r = 0;
    while r < rows {
        let target = c.wrapping_add(r * ldc);
        // SAFETY: masked-off lanes are neither read nor written; the others lie in c (caller).
        unsafe {
            store(target, masks[0], sums[r][0], beta);
            store(target.wrapping_add(LANES), masks[1], sums[r][1], beta);
        }
        r += 1;
    }
}

/// `target ← value + beta·target` on the lanes of `mask` (`target` not read when `beta = 0`).
///
/// # Safety
/// The CPU has AVX-512F; the lanes of `mask` lie in writable memory at `target`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store(target: *mut f32, mask: __mmask16, value: __m512, beta: f32) {
    // SAFETY: the caller's contract.
    unsafe {
        let value = if beta == 0.0 {
            value
        } else {
            let old = _mm512_maskz_loadu_ps(mask, target);
            _mm512_fmadd_ps(_mm512_set1_ps(beta), old, value)
        };
        _mm512_mask_storeu_ps(target, mask, value);
    }
}

/// `c ← a·bᵀ + beta·c`: `a: m × k` and `b: n × k` with row-major rows, `c: m × n` row-major
/// with rows `ldc` apart. With `beta = 0`, `c` is not read.
///
/// # Safety
/// The CPU has AVX-512F (the dispatch checked it); each of the `m` rows of `a` and the `n` rows of `b`
/// starts `k` readable elements, and `c` points at `m` writable rows of `n` elements `ldc`
/// apart.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn product_with_transpose(
    m: usize,
    k: usize,
    n: usize,
    a: Rows<'_>,
    b: Rows<'_>,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    // Blocks of b's rows small enough to stay in L2 while every row of a passes over them.
    let block = (DOT_BLOCK_BYTES / (k.max(1) * 4))
        .max(1)
        .next_multiple_of(DOT_TILE);
    for block_left in (0..n).step_by(block) {
        let block_end = n.min(block_left + block);
        for top in (0..m).step_by(DOT_TILE) {
            // Rows past the end of a tile repeat the last row (read, never stored), so that
            // every load stays inside the operands.
            let mut a_rows = [std::ptr::null(); DOT_TILE];
            for (r, row) in a_rows.iter_mut().enumerate() {
                *row = a.row((top + r).min(m - 1));
            }
            for left in (block_left..block_end).step_by(DOT_TILE) {
                let mut b_rows = [std::ptr::null(); DOT_TILE];
                for (s, row) in b_rows.iter_mut().enumerate() {
                    *row = b.row((left + s).min(n - 1));
                }
                // SAFETY: the caller's contract, for this tile.
                unsafe {
                    dot_tile(
                        k,
                        a_rows,
                        b_rows,
                        c.wrapping_add(top * ldc + left),
                        ldc,
                        DOT_TILE.min(m - top),
                        DOT_TILE.min(n - left),
                        beta,
                    )
                };
            }
        }
    }
}

/// One tile of [`product_with_transpose`]: the dot products of `rows ≤ 4` rows of `a` with
/// `columns ≤ 4` rows of `b` (`k` elements each), into `c`.
///
/// # Safety
/// The CPU has AVX-512F; every pointer of `a_rows` and `b_rows` starts `k` readable elements,
/// and `c` holds `rows` rows of `columns` elements `ldc` apart.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_tile(
    k: usize,
    a_rows: [*const f32; DOT_TILE],
    b_rows: [*const f32; DOT_TILE],
    c: *mut f32,
    ldc: usize,
    rows: usize,
    columns: usize,
    beta: f32,
) {
    let mut sums = [[_mm512_setzero_ps(); DOT_TILE]; DOT_TILE];
    let mut p = 0;
    while p < k {
        let mask = lanes(k - p);
        let mut b_chunks = [_mm512_setzero_ps(); DOT_TILE];
        let mut s = 0;
        while s < DOT_TILE {
            // SAFETY: the mask keeps the load inside a row of k elements (caller).
            b_chunks[s] = unsafe { _mm512_maskz_loadu_ps(mask, b_rows[s].wrapping_add(p)) };
            s += 1;
        }
        let mut r = 0;
        while r < DOT_TILE {
            // SAFETY: as above.
            let a_chunk = unsafe { _mm512_maskz_loadu_ps(mask, a_rows[r].wrapping_add(p)) };
            let mut s = 0;
            while s < DOT_TILE {
                sums[r][s] = _mm512_fmadd_ps(a_chunk, b_chunks[s], sums[r][s]);
                s += 1;
            }
            r += 1;
        }
        p += LANES;
    }
    for (r, sums) in sums.iter().enumerate().take(rows) {
        for (s, &sum) in sums.iter().enumerate().take(columns) {
            let target = c.wrapping_add(r * ldc + s);
            let value = _mm512_reduce_add_ps(sum);
            // SAFETY: the element lies in c (caller).
            unsafe {
                *target = if beta == 0.0 {
                    value
                } else {
                    value + beta * *target
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm::tests::naive;
    use super::*;
    use crate::ops::dispatch;

    fn values(count: usize, salt: usize) -> Vec<f32> {
        (0..count)
            .map(|i| ((i * 7 + salt) % 23) as f32 / 8.0 - 1.4)
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        for (i, (&got, &want)) in got.iter().zip(want).enumerate() {
            assert!(
                (got as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{what} [{i}]: {got} vs {want}"
            );
        }
    }

    /// Runs `product(beta, c)` with beta 0 over a NaN-filled `c` (which must not be read) and
    /// beta 1 over 0.5, `c` having `m` rows `ldc ≥ n` apart, and checks the `m × n` result
    /// against `want` (+ 0.5 for beta 1) and that nothing past `n` in a row was written.
    fn check_product(
        (m, n, ldc): (usize, usize, usize),
        want: &[f64],
        what: &str,
        product: impl Fn(f32, *mut f32),
    ) {
        for (beta, start) in [(0.0_f32, f32::NAN), (1.0, 0.5)] {
            let mut c = vec![start; m * ldc];
            product(beta, c.as_mut_ptr());
            let got: Vec<f32> = c.chunks(ldc).flat_map(|row| row[..n].to_vec()).collect();
            let want: Vec<f64> = want.iter().map(|w| w + f64::from(beta) * 0.5).collect();
            assert_close(&got, &want, &format!("{what} beta {beta}"));
            for row in c.chunks(ldc) {
                for &pad in &row[n..] {
                    assert!(pad.is_nan() || pad == 0.5, "{what}: wrote past n");
                }
            }
        }
    }

    // Shapes with remainders on every axis: rows not a multiple of 8 (or 4), columns not of 32
    // (or 4), k not of 16, and more rows than one packed block.
    const SHAPES: [(usize, usize, usize); 8] = [
        (16, 144, 1024),
        (3, 5, 7),
        (13, 17, 33),
        (9, 31, 50),
        (130, 20, 40),
        (10, 600, 37),
        (9, 300, 230),
        (1, 1, 1),
    ];

    #[test]
    fn product_with_rows_matches_the_definition() {
        if !dispatch::has_avx512() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        for (m, k, n) in SHAPES {
            let (a_data, b_data) = (values(m * k, 1), values(k * (n + 3), 2));
            let ldb = n + 3; // b's rows are longer than the product's columns
            let ldc = n + 2;
            let b = Matrix::row_major(&b_data, ldb);
            // a both row-major and as a transposed view.
            for (a, label) in [
                (Matrix::row_major(&a_data, k), "row-major a"),
                (Matrix::transposed(&a_data, m), "strided a"),
            ] {
                let want = naive(m, k, n, a, b);
                let what = format!("{m}x{k}x{n} {label}");
                check_product((m, n, ldc), &want, &what, |beta, c| {
                    // SAFETY: AVX-512F checked; the operands have the stated shapes.
                    let b = Rows::Strided(b_data.as_ptr(), ldb);
                    unsafe { product_with_rows(&PackedRows::new(a, m, k), n, b, beta, c, ldc) }
                });
            }
        }
    }

    #[test]
    fn product_with_transpose_matches_the_definition() {
        if !dispatch::has_avx512() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        for (m, k, n) in SHAPES {
            let (lda, ldb, ldc) = (k + 1, k + 5, n + 2);
            let (a_data, b_data) = (values(m * lda, 3), values(n * ldb, 4));
            let want = naive(
                m,
                k,
                n,
                Matrix::row_major(&a_data, lda),
                Matrix::transposed(&b_data, ldb),
            );
            check_product((m, n, ldc), &want, &format!("{m}x{k}x{n}"), |beta, c| {
                let a = Rows::Strided(a_data.as_ptr(), lda);
                let b = Rows::Strided(b_data.as_ptr(), ldb);
                // SAFETY: AVX-512F checked; the operands have the stated shapes.
                unsafe { product_with_transpose(m, k, n, a, b, beta, c, ldc) }
            });
        }
    }
}
