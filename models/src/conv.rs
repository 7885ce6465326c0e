//! A 2-D convolution layer whose algorithm is a configuration choice.
//!
//! The parameters are laid out as in Burn's `Conv2d` (`weight: [out, in, kh, kw]`, optional
//! `bias: [out]`), and every algorithm computes the same function; they differ only in speed,
//! which depends on the backend (see `ConvAlgorithm`).

use burn::config::Config;
use burn::module::{Ignored, Module, Param};
use burn::nn::Initializer;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use serde::{Deserialize, Serialize};

use crate::im2col::conv2d_im2col;

/// How a [`ConvLayer`] computes its convolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConvAlgorithm {
    /// Burn's `conv2d` operation and its backward. Fast forward everywhere; on ndarray the
    /// weight gradient is computed as a convolution with the whole output-gradient map as
    /// kernel, which is very slow.
    #[default]
    Direct,
    /// im2col: the input patches are gathered into a matrix and the convolution is one matrix
    /// product, so forward *and* backward are matrix products (weight gradient = patchesᵀ ·
    /// output gradient). Much faster to train on ndarray.
    Im2col,
}

/// Configuration of a [`ConvLayer`].
#[derive(Config, Debug)]
pub struct ConvLayerConfig {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Kernel height and width.
    pub kernel_size: [usize; 2],
    /// Stride in both directions.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Zero padding on each side, in both directions.
    #[config(default = "[0, 0]")]
    pub padding: [usize; 2],
    /// Whether a bias is added.
    #[config(default = false)]
    pub bias: bool,
    /// The weight initialisation.
    #[config(
        default = "Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: true }"
    )]
    pub initializer: Initializer,
    /// The algorithm.
    #[config(default = "ConvAlgorithm::Direct")]
    pub algorithm: ConvAlgorithm,
}

/// A 2-D convolution, `[batch, in, h, w] → [batch, out, h', w']`.
#[derive(Module, Debug)]
pub struct ConvLayer<B: Backend> {
    /// The kernels, `[out, in, kh, kw]`.
    pub weight: Param<Tensor<B, 4>>,
    /// The bias, `[out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    stride: [usize; 2],
    padding: [usize; 2],
    algorithm: Ignored<ConvAlgorithm>,
}

impl ConvLayerConfig {
    /// Builds the layer on `device`. The default initialisation is He et al.'s normal
    /// initialisation with fan-out, `N(0, 2 / (out·kh·kw))`, as in the reference ResNet code.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ConvLayer<B> {
        let [c_in, c_out] = self.channels;
        let [kh, kw] = self.kernel_size;
        let fan_in = c_in * kh * kw;
        let fan_out = c_out * kh * kw;
        let weight =
            self.initializer
                .init_with([c_out, c_in, kh, kw], Some(fan_in), Some(fan_out), device);
        let bias = self
            .bias
            .then(|| Initializer::Zeros.init_with([c_out], Some(fan_in), Some(fan_out), device));
        ConvLayer {
            weight,
            bias,
            stride: self.stride,
            padding: self.padding,
            algorithm: Ignored(self.algorithm),
        }
    }
}

impl<B: Backend> ConvLayer<B> {
    /// Applies the convolution.
    pub fn forward(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let bias = self.bias.as_ref().map(|bias| bias.val());
        match self.algorithm.0 {
            ConvAlgorithm::Direct => conv2d(
                input,
                self.weight.val(),
                bias,
                ConvOptions::new(self.stride, self.padding, [1, 1], 1),
            ),
            ConvAlgorithm::Im2col => {
                conv2d_im2col(input, self.weight.val(), bias, self.stride, self.padding)
            }
        }
    }

    /// The algorithm this layer uses.
    pub fn algorithm(&self) -> ConvAlgorithm {
        self.algorithm.0
    }

    /// The same layer (same parameters) computing with `algorithm`.
    pub fn with_algorithm(mut self, algorithm: ConvAlgorithm) -> Self {
        self.algorithm = Ignored(algorithm);
        self
    }
}
