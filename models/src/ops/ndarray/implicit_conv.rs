//! Stride-1 convolutions as implicit matrix products on the AVX-512 kernels: no patch matrix.
//!
//! Pad each image once into planes `w + 2·p₁` wide (the *wide grid*). On that grid the patch
//! row `(c, i, j)` of a stride-1 convolution is the padded plane of channel `c` shifted by
//! `i·wide + j`: one contiguous view, which [`avx512`]'s kernels read in place through a table
//! of row offsets ([`Rows::Table`]). The products then run over `h'·wide` columns instead of
//! `h'·w'`; the `wide − w'` extra columns of every output row are computed and dropped (6 % more
//! work at 32 × 32 pixels, 12 % at 16 × 16), in exchange for not writing and reading back
//! the `c·kh·kw × h'·w'` patch matrix (im2col) and its gradient (col2im).
//!
//! - forward: `y_n = W · patches(pad(x_n))`;
//! - input gradient: the same product for the transposed convolution, `∂x_n = W̃ ·
//!   patches(pad'(∂y_n))` with `W̃[c, (o, i, j)] = W[o, c, kh−1−i, kw−1−j]` and padding `k − 1 −
//!   p` (no col2im: each input pixel's gradient is summed in one place);
//! - weight gradient: `∂W = Σ_n wide(∂y_n) · patches(pad(x_n))ᵀ`, dot products along the wide
//!   rows, `wide(∂y_n)` holding zeros in the dropped columns.

use rayon::prelude::*;

use super::avx512::{self, Rows};
use super::conv_geometry::{Geometry, batch_sum};
use super::fill::zeros;
use super::matrix::Matrix;

/// A padded image on the wide grid and the offsets of its patch rows.
struct WideGrid {
    channels: usize,
    height: usize,
    width: usize,
    padding: [usize; 2],
    /// Padded row length, `w + 2·p₁`.
    wide: usize,
    /// Padded plane length, `(h + 2·p₀)·wide`.
    plane: usize,
    /// Output rows, `h + 2·p₀ − kh + 1`.
    out_height: usize,
    /// Valid output columns per row, `wide − kw + 1`.
    out_width: usize,
    /// Patch row `(c·kh + i)·kw + j` starts at `c·plane + i·wide + j`.
    offsets: Vec<usize>,
}

impl WideGrid {
    fn new(
        channels: usize,
        [height, width]: [usize; 2],
        kernel: [usize; 2],
        padding: [usize; 2],
    ) -> Self {
        let wide = width + 2 * padding[1];
        let padded_height = height + 2 * padding[0];
        let plane = padded_height * wide;
        let mut offsets = Vec::with_capacity(channels * kernel[0] * kernel[1]);
        for c in 0..channels {
            for i in 0..kernel[0] {
                for j in 0..kernel[1] {
                    offsets.push(c * plane + i * wide + j);
                }
            }
        }
        Self {
            channels,
            height,
            width,
            padding,
            wide,
            plane,
            out_height: padded_height + 1 - kernel[0],
            out_width: wide + 1 - kernel[1],
            offsets,
        }
    }

    /// Rows of the patch matrix, `c·kh·kw`.
    fn depth(&self) -> usize {
        self.offsets.len()
    }

    /// Columns of the wide products, `h'·wide`.
    fn columns(&self) -> usize {
        self.out_height * self.wide
    }

    /// Length of a padded image: the planes, then one row of room for the last patch row's
    /// overhang (its view runs `kw − 1` past the last plane, into columns that are dropped).
    fn padded_len(&self) -> usize {
        self.channels * self.plane + self.wide
    }

    /// A zeroed buffer for [`Self::pad`]: only the interior is written there, so the border
    /// stays zero across images.
    fn padded_buffer(&self) -> Vec<f32> {
        vec![0.0; self.padded_len()]
    }

    /// Copies a `c × h × w` image into the interior of a [`Self::padded_buffer`].
    fn pad(&self, image: &[f32], padded: &mut [f32]) {
        let [top, left] = self.padding;
        for (source, plane) in image
            .chunks_exact(self.height * self.width)
            .zip(padded.chunks_exact_mut(self.plane))
        {
            for (row, target) in source
                .chunks_exact(self.width)
                .zip(plane[top * self.wide..].chunks_exact_mut(self.wide))
            {
                target[left..left + self.width].copy_from_slice(row);
            }
        }
    }

    /// The patch rows of a padded image, for the kernels.
    fn patch_rows<'a>(&'a self, padded: &'a [f32]) -> Rows<'a> {
        assert!(padded.len() >= self.padded_len(), "padded image too short");
        Rows::Table(padded.as_ptr(), &self.offsets)
    }

    /// Keeps the valid `out_width` columns of each wide row: `rows × h'·wide` → `rows × h'·w'`.
    fn narrow(&self, wide: &[f32], out: &mut [f32]) {
        for (source, target) in wide
            .chunks_exact(self.wide)
            .zip(out.chunks_exact_mut(self.out_width))
        {
            target.copy_from_slice(&source[..self.out_width]);
        }
    }

    /// The inverse of [`Self::narrow`] into a zeroed buffer whose dropped columns stay zero.
    fn widen(&self, narrow: &[f32], wide: &mut [f32]) {
        for (source, target) in narrow
            .chunks_exact(self.out_width)
            .zip(wide.chunks_exact_mut(self.wide))
        {
            target[..self.out_width].copy_from_slice(source);
        }
    }
}

/// The grid of the convolution's input.
fn input_grid(g: &Geometry) -> WideGrid {
    WideGrid::new(g.channels, [g.height, g.width], g.kernel, g.padding)
}

/// The grid of the transposed convolution that computes the input gradient: the output
/// gradient padded by `k − 1 − p`.
fn gradient_grid(g: &Geometry) -> WideGrid {
    let padding = [0, 1].map(|axis| g.kernel[axis] - 1 - g.padding[axis]);
    WideGrid::new(
        g.out_channels,
        [g.out_height, g.out_width],
        g.kernel,
        padding,
    )
}

/// Length of the wide rows of `g`'s products, which the dispatch compares with the dot-product
/// kernel's minimum (`Geometry::shape` computes it without a grid; this checks it).
#[cfg(test)]
pub(super) fn wide_columns(g: &Geometry) -> usize {
    input_grid(g).columns()
}

/// `y_n = W · patches(pad(x_n))` for every image, in parallel. The dispatch chose it.
pub(super) fn forward(input: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    let grid = input_grid(g);
    let image_len = g.channels * g.height * g.width;
    wide_products(&grid, input, image_len, weight, g.out_channels, g.batch)
}

/// `∂x_n = W̃ · patches(pad'(∂y_n))` for every image, in parallel.
/// The dispatch chose it (padding below the kernel size).
pub(super) fn input_gradient(weight: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    let grid = gradient_grid(g);
    let [kh, kw] = g.kernel;
    // W̃[c, (o, i, j)] = W[o, c, kh−1−i, kw−1−j].
    let depth = grid.depth();
    let mut flipped = vec![0.0_f32; g.channels * depth];
    for (o, filters) in weight.chunks_exact(g.channels * kh * kw).enumerate() {
        for (c, filter) in filters.chunks_exact(kh * kw).enumerate() {
            for (position, &value) in filter.iter().enumerate() {
                let (i, j) = (kh - 1 - position / kw, kw - 1 - position % kw);
                flipped[c * depth + (o * kh + i) * kw + j] = value;
            }
        }
    }
    let image_len = g.out_channels * g.l();
    wide_products(&grid, grad, image_len, &flipped, g.channels, g.batch)
}

/// `out_n = a · patches(pad(images_n))` on `grid`, narrowed, for `batch` images of
/// `image_len` values; `a` has `rows` rows of `grid.depth()`.
fn wide_products(
    grid: &WideGrid,
    images: &[f32],
    image_len: usize,
    a: &[f32],
    rows: usize,
    batch: usize,
) -> Vec<f32> {
    let (depth, columns) = (grid.depth(), grid.columns());
    let out_len = rows * grid.out_height * grid.out_width;
    let a = avx512::PackedRows::new(Matrix::row_major(a, depth), rows, depth);
    let mut output = zeros(batch * out_len);
    output.par_chunks_mut(out_len).enumerate().for_each_init(
        || (grid.padded_buffer(), vec![0.0_f32; rows * columns]),
        |(padded, wide), (n, out)| {
            grid.pad(&images[n * image_len..(n + 1) * image_len], padded);
            // SAFETY: the dispatch chose this kernel only where the CPU has AVX-512F. The last patch row starts at `(c − 1)·plane +
            // (kh − 1)·wide + kw − 1`, and its `h'·wide` columns end at `c·plane + kw − 1 ≤
            // padded_len()` (`h' + kh − 1` is the padded height); `wide` holds `rows × columns`.
            unsafe {
                avx512::product_with_rows(
                    &a,
                    columns,
                    grid.patch_rows(padded),
                    0.0,
                    wide.as_mut_ptr(),
                    columns,
                )
            };
            grid.narrow(wide, out);
        },
    );
    output
}

/// `∂W = Σ_n wide(∂y_n) · patches(pad(x_n))ᵀ` (`o × c·kh·kw`), summed per thread then across
/// threads. For the shapes the dispatch gives it: stride 1, on a CPU with AVX-512F.
pub(super) fn weight_gradient(input: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    let grid = input_grid(g);
    let (depth, columns, o) = (grid.depth(), grid.columns(), g.out_channels);
    let (image_len, grad_len) = (g.channels * g.height * g.width, o * g.l());
    batch_sum(
        g.batch,
        o * depth,
        || (grid.padded_buffer(), vec![0.0_f32; o * columns]),
        |n, sum, (padded, wide_grad)| {
            grid.pad(&input[n * image_len..(n + 1) * image_len], padded);
            grid.widen(&grad[n * grad_len..(n + 1) * grad_len], wide_grad);
            // SAFETY: as in `wide_products`; `wide_grad` holds `o` rows of `columns`, and `sum`
            // `o × depth` values.
            unsafe {
                avx512::product_with_transpose(
                    o,
                    columns,
                    depth,
                    Rows::Strided(wide_grad.as_ptr(), columns),
                    grid.patch_rows(padded),
                    1.0,
                    sum.as_mut_ptr(),
                    depth,
                )
            };
        },
    )
}
