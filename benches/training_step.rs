//! Training steps (forward, backward, RAdam step) of the three models on ndarray, with each
//! model's implementation choices side by side. Criterion's throughput line gives images or
//! tokens per second.
//!
//! `cargo bench --bench training_step` (filter with e.g. `-- resnet`).
#![recursion_limit = "256"]

mod common;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use radam_train::models::conv::ConvAlgorithm;
use radam_train::models::lstm::LstmAlgorithm;

use common::{LSTM_SHAPE, RESNET_BATCH, TRANSFORMER_SHAPE, time_training};

/// Untimed steps before each measurement.
const WARMUP_STEPS: u64 = 2;

fn resnet(c: &mut Criterion) {
    let mut group = c.benchmark_group("training_step_resnet20_batch128");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(RESNET_BATCH as u64));
    for algorithm in [ConvAlgorithm::Auto, ConvAlgorithm::Direct] {
        group.bench_function(BenchmarkId::new("conv", format!("{algorithm:?}")), |b| {
            b.iter_custom(|iters| {
                let (model, batch) = common::resnet20(algorithm);
                time_training(model, WARMUP_STEPS, iters, |model| {
                    model.forward_classification(batch.clone()).loss
                })
            })
        });
    }
    group.finish();
}

fn lstm(c: &mut Criterion) {
    let (batch, seq, _) = LSTM_SHAPE;
    let mut group = c.benchmark_group("training_step_lstm_2x256_v10k_32x35");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements((batch * seq) as u64));
    for algorithm in [LstmAlgorithm::Fused, LstmAlgorithm::Stepwise] {
        group.bench_function(BenchmarkId::new("lstm", format!("{algorithm:?}")), |b| {
            b.iter_custom(|iters| {
                let (model, batch) = common::lstm_lm(algorithm);
                time_training(model, WARMUP_STEPS, iters, |model| {
                    model.forward_stream(batch.clone()).loss
                })
            })
        });
    }
    group.finish();
}

fn transformer(c: &mut Criterion) {
    let (batch, len, _) = TRANSFORMER_SHAPE;
    let mut group = c.benchmark_group("training_step_transformer_3+3_d256_32x32");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements((batch * len) as u64));
    group.bench_function("transformer", |b| {
        b.iter_custom(|iters| {
            let (model, batch) = common::transformer();
            time_training(model, WARMUP_STEPS, iters, |model| {
                model.forward_translation(batch.clone()).loss
            })
        })
    });
    group.finish();
}

fn all(c: &mut Criterion) {
    common::warm_up_backend();
    resnet(c);
    lstm(c);
    transformer(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
