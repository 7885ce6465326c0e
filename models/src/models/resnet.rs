//! Residual networks (He et al., 2016): the CIFAR family (ResNet-20/32/44/56/110) and the
//! ImageNet family (ResNet-18/34), built from basic blocks.

use crate::batch::ImageBatch;
use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::{ClassificationOutput, TrainOutput, TrainStep, ValidStep};
use serde::{Deserialize, Serialize};

use crate::layers::conv::{ConvAlgorithm, ConvLayer, ConvLayerConfig};
use crate::ops::batch_norm::batch_norm;
use crate::state_dict::{StateDict, load_batch_norm, load_linear, load_param};

/// How a block's shortcut adapts the input when the block changes the shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shortcut {
    /// Option B: a 1×1 convolution with the block's stride, then BatchNorm (the training code
    /// the RAdam paper used; ResNet-20 has 272,474 parameters).
    #[default]
    Projection,
    /// Option A: subsample by the stride and pad the new channels with zeros; no parameters
    /// (He et al.'s CIFAR experiments; ResNet-20 has 269,722 parameters).
    ZeroPad,
}

/// Channels of a CIFAR ResNet's stem and first stage in He et al. (2016): the default `width`.
pub const CIFAR_BASE_WIDTH: usize = 16;

/// Configuration of a CIFAR ResNet: a 3×3 stem with `width` (16) channels, three stages of `n`
/// basic blocks with `width`, 2·`width` and 4·`width` channels (16, 32, 64; the last two stages
/// start with stride 2), global average pooling and a linear classifier. `depth = 6n + 2`.
#[derive(Config, Debug)]
pub struct CifarResNetConfig {
    /// 20, 32, 44, 56, 110 — any `6n + 2`.
    pub depth: usize,
    /// Number of classes (10 for CIFAR-10, 100 for CIFAR-100).
    #[config(default = 10)]
    pub num_classes: usize,
    /// Shortcuts of the blocks that change shape.
    #[config(default = "Shortcut::Projection")]
    pub shortcut: Shortcut,
    /// How every convolution is computed (same results, different speed per backend).
    #[config(default = "ConvAlgorithm::Auto")]
    pub conv_algorithm: ConvAlgorithm,
    /// Channels of the stem and the first stage (He et al.'s 16); the later stages double it.
    #[config(default = "CIFAR_BASE_WIDTH")]
    pub width: usize,
}

/// Configuration of an ImageNet ResNet with basic blocks: a 7×7 stride-2 stem with 64 channels
/// and 3×3 stride-2 max-pooling, four stages of basic blocks with 64, 128, 256 and 512 channels
/// (the last three start with stride 2), global average pooling and a linear classifier.
#[derive(Config, Debug)]
pub struct ImageNetResNetConfig {
    /// Basic blocks per stage: `[2, 2, 2, 2]` for ResNet-18, `[3, 4, 6, 3]` for ResNet-34.
    pub blocks_per_stage: [usize; 4],
    /// Number of classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// How every convolution is computed.
    #[config(default = "ConvAlgorithm::Auto")]
    pub conv_algorithm: ConvAlgorithm,
}

impl ImageNetResNetConfig {
    /// ResNet-18 (11,689,512 parameters with 1000 classes).
    pub fn resnet18(num_classes: usize) -> Self {
        Self::new([2, 2, 2, 2]).with_num_classes(num_classes)
    }

    /// ResNet-34 (21,797,672 parameters with 1000 classes).
    pub fn resnet34(num_classes: usize) -> Self {
        Self::new([3, 4, 6, 3]).with_num_classes(num_classes)
    }
}

/// The projection shortcut: 1×1 convolution with stride, then BatchNorm.
#[derive(Module, Debug)]
pub struct Projection<B: Backend> {
    conv: ConvLayer<B>,
    norm: BatchNorm<B>,
}

/// Two 3×3 convolutions with BatchNorm and ReLU, plus the shortcut.
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    conv_1: ConvLayer<B>,
    norm_1: BatchNorm<B>,
    conv_2: ConvLayer<B>,
    norm_2: BatchNorm<B>,
    projection: Option<Projection<B>>,
    /// Zero channels added on each side by an option-A shortcut (0 when the shape is kept).
    zero_pad_channels: usize,
    /// The block's stride (an option-A shortcut subsamples by it).
    stride: usize,
}

/// A residual network for image classification (either family).
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    stem_conv: ConvLayer<B>,
    stem_norm: BatchNorm<B>,
    stem_pool: Option<MaxPool2d>,
    blocks: Vec<BasicBlock<B>>,
    classifier: Linear<B>,
}

fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: usize,
    algorithm: ConvAlgorithm,
) -> ConvLayerConfig {
    ConvLayerConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding([padding, padding])
        .with_algorithm(algorithm)
}

impl<B: Backend> BasicBlock<B> {
    fn new(
        channels: [usize; 2],
        stride: usize,
        shortcut: Shortcut,
        algorithm: ConvAlgorithm,
        device: &B::Device,
    ) -> Self {
        let [c_in, c_out] = channels;
        let changes_shape = stride != 1 || c_in != c_out;
        let projection = (changes_shape && shortcut == Shortcut::Projection).then(|| Projection {
            conv: conv([c_in, c_out], 1, stride, 0, algorithm).init(device),
            norm: BatchNormConfig::new(c_out).init(device),
        });
        let zero_pad_channels = if changes_shape && shortcut == Shortcut::ZeroPad {
            assert!(
                c_out >= c_in && (c_out - c_in) % 2 == 0,
                "a zero-padding shortcut needs an even channel increase, got {c_in} → {c_out}"
            );
            (c_out - c_in) / 2
        } else {
            0
        };
        Self {
            conv_1: conv([c_in, c_out], 3, stride, 1, algorithm).init(device),
            norm_1: BatchNormConfig::new(c_out).init(device),
            conv_2: conv([c_out, c_out], 3, 1, 1, algorithm).init(device),
            norm_2: BatchNormConfig::new(c_out).init(device),
            projection,
            zero_pad_channels,
            stride,
        }
    }

    fn forward(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = batch_norm(&self.norm_1, self.conv_1.forward(input.clone()), None, true);
        let shortcut = match &self.projection {
            Some(projection) => batch_norm(
                &projection.norm,
                projection.conv.forward(input),
                None,
                false,
            ),
            None if self.zero_pad_channels > 0 || self.stride > 1 => self.zero_pad(input),
            None => input,
        };
        batch_norm(&self.norm_2, self.conv_2.forward(x), Some(shortcut), true)
    }

    /// Option A: `x[:, :, ::stride, ::stride]`, zero-padded with `zero_pad_channels` channels on
    /// each side. The padding is a `slice_assign` into zeros: Burn 0.19.1's `cat` of the
    /// zeros, the subsampled input and the zeros computes this forward but routes the gradient
    /// of the first channels to the input (found against PyTorch, `resnet/parity.rs`).
    fn zero_pad(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let s = self.stride as isize;
        let sub = input.slice(burn::tensor::s![.., .., ..;s, ..;s]);
        if self.zero_pad_channels == 0 {
            return sub;
        }
        let [n, c, h, w] = sub.dims();
        let pad = self.zero_pad_channels;
        Tensor::zeros([n, c + 2 * pad, h, w], &sub.device())
            .slice_assign([0..n, pad..pad + c, 0..h, 0..w], sub)
    }
}

fn stages<B: Backend>(
    stem_channels: usize,
    widths: &[usize],
    blocks_per_stage: &[usize],
    shortcut: Shortcut,
    algorithm: ConvAlgorithm,
    device: &B::Device,
) -> Vec<BasicBlock<B>> {
    let mut blocks = Vec::new();
    let mut c_in = stem_channels;
    for (stage, (&width, &count)) in widths.iter().zip(blocks_per_stage).enumerate() {
        for index in 0..count {
            let stride = if stage > 0 && index == 0 { 2 } else { 1 };
            blocks.push(BasicBlock::new(
                [c_in, width],
                stride,
                shortcut,
                algorithm,
                device,
            ));
            c_in = width;
        }
    }
    blocks
}

impl<B: Backend> ResNet<B> {
    /// The CIFAR ResNet with the weights and batch-norm statistics of a PyTorch `state_dict`,
    /// named as `tools/model_reference.py`'s `CifarResNet` names them: `stem.0` (convolution),
    /// `stem.1` (batch norm), `blocks.{i}.conv1`, `.bn1`, `.conv2`, `.bn2`, `.projection.0`,
    /// `.projection.1` (option B), `fc`. Every tensor's shape is checked; a missing or misshapen
    /// one, or one the model has no parameter for, is an error naming it. Rename a state dict of
    /// other names to these first.
    pub fn load_state_dict(self, dict: &StateDict) -> Result<Self, String> {
        if self.stem_pool.is_some() {
            return Err("only the CIFAR ResNet loads a PyTorch state dict".to_string());
        }
        dict.load_strictly(|dict| self.load_weights(dict))
    }

    /// [`load_state_dict`](Self::load_state_dict) without the check for unread tensors.
    fn load_weights(mut self, dict: &StateDict) -> Result<Self, String> {
        self.stem_conv.weight = load_param(dict, "stem.0.weight", self.stem_conv.weight)?;
        self.stem_norm = load_batch_norm(dict, "stem.1", self.stem_norm)?;
        let blocks = std::mem::take(&mut self.blocks);
        for (index, mut block) in blocks.into_iter().enumerate() {
            let name = |part: &str| format!("blocks.{index}.{part}");
            block.conv_1.weight = load_param(dict, &name("conv1.weight"), block.conv_1.weight)?;
            block.norm_1 = load_batch_norm(dict, &name("bn1"), block.norm_1)?;
            block.conv_2.weight = load_param(dict, &name("conv2.weight"), block.conv_2.weight)?;
            block.norm_2 = load_batch_norm(dict, &name("bn2"), block.norm_2)?;
            if let Some(mut projection) = block.projection.take() {
                projection.conv.weight =
                    load_param(dict, &name("projection.0.weight"), projection.conv.weight)?;
                projection.norm = load_batch_norm(dict, &name("projection.1"), projection.norm)?;
                block.projection = Some(projection);
            }
            self.blocks.push(block);
        }
        self.classifier = load_linear(dict, "fc", self.classifier)?;
        Ok(self)
    }
}

impl CifarResNetConfig {
    /// Builds the network on `device` (He-normal convolutions, BatchNorm γ = 1, β = 0).
    ///
    /// # Panics
    /// If `depth` is not of the form `6n + 2` with `n ≥ 1`, or `width` is 0.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        assert!(
            self.depth >= 8 && (self.depth - 2).is_multiple_of(6),
            "a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, 110, …), got {}",
            self.depth
        );
        assert!(self.width > 0, "a CIFAR ResNet needs width >= 1");
        let n = (self.depth - 2) / 6;
        let w = self.width;
        ResNet {
            stem_conv: conv([3, w], 3, 1, 1, self.conv_algorithm).init(device),
            stem_norm: BatchNormConfig::new(w).init(device),
            stem_pool: None,
            blocks: stages(
                w,
                &[w, 2 * w, 4 * w],
                &[n, n, n],
                self.shortcut,
                self.conv_algorithm,
                device,
            ),
            classifier: LinearConfig::new(4 * w, self.num_classes).init(device),
        }
    }
}

impl ImageNetResNetConfig {
    /// Builds the network on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        ResNet {
            stem_conv: conv([3, 64], 7, 2, 3, self.conv_algorithm).init(device),
            stem_norm: BatchNormConfig::new(64).init(device),
            stem_pool: Some(
                MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1))
                    .init(),
            ),
            blocks: stages(
                64,
                &[64, 128, 256, 512],
                &self.blocks_per_stage,
                Shortcut::Projection,
                self.conv_algorithm,
                device,
            ),
            classifier: LinearConfig::new(512, self.num_classes).init(device),
        }
    }
}

impl<B: Backend> ResNet<B> {
    /// Class logits `[batch, classes]` for images `[batch, 3, height, width]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = batch_norm(&self.stem_norm, self.stem_conv.forward(images), None, true);
        if let Some(pool) = &self.stem_pool {
            x = pool.forward(x);
        }
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [n, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([n, c]);
        self.classifier.forward(pooled)
    }

    /// Logits and mean cross-entropy loss, as Burn's classification metrics expect.
    pub fn forward_classification(&self, batch: ImageBatch<B>) -> ClassificationOutput<B> {
        let logits = self.forward(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl<B: AutodiffBackend> TrainStep<ImageBatch<B>, ClassificationOutput<B>> for ResNet<B> {
    fn step(&self, batch: ImageBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let output = self.forward_classification(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> ValidStep<ImageBatch<B>, ClassificationOutput<B>> for ResNet<B> {
    fn step(&self, batch: ImageBatch<B>) -> ClassificationOutput<B> {
        self.forward_classification(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend, TestBackend, assert_tensors_close, overfit};
    use burn::tensor::{Distribution, Int, TensorData};
    use std::collections::HashMap;

    fn reference_counts() -> HashMap<String, usize> {
        serde_json::from_str(include_str!("../../testdata/param_counts.json")).unwrap()
    }

    fn trainable(model: &ResNet<TestAutodiffBackend>) -> usize {
        crate::training::parameters::trainable_parameters(model)
    }

    #[test]
    fn cifar_parameter_counts_match_pytorch() {
        let counts = reference_counts();
        let device = Default::default();
        for depth in [20, 32, 44, 56, 110] {
            for (shortcut, name) in [
                (Shortcut::Projection, "projection"),
                (Shortcut::ZeroPad, "zero_pad"),
            ] {
                let model = CifarResNetConfig::new(depth)
                    .with_shortcut(shortcut)
                    .init(&device);
                let expected = counts[&format!("cifar_resnet{depth}_{name}_10")];
                assert_eq!(
                    trainable(&model),
                    expected,
                    "ResNet-{depth}, {name} shortcuts"
                );
            }
        }
        let resnet20_100 = CifarResNetConfig::new(20)
            .with_num_classes(100)
            .init(&device);
        assert_eq!(
            trainable(&resnet20_100),
            counts["cifar_resnet20_projection_100"]
        );
        let narrow = CifarResNetConfig::new(8).with_width(8).init(&device);
        assert_eq!(
            trainable(&narrow),
            counts["cifar_resnet8_projection_10_width8"]
        );
        // The textbook figure: ResNet-20 has about 0.27 M parameters.
        assert_eq!(
            trainable(&CifarResNetConfig::new(20).init(&device)),
            272_474
        );
    }

    #[test]
    fn imagenet_parameter_counts_match_pytorch() {
        let counts = reference_counts();
        let device = Default::default();
        let resnet18 = ImageNetResNetConfig::resnet18(1000).init(&device);
        assert_eq!(trainable(&resnet18), 11_689_512);
        assert_eq!(trainable(&resnet18), counts["resnet18_1000"]);
        // Burn's own count adds BatchNorm's running mean and variance (2 × 4,800 channels).
        assert_eq!(resnet18.num_params(), 11_689_512 + 9_600);
        let resnet34 = ImageNetResNetConfig::resnet34(1000).init(&device);
        assert_eq!(trainable(&resnet34), counts["resnet34_1000"]);
        let resnet18_10 = ImageNetResNetConfig::resnet18(10).init(&device);
        assert_eq!(trainable(&resnet18_10), counts["resnet18_10"]);
    }

    #[test]
    fn output_shapes() {
        let device = Default::default();
        let cifar: ResNet<TestBackend> = CifarResNetConfig::new(8)
            .with_num_classes(100)
            .init(&device);
        let images = Tensor::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(cifar.forward(images).dims(), [2, 100]);
        let imagenet: ResNet<TestBackend> = ImageNetResNetConfig::resnet18(7).init(&device);
        let images = Tensor::random([1, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(imagenet.forward(images).dims(), [1, 7]);
    }

    #[test]
    fn zero_pad_shortcut_gradient_reaches_only_the_subsampled_positions() {
        // Burn 0.19.1's `cat` of [zeros, x, zeros] sent the gradient of the first channels to x.
        let device = Default::default();
        let block: BasicBlock<TestAutodiffBackend> =
            BasicBlock::new([2, 4], 2, Shortcut::ZeroPad, ConvAlgorithm::Direct, &device);
        let input = Tensor::<TestAutodiffBackend, 1, Int>::arange(0..32, &device)
            .float()
            .reshape([1, 2, 4, 4])
            .require_grad();
        let weights = Tensor::<TestAutodiffBackend, 1, Int>::arange(0..16, &device)
            .float()
            .reshape([1, 4, 2, 2]);
        let grads = (block.zero_pad(input.clone()) * weights).sum().backward();
        let gradient: Vec<f32> = input.grad(&grads).unwrap().into_data().to_vec().unwrap();
        // Output channels 1 and 2 (weights 4..12) are input channels 0 and 1 at even rows and
        // columns.
        let mut expected = vec![0.0f32; 32];
        for (k, index) in [0, 2, 8, 10, 16, 18, 24, 26].into_iter().enumerate() {
            expected[index] = 4.0 + k as f32;
        }
        assert_eq!(gradient, expected);
    }

    #[test]
    fn zero_pad_shortcut_subsamples_and_pads() {
        let device = Default::default();
        let block: BasicBlock<TestBackend> =
            BasicBlock::new([2, 4], 2, Shortcut::ZeroPad, ConvAlgorithm::Direct, &device);
        let input = Tensor::<TestBackend, 1, Int>::arange(0..32, &device)
            .float()
            .reshape([1, 2, 4, 4]);
        let shortcut = block.zero_pad(input);
        let expected = TensorData::new(
            vec![
                0.0_f32, 0.0, 0.0, 0.0, // zero channel
                0.0, 2.0, 8.0, 10.0, // channel 0, every other row and column
                16.0, 18.0, 24.0, 26.0, // channel 1
                0.0, 0.0, 0.0, 0.0, // zero channel
            ],
            [1, 4, 2, 2],
        );
        shortcut.into_data().assert_eq(&expected, true);
    }

    #[test]
    #[should_panic(expected = "a CIFAR ResNet has depth 6n + 2")]
    fn rejects_impossible_depths() {
        let _: ResNet<TestBackend> = CifarResNetConfig::new(21).init(&Default::default());
    }

    #[test]
    fn both_conv_algorithms_compute_the_same_network() {
        let device = Default::default();
        let direct: ResNet<TestBackend> = CifarResNetConfig::new(8)
            .with_conv_algorithm(ConvAlgorithm::Direct)
            .init(&device);
        let im2col: ResNet<TestBackend> = CifarResNetConfig::new(8)
            .with_conv_algorithm(ConvAlgorithm::Im2col)
            .init(&device)
            .load_record(direct.clone().into_record());
        let images = Tensor::random([2, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
        assert_tensors_close(im2col.forward(images.clone()), direct.forward(images), 1e-4);
    }

    #[test]
    fn overfits_one_batch() {
        let device = Default::default();
        TestAutodiffBackend::seed(&device, 1);
        let model: ResNet<TestAutodiffBackend> = CifarResNetConfig::new(8).init(&device);
        let images = Tensor::random([8, 3, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let targets = Tensor::<TestAutodiffBackend, 1, Int>::from_data(
            TensorData::new(vec![0i64, 1, 2, 3, 4, 5, 6, 7], [8]),
            &device,
        );
        let batch = ImageBatch { images, targets };
        let (first, last) = overfit(model, 40, 1e-2, |model| {
            model.forward_classification(batch.clone()).loss
        });
        assert!(last < 0.2 * first, "loss went from {first} to {last}");
        println!("ResNet-8 overfit: loss {first} -> {last}");
    }
}
