//! The 2-D convolution the layers call, on the route the [dispatch](crate::ops::dispatch) gives
//! for the layer's [`ConvAlgorithm`] and the backend: the native convolution on ndarray, im2col
//! with tensor operations, or Burn's `conv2d`.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;

use crate::ops::dispatch::{self, ConvAlgorithm, Convolution};
use crate::ops::im2col::conv2d_im2col;

/// `conv(input, weight) + bias` with `stride` and zero `padding` (no dilation, one group).
pub(crate) fn conv2d<B: Backend>(
    input: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    stride: [usize; 2],
    padding: [usize; 2],
    algorithm: ConvAlgorithm,
) -> Tensor<B, 4> {
    match dispatch::convolution::<B>(algorithm) {
        #[cfg(feature = "ndarray-kernels")]
        Convolution::Native(native) => {
            let output = crate::ops::ndarray::conv::conv2d(native, input, weight, stride, padding);
            match bias {
                Some(bias) => output + bias.reshape([1, -1, 1, 1]),
                None => output,
            }
        }
        Convolution::Im2colTensorOps => conv2d_im2col(input, weight, bias, stride, padding),
        _ => {
            let options = ConvOptions::new(stride, padding, [1, 1], 1);
            burn::tensor::module::conv2d(input, weight, bias, options)
        }
    }
}
