//! Training steps (forward, backward, RAdam step) of the three models on ndarray, with each
//! model's implementation choices side by side. Criterion's throughput line gives images or
//! tokens per second.
//!
//! `cargo bench --bench training_step` (filter with e.g. `-- resnet`).
#![recursion_limit = "256"]

use std::time::Duration;

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use radam_train::backend::NdArrayBackend as B;
use radam_train::gpu_check::workloads::{self, Workload, WorkloadSizes, time_training};
use radam_train::models::conv::ConvAlgorithm;
use radam_train::models::lstm::LstmAlgorithm;

const SHAPES: WorkloadSizes = WorkloadSizes::README;

/// Untimed steps before each measurement.
const WARMUP_STEPS: u64 = 2;

/// The benchmark group `name` of `workload`'s steps: ten samples of `seconds` each, with its
/// images or tokens per step as the throughput.
fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    workload: Workload,
    seconds: u64,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(seconds));
    group.throughput(Throughput::Elements(workload.items_per_step(&SHAPES) as u64));
    group
}

/// Times the training step, `loss` then RAdam, of the model and batch that `setup` builds.
fn bench_step<M: AutodiffModule<B>, T: Clone>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    setup: impl Fn(&<B as burn::tensor::backend::Backend>::Device) -> (M, T),
    loss: impl Fn(&M, T) -> Tensor<B, 1>,
) {
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let device = Default::default();
            let (model, batch) = setup(&device);
            time_training(model, WARMUP_STEPS, iters, &device, |model| {
                loss(model, batch.clone())
            })
        })
    });
}

fn resnet(c: &mut Criterion) {
    let mut group = group(c, "training_step_resnet20_batch128", Workload::ResNet, 20);
    for algorithm in [ConvAlgorithm::Auto, ConvAlgorithm::Direct] {
        bench_step(
            &mut group,
            BenchmarkId::new("conv", format!("{algorithm:?}")),
            |device| workloads::resnet::<B>(&SHAPES, algorithm, device),
            |model, batch| model.forward_classification(batch).loss,
        );
    }
    group.finish();
}

fn lstm(c: &mut Criterion) {
    let mut group = group(c, "training_step_lstm_2x256_v10k_32x35", Workload::Lstm, 10);
    for algorithm in [LstmAlgorithm::Fused, LstmAlgorithm::Stepwise] {
        bench_step(
            &mut group,
            BenchmarkId::new("lstm", format!("{algorithm:?}")),
            |device| workloads::lstm_lm::<B>(&SHAPES, algorithm, device),
            |model, batch| model.forward_stream(batch).loss,
        );
    }
    group.finish();
}

fn transformer(c: &mut Criterion) {
    let name = "training_step_transformer_3+3_d256_32x32";
    let mut group = group(c, name, Workload::Transformer, 10);
    bench_step(
        &mut group,
        BenchmarkId::from_parameter("transformer"),
        |device| workloads::transformer::<B>(&SHAPES, device),
        |model, batch| model.forward_translation(batch).loss,
    );
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
