//! The training-step workloads whose speed this project measures: ResNet-20, the LSTM language
//! model and the Transformer at the README's shapes (or a tiny version of each), each with one
//! fixed batch, and the timed loop around them (forward, backward, RAdam step); on the CPU also
//! the LSTM LM as real corpora run it (`lstm-adaptive`).
//!
//! Generic over the backend: the CPU benchmarks (`benches/`) run them on ndarray,
//! `tools/gpu-check` on wgpu.

use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use radam_burn::RAdamConfig;
use radam_datasets::{ImageBatch, LmBatch, TranslationBatch};
use radam_models::conv::ConvAlgorithm;
use radam_models::lstm::LstmAlgorithm;
use radam_models::lstm_lm::{LstmLm, LstmLmConfig, SMALL_ADAPTIVE_VOCAB};
use radam_models::resnet::{CifarResNetConfig, ResNet};
use radam_models::transformer::{TransformerNmt, TransformerNmtConfig};

/// The sizes of the three workloads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkloadSizes {
    /// ResNet depth (`6n + 2`).
    pub resnet_depth: usize,
    /// Images per step.
    pub resnet_batch: usize,
    /// Image side, pixels.
    pub image_size: usize,
    /// LSTM LM: streams per step.
    pub lstm_batch: usize,
    /// LSTM LM: tokens per stream per step.
    pub lstm_length: usize,
    /// LSTM LM: vocabulary (full softmax).
    pub lstm_vocab: usize,
    /// LSTM LM: embedding and hidden width (two layers).
    pub lstm_width: usize,
    /// `lstm-adaptive`: the vocabulary of the `small` LM with its adaptive softmax (at least
    /// [`SMALL_ADAPTIVE_VOCAB`]).
    pub lstm_adaptive_vocab: usize,
    /// Transformer: sentence pairs per step.
    pub transformer_batch: usize,
    /// Transformer: tokens per source and per target sentence.
    pub transformer_length: usize,
    /// Transformer: joint vocabulary.
    pub transformer_vocab: usize,
    /// Transformer: layers per side.
    pub transformer_layers: usize,
    /// Transformer: model width (feed-forward 4×, 4 heads).
    pub transformer_width: usize,
}

impl WorkloadSizes {
    /// The README's shapes: ResNet-20 on 128 images of 3×32×32; the LSTM LM 2 × 256 on 32
    /// streams of 35 tokens, vocabulary 10 k; the Transformer 3 + 3 layers, d 256, on 32 pairs of
    /// 32 tokens, vocabulary 8 k.
    pub const README: Self = Self {
        resnet_depth: 20,
        resnet_batch: 128,
        image_size: 32,
        lstm_batch: 32,
        lstm_length: 35,
        lstm_vocab: 10_000,
        lstm_width: 256,
        lstm_adaptive_vocab: 30_000,
        transformer_batch: 32,
        transformer_length: 32,
        transformer_vocab: 8_000,
        transformer_layers: 3,
        transformer_width: 256,
    };

    /// Small enough for a software renderer: ResNet-8 on 8 images, a 2 × 32 LSTM, a 1 + 1-layer
    /// Transformer of width 32.
    pub const TINY: Self = Self {
        resnet_depth: 8,
        resnet_batch: 8,
        image_size: 32,
        lstm_batch: 4,
        lstm_length: 8,
        lstm_vocab: 100,
        lstm_width: 32,
        lstm_adaptive_vocab: SMALL_ADAPTIVE_VOCAB,
        transformer_batch: 4,
        transformer_length: 8,
        transformer_vocab: 100,
        transformer_layers: 1,
        transformer_width: 32,
    };
}

/// One of the three workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// The CIFAR ResNet.
    ResNet,
    /// The LSTM language model.
    Lstm,
    /// The LSTM language model as a real corpus runs it: the `small` model (128-d embeddings,
    /// 2 × 256, dropout 0.2) with its adaptive softmax over a 30 k vocabulary, on Zipfian tokens.
    LstmAdaptive,
    /// The Transformer for translation.
    Transformer,
}

impl Workload {
    /// The paper's three models at the README's shapes, in its order (what `tools/gpu-check`
    /// trains).
    pub const ALL: [Self; 3] = [Self::ResNet, Self::Lstm, Self::Transformer];

    /// What `tools/cpu-speed-vs-torch` measures: the three, and the LM as real corpora run it.
    pub const CPU_SPEED: [Self; 4] = [
        Self::ResNet,
        Self::Lstm,
        Self::LstmAdaptive,
        Self::Transformer,
    ];

    /// The name used on command lines and in reports: `resnet20`, `lstm`, `lstm-adaptive`,
    /// `transformer`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ResNet => "resnet20",
            Self::Lstm => "lstm",
            Self::LstmAdaptive => "lstm-adaptive",
            Self::Transformer => "transformer",
        }
    }

    /// The workload of a [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::CPU_SPEED.into_iter().find(|w| w.name() == name)
    }

    /// What a step processes: images, tokens or target tokens.
    pub fn unit(self) -> &'static str {
        match self {
            Self::ResNet => "images",
            Self::Lstm | Self::LstmAdaptive | Self::Transformer => "tokens",
        }
    }

    /// Items (images or tokens) per step.
    pub fn items_per_step(self, shapes: &WorkloadSizes) -> usize {
        match self {
            Self::ResNet => shapes.resnet_batch,
            Self::Lstm | Self::LstmAdaptive => shapes.lstm_batch * shapes.lstm_length,
            Self::Transformer => shapes.transformer_batch * shapes.transformer_length,
        }
    }

    /// Times `iters` training steps of a fresh model with the default algorithms, after
    /// `warmup` untimed ones (which pay for autotuning on wgpu).
    pub fn time<B: AutodiffBackend>(
        self,
        shapes: &WorkloadSizes,
        warmup: u64,
        iters: u64,
        device: &B::Device,
    ) -> Duration {
        match self {
            Self::ResNet => {
                let (model, batch) = resnet::<B>(shapes, ConvAlgorithm::Auto, device);
                time_training(model, warmup, iters, device, |model| {
                    model.forward_classification(batch.clone()).loss
                })
            }
            Self::Lstm | Self::LstmAdaptive => {
                let (model, batch) = match self {
                    Self::Lstm => lstm_lm::<B>(shapes, LstmAlgorithm::Fused, device),
                    _ => lstm_adaptive::<B>(shapes, device),
                };
                time_training(model, warmup, iters, device, |model| {
                    model.forward_stream(batch.clone()).loss
                })
            }
            Self::Transformer => {
                let (model, batch) = transformer::<B>(shapes, device);
                time_training(model, warmup, iters, device, |model| {
                    model.forward_translation(batch.clone()).loss
                })
            }
        }
    }
}

/// Times `iters` calls of `step` after `warmup` untimed ones, each taking the state the last
/// one returned, and waits for `device` to finish before each reading of the clock. Returns the
/// time and the last state.
pub fn time_steps<B: Backend, S>(
    mut state: S,
    warmup: u64,
    iters: u64,
    device: &B::Device,
    mut step: impl FnMut(S) -> S,
) -> (Duration, S) {
    for _ in 0..warmup {
        state = step(state);
    }
    B::sync(device);
    let start = Instant::now();
    for _ in 0..iters {
        state = step(state);
    }
    B::sync(device);
    (start.elapsed(), state)
}

/// Times `iters` training steps of `model` with RAdam (torch's defaults, lr 1e-3) after
/// `warmup` untimed ones, waiting for the device to finish before reading the clock.
pub fn time_training<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: M,
    warmup: u64,
    iters: u64,
    device: &B::Device,
    loss: impl Fn(&M) -> Tensor<B, 1>,
) -> Duration {
    let mut optimizer = RAdamConfig::new().init::<B, M>();
    let step = |model: M| {
        let grads = GradientsParams::from_grads(loss(&model).backward(), &model);
        optimizer.step(1e-3, model, grads)
    };
    time_steps::<B, M>(model, warmup, iters, device, step).0
}

fn ints<B: Backend>(values: Vec<i64>, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The CIFAR ResNet of `shapes` (16/32/64 channels, projection shortcuts) and a batch of random
/// images.
pub fn resnet<B: Backend>(
    shapes: &WorkloadSizes,
    algorithm: ConvAlgorithm,
    device: &B::Device,
) -> (ResNet<B>, ImageBatch<B>) {
    let model = CifarResNetConfig::new(shapes.resnet_depth)
        .with_conv_algorithm(algorithm)
        .init(device);
    let side = shapes.image_size;
    let images = Tensor::<B, 4>::random(
        [shapes.resnet_batch, 3, side, side],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let labels: Vec<i64> = (0..shapes.resnet_batch as i64).map(|i| i % 10).collect();
    let targets = Tensor::from_data(TensorData::new(labels, [shapes.resnet_batch]), device);
    (model, ImageBatch { images, targets })
}

/// The two-layer LSTM LM of `shapes` (full softmax, no dropout) and a batch of tokens that
/// starts its streams.
pub fn lstm_lm<B: Backend>(
    shapes: &WorkloadSizes,
    algorithm: LstmAlgorithm,
    device: &B::Device,
) -> (LstmLm<B>, LmBatch<B>) {
    let (batch, seq, vocab) = (shapes.lstm_batch, shapes.lstm_length, shapes.lstm_vocab);
    let model = LstmLmConfig::new(vocab)
        .with_d_embedding(shapes.lstm_width)
        .with_d_hidden(shapes.lstm_width)
        .with_dropout(0.0)
        .with_lstm_algorithm(algorithm)
        .init(device);
    let tokens: Vec<i64> = (0..batch * seq)
        .map(|i| (i * 7919 % vocab) as i64)
        .collect();
    let targets = tokens.iter().map(|t| (t + 1) % vocab as i64).collect();
    let batch = LmBatch {
        inputs: ints(tokens, [batch, seq], device),
        targets: ints(targets, [batch, seq], device),
        starts_stream: true,
    };
    (model, batch)
}

/// The `small` LSTM LM of `shapes.lstm_adaptive_vocab` words (its adaptive softmax, dropout 0.2,
/// as `lm_lstm --data-dir` builds it for a corpus of that vocabulary) and a batch of Zipfian
/// tokens ([`zipf_tokens`]), `lstm_batch` streams of `lstm_length`.
pub fn lstm_adaptive<B: Backend>(
    shapes: &WorkloadSizes,
    device: &B::Device,
) -> (LstmLm<B>, LmBatch<B>) {
    let (batch, seq, vocab) = (
        shapes.lstm_batch,
        shapes.lstm_length,
        shapes.lstm_adaptive_vocab,
    );
    let model = LstmLmConfig::small(vocab).init(device);
    let tokens = zipf_tokens(batch * seq + 1, vocab);
    let batch = LmBatch {
        inputs: ints(tokens[..batch * seq].to_vec(), [batch, seq], device),
        targets: ints(tokens[1..].to_vec(), [batch, seq], device),
        starts_stream: true,
    };
    (model, batch)
}

/// `count` word ids in `0..vocab` drawn from Zipf's law, `P(w) ∝ 1/(w + 1)`, deterministically:
/// the `i`-th is `⌊(vocab + 1)^u⌋ − 1` for `u = (7919·i mod 10007)/10007`. Most fall among the
/// frequent words, as in a real corpus (about 78 % in the first tenth of 30 k words);
/// `tools/cpu_speed_torch.py` draws the same ones.
pub fn zipf_tokens(count: usize, vocab: usize) -> Vec<i64> {
    (0..count)
        .map(|i| {
            let u = ((i * 7919) % 10007) as f64 / 10007.0;
            let word = ((vocab + 1) as f64).powf(u).floor() as i64 - 1;
            word.clamp(0, vocab as i64 - 1)
        })
        .collect()
}

/// The Transformer of `shapes` (feed-forward 4 × width, 4 heads, pre-norm, dropout 0.1, shared
/// embeddings, label smoothing 0.1) and a batch of source and target tokens.
pub fn transformer<B: Backend>(
    shapes: &WorkloadSizes,
    device: &B::Device,
) -> (TransformerNmt<B>, TranslationBatch<B>) {
    let (batch, len, vocab) = (
        shapes.transformer_batch,
        shapes.transformer_length,
        shapes.transformer_vocab,
    );
    let model = TransformerNmtConfig::tiny(vocab, 0)
        .with_d_model(shapes.transformer_width)
        .with_d_ff(4 * shapes.transformer_width)
        .with_encoder_layers(shapes.transformer_layers)
        .with_decoder_layers(shapes.transformer_layers)
        .init(device);
    let tokens: Vec<i64> = (0..batch * len)
        .map(|i| 4 + (i * 7919 % (vocab - 4)) as i64)
        .collect();
    let ids = ints(tokens, [batch, len], device);
    let padding = ids.clone().equal_elem(0);
    let batch = TranslationBatch {
        source: ids.clone(),
        source_padding: padding.clone(),
        target_input: ids.clone(),
        target_output: ids,
        target_padding: padding,
        target_tokens: batch * len,
    };
    (model, batch)
}

/// Touches the backend once, so that the first measurement does not pay for its lazy
/// initialisation.
pub fn warm_up_backend<B: Backend>(device: &B::Device) {
    let _ = Tensor::<B, 1>::random([8], Distribution::Default, device).into_data();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_items_follow_the_shapes() {
        for workload in Workload::ALL {
            assert_eq!(Workload::from_name(workload.name()), Some(workload));
        }
        assert_eq!(Workload::from_name("vgg"), None);
        assert_eq!(
            Workload::from_name("lstm-adaptive"),
            Some(Workload::LstmAdaptive)
        );
        assert_eq!(Workload::ResNet.items_per_step(&WorkloadSizes::README), 128);
        assert_eq!(
            Workload::Lstm.items_per_step(&WorkloadSizes::README),
            32 * 35
        );
        assert_eq!(
            Workload::Transformer.items_per_step(&WorkloadSizes::README),
            32 * 32
        );
    }

    #[test]
    fn the_adaptive_lm_has_pytorchs_parameter_count_and_zipfian_tokens() {
        use burn::module::Module;
        let shapes = WorkloadSizes::README;
        let (model, batch) = lstm_adaptive::<burn::backend::NdArray>(&shapes, &Default::default());
        // PyTorch's nn.Embedding(30000, 128), nn.LSTM(128, 256, 2) and
        // nn.AdaptiveLogSoftmaxWithLoss(256, 30000, [3000, 10000], div_value=4.0), counted by
        // tools/cpu_speed_torch.py's model.
        assert_eq!(model.num_params(), 6_318_592);
        assert_eq!(batch.inputs.dims(), [32, 35]);
        let tokens = zipf_tokens(10_000, 30_000);
        assert_eq!(&tokens[..4], &[0, 3490, 405, 46]);
        let head = tokens.iter().filter(|&&t| t < 3_000).count();
        // ln(3001)/ln(30001) of the draws fall in the first tenth: 0.7776.
        assert!(
            (7_700..7_850).contains(&head),
            "{head} of 10 000 in the head"
        );
        assert!(tokens.iter().all(|&t| (0..30_000).contains(&t)));
    }
}
