//! A 2-D convolution layer whose algorithm is a configuration choice.
//!
//! The parameters are laid out as in Burn's `Conv2d` (`weight: [out, in, kh, kw]`, optional
//! `bias: [out]`), and every algorithm computes the same function; they differ only in speed,
//! which depends on the backend (see [`ConvAlgorithm`] and the [dispatch](crate::ops::dispatch)).

use burn::config::Config;
use burn::module::{Ignored, Module, Param};
use burn::nn::Initializer;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::ops::conv::conv2d;

pub use crate::ops::dispatch::ConvAlgorithm;

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
    #[config(default = "ConvAlgorithm::Auto")]
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
        conv2d(
            input,
            self.weight.val(),
            bias,
            self.stride,
            self.padding,
            self.algorithm.0,
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend, assert_tensors_close};
    use burn::tensor::Distribution;

    /// Output, input gradient, weight gradient and bias gradient of `algorithm`.
    fn run(
        algorithm: ConvAlgorithm,
        reference: &ConvLayer<TestAutodiffBackend>,
        input: &Tensor<TestAutodiffBackend, 4>,
    ) -> [Tensor<crate::test_support::TestBackend, 4>; 3] {
        let layer = reference.clone().with_algorithm(algorithm);
        let input = input.clone().detach().require_grad();
        let output = layer.forward(input.clone());
        // A loss that weighs every output differently.
        let weights = output.clone().detach().cos();
        let grads = (output.clone() * weights).sum().backward();
        [
            output.inner(),
            input.grad(&grads).unwrap(),
            layer.weight.val().grad(&grads).unwrap(),
        ]
    }

    #[test]
    fn im2col_matches_burns_conv2d_forward_and_gradients() {
        let device = Default::default();
        let cases = [
            // (channels, kernel, stride, padding, bias, size)
            ([3, 8], [3, 3], [1, 1], [1, 1], true, [2, 9, 9]),
            ([4, 6], [3, 3], [2, 2], [1, 1], false, [3, 8, 8]),
            ([5, 7], [1, 1], [2, 2], [0, 0], false, [2, 7, 7]),
            ([2, 3], [3, 2], [1, 2], [0, 1], true, [2, 6, 5]),
            // 256 output pixels: long enough for the AVX-512 dot-product weight gradient.
            ([3, 10], [3, 3], [1, 1], [1, 1], false, [2, 16, 16]),
        ];
        for (channels, kernel, stride, padding, bias, [batch, h, w]) in cases {
            let layer: ConvLayer<TestAutodiffBackend> = ConvLayerConfig::new(channels, kernel)
                .with_stride(stride)
                .with_padding(padding)
                .with_bias(bias)
                .init(&device);
            let layer = ConvLayer {
                bias: layer.bias.map(|b| b.map(|b| b.add_scalar(0.3))),
                ..layer
            };
            let input = Tensor::random(
                [batch, channels[0], h, w],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let direct = run(ConvAlgorithm::Direct, &layer, &input);
            let im2col = run(ConvAlgorithm::Im2col, &layer, &input);
            for (what, (a, b)) in ["output", "input gradient", "weight gradient"]
                .iter()
                .zip(im2col.into_iter().zip(direct))
            {
                println!("{what}: {:?}", a.dims());
                assert_tensors_close(a, b, 1e-4);
            }
        }
    }

    #[test]
    fn im2col_bias_gradient_matches() {
        let device = Default::default();
        let layer: ConvLayer<TestAutodiffBackend> = ConvLayerConfig::new([3, 4], [3, 3])
            .with_padding([1, 1])
            .with_bias(true)
            .init(&device);
        let input = Tensor::random([2, 3, 5, 5], Distribution::Normal(0.0, 1.0), &device);
        let bias_grad = |algorithm| {
            let layer = layer.clone().with_algorithm(algorithm);
            let grads = layer.forward(input.clone()).powi_scalar(2).sum().backward();
            layer.bias.as_ref().unwrap().val().grad(&grads).unwrap()
        };
        assert_tensors_close(
            bias_grad(ConvAlgorithm::Im2col),
            bias_grad(ConvAlgorithm::Direct),
            1e-4,
        );
    }
}
