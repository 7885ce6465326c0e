//! The training-step workloads of the benchmarks: the three models at the README's shapes on
//! ndarray, each with a fixed batch, and the timed loop (forward, backward, RAdam step).
//! Shared by `training_step` (criterion, implementation choices side by side) and `step_speed`
//! (one model per process, for `tools/cpu-speed-vs-torch`).

use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use radam_burn::RAdamConfig;
use radam_train::backend::NdArrayBackend;
use radam_train::datasets::{ImageBatch, LmBatch, TranslationBatch};
use radam_train::models::conv::ConvAlgorithm;
use radam_train::models::lstm::LstmAlgorithm;
use radam_train::models::lstm_lm::{LstmLm, LstmLmConfig};
use radam_train::models::resnet::{CifarResNetConfig, ResNet};
use radam_train::models::transformer::{TransformerNmt, TransformerNmtConfig};

pub type B = NdArrayBackend;

/// ResNet-20 on a batch of 128 CIFAR-sized images: the images per step.
pub const RESNET_BATCH: usize = 128;
/// LSTM LM 2 × 256, vocabulary 10 k: batch × sequence length, the tokens per step.
pub const LSTM_SHAPE: (usize, usize, usize) = (32, 35, 10_000);
/// Transformer 3 + 3 layers, d 256: batch × length and vocabulary; batch × length target tokens
/// per step.
pub const TRANSFORMER_SHAPE: (usize, usize, usize) = (32, 32, 8_000);

/// Times `iters` training steps of `model` with RAdam (torch's defaults, lr 1e-3) after
/// `warmup` untimed ones.
pub fn time_training<M: AutodiffModule<B>>(
    mut model: M,
    warmup: u64,
    iters: u64,
    loss: impl Fn(&M) -> Tensor<B, 1>,
) -> Duration {
    let mut optimizer = RAdamConfig::new().init::<B, M>();
    let mut step = |model: M| {
        let grads = GradientsParams::from_grads(loss(&model).backward(), &model);
        optimizer.step(1e-3, model, grads)
    };
    for _ in 0..warmup {
        model = step(model);
    }
    let start = Instant::now();
    for _ in 0..iters {
        model = step(model);
    }
    start.elapsed()
}

fn ints(values: Vec<i64>, shape: [usize; 2]) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// ResNet-20 (16/32/64 channels, projection shortcuts) and a batch of random 3×32×32 images.
pub fn resnet20(algorithm: ConvAlgorithm) -> (ResNet<B>, ImageBatch<B>) {
    let device = Default::default();
    let model = CifarResNetConfig::new(20)
        .with_conv_algorithm(algorithm)
        .init(&device);
    let images = Tensor::<B, 4>::random(
        [RESNET_BATCH, 3, 32, 32],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let labels: Vec<i64> = (0..RESNET_BATCH as i64).map(|i| i % 10).collect();
    let targets = Tensor::from_data(TensorData::new(labels, [RESNET_BATCH]), &device);
    (model, ImageBatch { images, targets })
}

/// The 2 × 256 LSTM LM (256-d embeddings, full softmax, no dropout) and a batch of tokens
/// that starts its streams.
pub fn lstm_lm(algorithm: LstmAlgorithm) -> (LstmLm<B>, LmBatch<B>) {
    let (batch, seq, vocab) = LSTM_SHAPE;
    let model = LstmLmConfig::new(vocab)
        .with_d_embedding(256)
        .with_d_hidden(256)
        .with_dropout(0.0)
        .with_lstm_algorithm(algorithm)
        .init(&Default::default());
    let tokens: Vec<i64> = (0..batch * seq)
        .map(|i| (i * 7919 % vocab) as i64)
        .collect();
    let targets = tokens.iter().map(|t| (t + 1) % vocab as i64).collect();
    let batch = LmBatch {
        inputs: ints(tokens, [batch, seq]),
        targets: ints(targets, [batch, seq]),
        starts_stream: true,
    };
    (model, batch)
}

/// The 3 + 3-layer Transformer (d 256, feed-forward 1024, 4 heads, pre-norm, dropout 0.1,
/// shared embeddings, label smoothing 0.1) and a batch of source and target tokens.
pub fn transformer() -> (TransformerNmt<B>, TranslationBatch<B>) {
    let (batch, len, vocab) = TRANSFORMER_SHAPE;
    let model = TransformerNmtConfig::tiny(vocab, 0)
        .with_d_model(256)
        .with_d_ff(1024)
        .with_encoder_layers(3)
        .with_decoder_layers(3)
        .init(&Default::default());
    let tokens: Vec<i64> = (0..batch * len)
        .map(|i| 4 + (i * 7919 % (vocab - 4)) as i64)
        .collect();
    let ids = ints(tokens, [batch, len]);
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

/// Touches the backend once, so that the first measurement does not pay for lazy
/// initialisation.
pub fn warm_up_backend() {
    let _ = Tensor::<B, 1>::random([8], Distribution::Default, &Default::default()).into_data();
}
