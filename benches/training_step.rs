//! Training steps (forward, backward, RAdam step) of the three models on ndarray, with each
//! model's implementation choices side by side. Criterion's throughput line gives images or
//! tokens per second.
//!
//! `cargo bench --bench training_step` (filter with e.g. `-- resnet`).
#![recursion_limit = "256"]

use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use radam_burn::RAdamConfig;
use radam_train::backend::NdArrayBackend;
use radam_train::datasets::{ImageBatch, LmBatch, TranslationBatch};
use radam_train::models::conv::ConvAlgorithm;
use radam_train::models::lstm::LstmAlgorithm;
use radam_train::models::lstm_lm::{LstmLm, LstmLmConfig};
use radam_train::models::resnet::{CifarResNetConfig, ResNet};
use radam_train::models::transformer::{TransformerNmt, TransformerNmtConfig};

type B = NdArrayBackend;

/// Times `iters` training steps after two warm-up steps.
fn time_training<M: AutodiffModule<B>>(
    mut model: M,
    iters: u64,
    loss: impl Fn(&M) -> Tensor<B, 1>,
) -> Duration {
    let mut optimizer = RAdamConfig::new().init::<B, M>();
    let mut step = |model: M| {
        let grads = GradientsParams::from_grads(loss(&model).backward(), &model);
        optimizer.step(1e-3, model, grads)
    };
    for _ in 0..2 {
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

fn resnet(c: &mut Criterion) {
    let device = Default::default();
    let batch = 128;
    let mut group = c.benchmark_group("training_step_resnet20_batch128");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(batch as u64));
    for algorithm in [ConvAlgorithm::Auto, ConvAlgorithm::Direct] {
        group.bench_function(BenchmarkId::new("conv", format!("{algorithm:?}")), |b| {
            b.iter_custom(|iters| {
                let model: ResNet<B> = CifarResNetConfig::new(20)
                    .with_conv_algorithm(algorithm)
                    .init(&device);
                let images = Tensor::<B, 4>::random(
                    [batch, 3, 32, 32],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                );
                let targets = Tensor::<B, 1, Int>::from_data(
                    TensorData::new(
                        (0..batch as i64).map(|i| i % 10).collect::<Vec<_>>(),
                        [batch],
                    ),
                    &device,
                );
                let batch = ImageBatch { images, targets };
                time_training(model, iters, |model| {
                    model.forward_classification(batch.clone()).loss
                })
            })
        });
    }
    group.finish();
}

fn lstm(c: &mut Criterion) {
    let device = Default::default();
    let (batch, seq, vocab) = (32, 35, 10_000);
    let mut group = c.benchmark_group("training_step_lstm_2x256_v10k_32x35");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements((batch * seq) as u64));
    for algorithm in [LstmAlgorithm::Fused, LstmAlgorithm::Stepwise] {
        group.bench_function(BenchmarkId::new("lstm", format!("{algorithm:?}")), |b| {
            b.iter_custom(|iters| {
                let model: LstmLm<B> = LstmLmConfig::new(vocab)
                    .with_d_embedding(256)
                    .with_d_hidden(256)
                    .with_dropout(0.0)
                    .with_lstm_algorithm(algorithm)
                    .init(&device);
                let tokens: Vec<i64> = (0..batch * seq)
                    .map(|i| (i * 7919 % vocab) as i64)
                    .collect();
                let batch = LmBatch {
                    inputs: ints(tokens.clone(), [batch, seq]),
                    targets: ints(
                        tokens.iter().map(|t| (t + 1) % vocab as i64).collect(),
                        [batch, seq],
                    ),
                    starts_stream: true,
                };
                time_training(model, iters, |model| {
                    model.forward_stream(batch.clone()).loss
                })
            })
        });
    }
    group.finish();
}

fn transformer(c: &mut Criterion) {
    let device = Default::default();
    let (batch, len, vocab) = (32, 32, 8_000);
    let mut group = c.benchmark_group("training_step_transformer_3+3_d256_32x32");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements((batch * len) as u64));
    group.bench_function("transformer", |b| {
        b.iter_custom(|iters| {
            let model: TransformerNmt<B> = TransformerNmtConfig::tiny(vocab, 0)
                .with_d_model(256)
                .with_d_ff(1024)
                .with_encoder_layers(3)
                .with_decoder_layers(3)
                .init(&device);
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
            time_training(model, iters, |model| {
                model.forward_translation(batch.clone()).loss
            })
        })
    });
    group.finish();
}

fn random_warmup() {
    // Touch the backend once so the first benchmark does not pay for lazy initialisation.
    let _ = Tensor::<B, 1>::random([8], Distribution::Default, &Default::default()).into_data();
}

fn all(c: &mut Criterion) {
    random_warmup();
    resnet(c);
    lstm(c);
    transformer(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
