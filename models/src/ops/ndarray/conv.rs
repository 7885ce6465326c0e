//! The im2col convolution on ndarray with native kernels and its own backward.
//!
//! Burn 0.19.1's ndarray backend computes a convolution's weight gradient as a convolution
//! whose kernel is the whole output-gradient map, ~60 times the forward's cost. Here, for
//! `Autodiff<NdArray<f32>>`, the convolution is a custom autodiff operation:
//!
//! - forward: `P = im2col(x)` (`[n, c·kh·kw, h'·w']`, a native gather), `y_n = W·P_n`;
//! - backward: `∂W = Σ_n ∂y_n·P_nᵀ` (P recomputed from x), `∂x = col2im(Wᵀ·∂y)` (a native
//!   scatter-add) — matrix products and two memory-bound passes.
//!
//! On x86-64 CPUs with AVX-512F, stride-1 convolutions skip `P` altogether: the products read
//! their patches as shifted views of the padded image ([`implicit_conv`]; ResNet-20's step 1.2×
//! in one A/B run).
//!
//! The [dispatch](crate::ops::dispatch) chooses, per pass, between the implicit kernels and
//! im2col; [`conv2d`] is the entry point.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use rayon::prelude::*;

use super::bridge::{Ad, Inner, f32_array, nd_tensor, primitive_of, slice, tensor_of};
use super::conv_geometry::{Geometry, batch_sum};
use super::fill::zeros;
use super::gemm::gemm_for;
#[cfg(target_arch = "x86_64")]
use super::implicit_conv;
use super::matrix::Matrix;
use crate::ops::dispatch::{self, ConvKernel, ConvPass, Native, Product};

/// The output positions `lo..hi` along one axis whose input position `o·stride + offset −
/// padding` lies inside `0..size`.
fn valid_range(
    out_size: usize,
    size: usize,
    stride: usize,
    offset: usize,
    padding: usize,
) -> (usize, usize) {
    let lo = if padding > offset {
        (padding - offset).div_ceil(stride)
    } else {
        0
    };
    let hi = (size + padding)
        .saturating_sub(offset)
        .div_ceil(stride)
        .min(out_size);
    (lo.min(hi), hi)
}

/// For a stride-1 convolution whose output rows are as wide as its input rows (`w' = w`, e.g.
/// 3×3 with padding 1), the output position `q` of patch row `(i, j)` reads input position
/// `q + (i − p₀)·w + (j − p₁)` of its channel: a patch row is one contiguous, shifted copy of
/// the channel, apart from the columns where the window overlaps the padding (which that shift
/// wraps into the neighbouring row). `Some(offset)` for such geometries.
fn contiguous_shift(g: &Geometry, i: usize, j: usize) -> Option<isize> {
    (g.stride == [1, 1] && g.out_width == g.width).then(|| {
        (i as isize - g.padding[0] as isize) * g.width as isize + j as isize - g.padding[1] as isize
    })
}

/// The output positions of one patch row that read inside the image, as the span
/// `first..end` of a stride-1 row-major layout (rows `h_lo..h_hi`, columns `w_lo..w_hi`);
/// `None` when there are none. Positions inside the span whose column is outside
/// `w_lo..w_hi` are the padding columns of the middle rows.
fn valid_span(
    out_width: usize,
    (h_lo, h_hi): (usize, usize),
    (w_lo, w_hi): (usize, usize),
) -> Option<std::ops::Range<usize>> {
    (h_lo < h_hi && w_lo < w_hi).then(|| h_lo * out_width + w_lo..(h_hi - 1) * out_width + w_hi)
}

/// Sets the columns `..w_lo` and `w_hi..` of rows `h_lo..h_hi` of a row-major patch row to 0.
fn zero_padding_columns(
    patch_row: &mut [f32],
    out_width: usize,
    (h_lo, h_hi): (usize, usize),
    (w_lo, w_hi): (usize, usize),
) {
    for row in patch_row[h_lo * out_width..h_hi * out_width].chunks_exact_mut(out_width) {
        row[..w_lo].fill(0.0);
        row[w_hi..].fill(0.0);
    }
}

/// The patches of one image: `[c, h, w]` → `[c·kh·kw, h'·w']`, row `(c·kh + i)·kw + j`,
/// column `ho·w' + wo` (zeros where the window overlaps the padding).
fn im2col_sample(image: &[f32], g: &Geometry, patches: &mut [f32]) {
    let (l, plane) = (g.l(), g.height * g.width);
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    for (row, patch_row) in patches.chunks_mut(l).enumerate() {
        let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
        let channel = &image[c * plane..(c + 1) * plane];
        let (h_lo, h_hi) = valid_range(g.out_height, g.height, sh, i, g.padding[0]);
        let (w_lo, w_hi) = valid_range(g.out_width, g.width, sw, j, g.padding[1]);
        if let Some(shift) = contiguous_shift(g, i, j) {
            // One copy of the valid span, then zeros around it and in its padding columns.
            let Some(span) = valid_span(g.out_width, (h_lo, h_hi), (w_lo, w_hi)) else {
                patch_row.fill(0.0);
                continue;
            };
            let source = (span.start as isize + shift) as usize;
            patch_row[..span.start].fill(0.0);
            patch_row[span.end..].fill(0.0);
            patch_row[span.clone()].copy_from_slice(&channel[source..source + span.len()]);
            zero_padding_columns(patch_row, g.out_width, (h_lo, h_hi), (w_lo, w_hi));
            continue;
        }
        patch_row[..h_lo * g.out_width].fill(0.0);
        patch_row[h_hi * g.out_width..].fill(0.0);
        for ho in h_lo..h_hi {
            let h = ho * sh + i - g.padding[0];
            let source = &channel[h * g.width..(h + 1) * g.width];
            let out = &mut patch_row[ho * g.out_width..(ho + 1) * g.out_width];
            out[..w_lo].fill(0.0);
            out[w_hi..].fill(0.0);
            let first = w_lo * sw + j - g.padding[1];
            if sw == 1 {
                out[w_lo..w_hi].copy_from_slice(&source[first..first + (w_hi - w_lo)]);
            } else {
                for (value, &x) in out[w_lo..w_hi]
                    .iter_mut()
                    .zip(source[first..].iter().step_by(sw))
                {
                    *value = x;
                }
            }
        }
    }
}

/// The adjoint of [`im2col_sample`]: adds patch gradients back onto one image's gradient. The
/// patch gradients are scratch: their padding entries may be zeroed.
fn col2im_sample(patches: &mut [f32], g: &Geometry, image: &mut [f32]) {
    let (l, plane) = (g.l(), g.height * g.width);
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    for (row, patch_row) in patches.chunks_mut(l).enumerate() {
        let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
        let channel = &mut image[c * plane..(c + 1) * plane];
        let (h_lo, h_hi) = valid_range(g.out_height, g.height, sh, i, g.padding[0]);
        let (w_lo, w_hi) = valid_range(g.out_width, g.width, sw, j, g.padding[1]);
        if let Some(shift) = contiguous_shift(g, i, j) {
            // Zero the padding columns, whose shifted targets wrap into the neighbouring row,
            // then add the valid span in one pass.
            let Some(span) = valid_span(g.out_width, (h_lo, h_hi), (w_lo, w_hi)) else {
                continue;
            };
            zero_padding_columns(patch_row, g.out_width, (h_lo, h_hi), (w_lo, w_hi));
            let target = (span.start as isize + shift) as usize;
            for (t, &x) in channel[target..target + span.len()]
                .iter_mut()
                .zip(&patch_row[span])
            {
                *t += x;
            }
            continue;
        }
        for ho in h_lo..h_hi {
            let h = ho * sh + i - g.padding[0];
            let target = &mut channel[h * g.width..(h + 1) * g.width];
            let source = &patch_row[ho * g.out_width + w_lo..ho * g.out_width + w_hi];
            let first = w_lo * sw + j - g.padding[1];
            if sw == 1 {
                for (t, &x) in target[first..first + source.len()].iter_mut().zip(source) {
                    *t += x;
                }
            } else {
                for (t, &x) in target[first..].iter_mut().step_by(sw).zip(source) {
                    *t += x;
                }
            }
        }
    }
}

/// `y = W · im2col(x)`, on the kernel the dispatch chooses: implicitly ([`implicit_conv`]) or
/// [`forward_im2col`].
fn forward_slices(input: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    on_chosen_kernel(ConvPass::Forward, g, |kernel| match kernel {
        #[cfg(target_arch = "x86_64")]
        ConvKernel::Implicit => implicit_conv::forward(input, weight, g),
        _ => forward_im2col(input, weight, g),
    })
}

/// `pass` computed by `compute` on the kernel the dispatch chooses for it (which, the first
/// time, times `compute` on each candidate).
fn on_chosen_kernel(
    pass: ConvPass,
    g: &Geometry,
    compute: impl Fn(ConvKernel) -> Vec<f32>,
) -> Vec<f32> {
    let kernel = dispatch::conv_kernel(pass, g.shape(), |kernel| drop(compute(kernel)));
    compute(kernel)
}

/// `y_n = W · im2col(x_n)` for every image, in parallel, one image's patches at a time.
fn forward_im2col(input: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, l, o) = (g.k(), g.l(), g.out_channels);
    let image_len = g.channels * g.height * g.width;
    let mut output = zeros(g.batch * o * l);
    output.par_chunks_mut(o * l).enumerate().for_each_init(
        || vec![0.0_f32; k * l],
        |patches, (n, out)| {
            im2col_sample(&input[n * image_len..(n + 1) * image_len], g, patches);
            gemm_for(
                Product::Convolution,
                o,
                k,
                l,
                Matrix::row_major(weight, k),
                Matrix::row_major(patches, l),
                0.0,
                out,
            );
        },
    );
    output
}

/// `∂W = Σ_n ∂y_n · im2col(x_n)ᵀ`, on the kernel the dispatch chooses: implicitly
/// ([`implicit_conv`]) or [`weight_gradient_im2col`].
fn weight_gradient(input: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    on_chosen_kernel(ConvPass::WeightGradient, g, |kernel| match kernel {
        #[cfg(target_arch = "x86_64")]
        ConvKernel::Implicit => implicit_conv::weight_gradient(input, grad, g),
        _ => weight_gradient_im2col(input, grad, g),
    })
}

/// `∂W = Σ_n ∂y_n · im2col(x_n)ᵀ`, summed per thread then across threads.
///
/// Each thread accumulates the transpose, `∂Wᵀ += im2col(x_n) · ∂y_nᵀ`: both operands' long
/// rows are read in place, as dot products, by the AVX-512 kernel where the CPU has one; and
/// even matrixmultiply runs this form 1.6–1.8× as fast as the untransposed one on ResNet-20's
/// shapes (measured on 2 cores).
fn weight_gradient_im2col(input: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, l, o) = (g.k(), g.l(), g.out_channels);
    let image_len = g.channels * g.height * g.width;
    let transposed = batch_sum(
        g.batch,
        k * o,
        || vec![0.0_f32; k * l],
        |n, sum, patches| {
            im2col_sample(&input[n * image_len..(n + 1) * image_len], g, patches);
            let grad_n = &grad[n * o * l..(n + 1) * o * l];
            gemm_for(
                Product::Convolution,
                k,
                l,
                o,
                Matrix::row_major(patches, l),
                Matrix::transposed(grad_n, l),
                1.0,
                sum,
            );
        },
    );
    // `∂Wᵀ` is `k × o`; `∂W` is `o × k`.
    let mut weight_grad = vec![0.0_f32; o * k];
    for (row, values) in transposed.chunks_exact(o).enumerate() {
        for (column, &value) in values.iter().enumerate() {
            weight_grad[column * k + row] = value;
        }
    }
    weight_grad
}

/// `∂x = col2im(Wᵀ · ∂y)`, on the kernel the dispatch chooses: implicitly, as a transposed
/// convolution ([`implicit_conv`]), or [`input_gradient_im2col`].
fn input_gradient(weight: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    on_chosen_kernel(ConvPass::InputGradient, g, |kernel| match kernel {
        #[cfg(target_arch = "x86_64")]
        ConvKernel::Implicit => implicit_conv::input_gradient(weight, grad, g),
        _ => input_gradient_im2col(weight, grad, g),
    })
}

/// `∂x_n = col2im(Wᵀ · ∂y_n)` for every image, in parallel.
fn input_gradient_im2col(weight: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, l, o) = (g.k(), g.l(), g.out_channels);
    let image_len = g.channels * g.height * g.width;
    let mut input_grad = zeros(g.batch * image_len);
    input_grad
        .par_chunks_mut(image_len)
        .enumerate()
        .for_each_init(
            || vec![0.0_f32; k * l],
            |patches, (n, image)| {
                let grad_n = Matrix::row_major(&grad[n * o * l..(n + 1) * o * l], l);
                gemm_for(
                    Product::Convolution,
                    k,
                    o,
                    l,
                    Matrix::transposed(weight, k),
                    grad_n,
                    0.0,
                    patches,
                );
                col2im_sample(patches, g, image);
            },
        );
    input_grad
}

/// Forward on plain ndarray tensors: `y = W·im2col(x)`, `[n, o, h', w']`.
fn forward(input: NdArrayTensor, weight: NdArrayTensor, g: &Geometry) -> NdArrayTensor {
    let (input, weight) = (f32_array(input), f32_array(weight));
    let output = forward_slices(slice(&input), slice(&weight), g);
    nd_tensor(
        output,
        &[g.batch, g.out_channels, g.out_height, g.out_width],
    )
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Inner, 2> for ConvBackward {
    type State = (NdArrayTensor, NdArrayTensor, Geometry);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_input, node_weight] = ops.parents;
        let grad = f32_array(grads.consume::<Inner>(&ops.node));
        let (input, weight, g) = ops.state;
        if let Some(node) = node_weight {
            let input = f32_array(input);
            let grad_weight = weight_gradient(slice(&input), slice(&grad), &g);
            let shape = [g.out_channels, g.channels, g.kernel[0], g.kernel[1]];
            grads.register::<Inner>(node.id, nd_tensor(grad_weight, &shape));
        }
        if let Some(node) = node_input {
            let weight = f32_array(weight);
            let grad_input = input_gradient(slice(&weight), slice(&grad), &g);
            grads.register::<Inner>(
                node.id,
                nd_tensor(grad_input, &[g.batch, g.channels, g.height, g.width]),
            );
        }
    }
}

fn autodiff_forward(
    input: FloatTensor<Ad>,
    weight: FloatTensor<Ad>,
    g: Geometry,
) -> FloatTensor<Ad> {
    match ConvBackward
        .prepare::<NoCheckpointing>([input.node.clone(), weight.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let output = forward(input.primitive.clone(), weight.primitive.clone(), &g);
            prep.finish((input.primitive, weight.primitive, g), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(input.primitive, weight.primitive, &g)),
    }
}

/// The convolution (no bias) of `input` by `weight` on the native kernels, `B` being the ndarray
/// backend `native`.
pub(crate) fn conv2d<B: Backend>(
    native: Native,
    input: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<B, 4> {
    let g = Geometry::new(input.dims(), weight.dims(), stride, padding);
    match native {
        Native::NdArrayAutodiff => {
            let output = autodiff_forward(
                primitive_of::<Ad, _, 4>(input),
                primitive_of::<Ad, _, 4>(weight),
                g,
            );
            tensor_of::<Ad, _, 4>(output)
        }
        Native::NdArray => {
            let output = forward(
                primitive_of::<Inner, _, 4>(input),
                primitive_of::<Inner, _, 4>(weight),
                &g,
            );
            tensor_of::<Inner, _, 4>(output)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_at_the_borders() {
        // 3-wide kernel, padding 1, stride 1 on 5 pixels: offset 0 skips output 0, offset 2 the last.
        assert_eq!(valid_range(5, 5, 1, 0, 1), (1, 5));
        assert_eq!(valid_range(5, 5, 1, 1, 1), (0, 5));
        assert_eq!(valid_range(5, 5, 1, 2, 1), (0, 4));
        // Stride 2, padding 1, 8 pixels → 4 outputs; offset 0 reads −1, 1, 3, 5.
        assert_eq!(valid_range(4, 8, 2, 0, 1), (1, 4));
        assert_eq!(valid_range(4, 8, 2, 2, 1), (0, 4));
        // Entirely in the padding.
        assert_eq!(valid_range(2, 1, 1, 3, 2), (0, 0));
    }

    #[test]
    fn im2col_matches_its_definition_and_col2im_is_its_adjoint() {
        // <im2col(x), p> = <x, col2im(p)> for any x and p, with stride and padding; the first
        // geometry takes the contiguous stride-1 path, the others the row-by-row one.
        for (stride, padding, kernel) in [
            ([1, 1], [1, 1], [3, 3]),
            ([2, 2], [1, 1], [3, 3]),
            ([2, 1], [0, 2], [1, 3]),
        ] {
            let g = Geometry::new([2, 3, 7, 6], [4, 3, kernel[0], kernel[1]], stride, padding);
            let x: Vec<f32> = (0..2 * 3 * 7 * 6)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let p: Vec<f32> = (0..g.batch * g.k() * g.l())
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 13.0)
                .collect();
            let image_len = 3 * 7 * 6;
            let (mut patches, mut back) = (vec![0.0; g.batch * g.k() * g.l()], vec![0.0; x.len()]);
            // col2im may zero the padding entries of its input: give it a copy of p.
            let mut scratch = p.clone();
            for n in 0..g.batch {
                let (pn, xn) = (
                    n * g.k() * g.l()..(n + 1) * g.k() * g.l(),
                    n * image_len..(n + 1) * image_len,
                );
                im2col_sample(&x[xn.clone()], &g, &mut patches[pn.clone()]);
                col2im_sample(&mut scratch[pn], &g, &mut back[xn]);
            }
            // im2col against its definition: x[c, ho·s + i − p, wo·s + j − p], 0 outside.
            let [kh, kw] = kernel;
            for (index, &got) in patches.iter().enumerate() {
                let (n, row, column) = (
                    index / (g.k() * g.l()),
                    index / g.l() % g.k(),
                    index % g.l(),
                );
                let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
                let h = (column / g.out_width * stride[0] + i) as isize - padding[0] as isize;
                let w = (column % g.out_width * stride[1] + j) as isize - padding[1] as isize;
                let want = if (0..7).contains(&h) && (0..6).contains(&w) {
                    x[n * image_len + c * 42 + h as usize * 6 + w as usize]
                } else {
                    0.0
                };
                assert_eq!(
                    got, want,
                    "patch {index} of {stride:?} {padding:?} {kernel:?}"
                );
            }
            let lhs: f64 = patches
                .iter()
                .zip(&p)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            let rhs: f64 = x
                .iter()
                .zip(&back)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            assert!(
                (lhs - rhs).abs() < 1e-6 * lhs.abs().max(1.0),
                "{lhs} vs {rhs}"
            );
        }
    }

    /// The implicit stride-1 products ([`implicit_conv`]) against the im2col ones, on kernels
    /// odd and even, square and not, padding from 0 to `k − 1` and beyond, and a case deep
    /// enough (40 channels × 9) for the rows kernel's blocks of the common dimension.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn implicit_products_match_im2col() {
        if !dispatch::has_avx512() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let close = |got: &[f32], want: &[f32], what: &str| {
            assert_eq!(got.len(), want.len(), "{what}: length");
            for (i, (&got, &want)) in got.iter().zip(want).enumerate() {
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{what} [{i}]: {got} vs {want}"
                );
            }
        };
        let values = |count: usize, salt: usize| -> Vec<f32> {
            (0..count)
                .map(|i| ((i * 37 + salt) % 101) as f32 / 50.0 - 1.0)
                .collect()
        };
        for (input, out_channels, kernel, padding) in [
            ([2, 3, 7, 6], 4, [3, 3], [1, 1]),
            ([2, 3, 7, 6], 4, [5, 5], [2, 2]),
            ([2, 3, 7, 6], 4, [3, 3], [0, 0]),
            ([2, 3, 7, 6], 4, [1, 1], [0, 0]),
            ([2, 3, 7, 6], 4, [3, 1], [1, 0]),
            ([2, 3, 7, 6], 4, [2, 2], [1, 1]),
            ([2, 3, 7, 6], 4, [3, 3], [2, 2]),
            ([2, 3, 7, 6], 4, [1, 1], [1, 1]),
            ([3, 40, 9, 11], 20, [3, 3], [1, 1]),
        ] {
            let weight_shape = [out_channels, input[1], kernel[0], kernel[1]];
            let g = Geometry::new(input, weight_shape, [1, 1], padding);
            let what = format!("{input:?} {weight_shape:?} padding {padding:?}");
            let implicit =
                |pass| dispatch::conv_candidates(pass, g.shape()).contains(&ConvKernel::Implicit);
            assert!(implicit(ConvPass::Forward), "{what}");
            assert_eq!(
                g.shape().padded_row,
                implicit_conv::wide_columns(&g),
                "the dispatch's row length is the implicit kernels' ({what})"
            );
            let x = values(input.iter().product(), 1);
            let w = values(weight_shape.iter().product(), 2);
            let dy = values(g.batch * g.out_channels * g.l(), 3);
            close(
                &implicit_conv::forward(&x, &w, &g),
                &forward_im2col(&x, &w, &g),
                &format!("forward {what}"),
            );
            close(
                &implicit_conv::weight_gradient(&x, &dy, &g),
                &weight_gradient_im2col(&x, &dy, &g),
                &format!("weight gradient {what}"),
            );
            let transposable = padding[0] < kernel[0] && padding[1] < kernel[1];
            assert_eq!(implicit(ConvPass::InputGradient), transposable);
            if transposable {
                close(
                    &implicit_conv::input_gradient(&w, &dy, &g),
                    &input_gradient_im2col(&w, &dy, &g),
                    &format!("input gradient {what}"),
                );
            }
        }
        // Below the dot-product kernel's row length the fixed rules leave the weight gradient
        // to im2col.
        let g = Geometry::new([1, 2, 4, 4], [2, 2, 3, 3], [1, 1], [1, 1]);
        assert_eq!(implicit_conv::wide_columns(&g), 24);
        assert_eq!(
            dispatch::conv_candidates(ConvPass::WeightGradient, g.shape())[0],
            ConvKernel::Im2col
        );
    }
}
