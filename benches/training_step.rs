//! Training steps (forward, backward, RAdam step) of the three models on ndarray, with each
//! model's implementation choices side by side. Criterion's throughput line gives images or
//! tokens per second.
//!
//! `cargo bench --bench training_step` (filter with e.g. `-- resnet`).
#![recursion_limit = "256"]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use radam_train::backend::NdArrayBackend as B;
use radam_train::models::conv::ConvAlgorithm;
use radam_train::models::lstm::LstmAlgorithm;
use radam_train::workloads::{self, Shapes, Workload, time_training};

const SHAPES: Shapes = Shapes::README;

/// Untimed steps before each measurement.
const WARMUP_STEPS: u64 = 2;

fn resnet(c: &mut Criterion) {
    let mut group = c.benchmark_group("training_step_resnet20_batch128");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(
        Workload::ResNet.items_per_step(&SHAPES) as u64,
    ));
    for algorithm in [ConvAlgorithm::Auto, ConvAlgorithm::Direct] {
        group.bench_function(BenchmarkId::new("conv", format!("{algorithm:?}")), |b| {
            b.iter_custom(|iters| {
                let device = Default::default();
                let (model, batch) = workloads::resnet::<B>(&SHAPES, algorithm, &device);
                time_training(model, WARMUP_STEPS, iters, &device, |model| {
                    model.forward_classification(batch.clone()).loss
                })
            })
        });
    }
    group.finish();
}

fn lstm(c: &mut Criterion) {
    let mut group = c.benchmark_group("training_step_lstm_2x256_v10k_32x35");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(
        Workload::Lstm.items_per_step(&SHAPES) as u64
    ));
    for algorithm in [LstmAlgorithm::Fused, LstmAlgorithm::Stepwise] {
        group.bench_function(BenchmarkId::new("lstm", format!("{algorithm:?}")), |b| {
            b.iter_custom(|iters| {
                let device = Default::default();
                let (model, batch) = workloads::lstm_lm::<B>(&SHAPES, algorithm, &device);
                time_training(model, WARMUP_STEPS, iters, &device, |model| {
                    model.forward_stream(batch.clone()).loss
                })
            })
        });
    }
    group.finish();
}

fn transformer(c: &mut Criterion) {
    let mut group = c.benchmark_group("training_step_transformer_3+3_d256_32x32");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(
        Workload::Transformer.items_per_step(&SHAPES) as u64,
    ));
    group.bench_function("transformer", |b| {
        b.iter_custom(|iters| {
            let device = Default::default();
            let (model, batch) = workloads::transformer::<B>(&SHAPES, &device);
            time_training(model, WARMUP_STEPS, iters, &device, |model| {
                model.forward_translation(batch.clone()).loss
            })
        })
    });
    group.finish();
}

fn all(c: &mut Criterion) {
    workloads::warm_up_backend::<B>(&Default::default());
    resnet(c);
    lstm(c);
    transformer(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
