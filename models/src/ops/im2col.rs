//! Convolution as one matrix product over gathered input patches (im2col), with tensor
//! operations only, so that autodiff's backward is matrix products too.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, s};

/// `conv2d` (no dilation, no groups) computed as `patches · weightᵀ`.
///
/// `input: [n, c, h, w]`, `weight: [o, c, kh, kw]`, `bias: [o]` → `[n, o, h', w']` with
/// `h' = (h + 2·padding[0] − kh) / stride[0] + 1` (likewise for `w'`).
///
/// The patches are built in channels-last layout, `[n·h'·w', kh·kw·c]`, by concatenating the
/// `kh·kw` strided views of the padded input; the product with the reshaped weight is a single
/// GEMM. Its backward is two GEMMs (weight gradient `patchesᵀ · grad`, patch gradient
/// `grad · weight`) and the scatter of the patch gradient back onto the input.
pub fn conv2d_im2col<B: Backend>(
    input: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<B, 4> {
    let [n, c, h, w] = input.dims();
    let [o, c_weight, kh, kw] = weight.dims();
    assert_eq!(
        c, c_weight,
        "conv2d_im2col: input has {c} channels, the weight expects {c_weight}"
    );
    let out_h = (h + 2 * padding[0] - kh) / stride[0] + 1;
    let out_w = (w + 2 * padding[1] - kw) / stride[1] + 1;

    let padded = if padding == [0, 0] {
        input
    } else {
        input.pad((padding[1], padding[1], padding[0], padding[0]), 0.0)
    };
    // Channels-last, so that each patch is contiguous: [n, h_p, w_p, c].
    let padded = padded.permute([0, 2, 3, 1]);

    let views: Vec<Tensor<B, 4>> = (0..kh)
        .flat_map(|i| (0..kw).map(move |j| (i, j)))
        .map(|(i, j)| {
            let rows = i..i + stride[0] * (out_h - 1) + 1;
            let cols = j..j + stride[1] * (out_w - 1) + 1;
            padded
                .clone()
                .slice(s![.., rows; stride[0], cols; stride[1], ..])
        })
        .collect();
    let k = kh * kw * c;
    // [n, h', w', kh·kw·c], column index (i·kw + j)·c + channel.
    let patches = if views.len() == 1 {
        views.into_iter().next().unwrap()
    } else {
        Tensor::cat(views, 3)
    }
    .reshape([n * out_h * out_w, k]);

    // [o, c, kh, kw] → [o, kh, kw, c] → [kh·kw·c, o], matching the patch columns.
    let weight = weight.permute([0, 2, 3, 1]).reshape([o, k]).transpose();
    let mut output = patches.matmul(weight);
    if let Some(bias) = bias {
        output = output + bias.unsqueeze_dim(0);
    }
    output.reshape([n, out_h, out_w, o]).permute([0, 3, 1, 2])
}
