//! One optimizer step over a single parameter tensor of N elements on ndarray:
//! RAdam against Burn's Adam, in the same run. Reports time per step; divide by N for
//! ns/parameter/step (criterion's throughput line shows elements per second).
//!
//! `cargo bench --bench optimizer_step`
#![recursion_limit = "256"]

use std::time::{Duration, Instant};

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use radam_burn::RAdamConfig;
use radam_train::backend::NdArrayBackend;

type B = NdArrayBackend;

#[derive(Module, Debug)]
struct Flat<B: Backend> {
    weights: Param<Tensor<B, 1>>,
}

/// Times `iters` steps of `optimizer` after 10 warm-up steps (past RAdam's momentum phase).
fn time_steps<O: Optimizer<Flat<B>, B>>(mut optimizer: O, n: usize, iters: u64) -> Duration {
    let device = Default::default();
    let mut model = Flat {
        weights: Param::from_tensor(Tensor::<B, 1>::random(
            [n],
            Distribution::Normal(0.0, 1.0),
            &device,
        )),
    };
    let grad = Tensor::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend, 1>::random(
        [n],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut step = |model: Flat<B>| {
        let mut grads = GradientsParams::new();
        grads.register(model.weights.id, grad.clone());
        optimizer.step(1e-3, model, grads)
    };
    for _ in 0..10 {
        model = step(model);
    }
    let start = Instant::now();
    for _ in 0..iters {
        model = step(model);
    }
    let elapsed = start.elapsed();
    std::hint::black_box(model);
    elapsed
}

fn optimizer_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("optimizer_step_ndarray");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [100_000usize, 1_000_000] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("radam", n), &n, |b, &n| {
            b.iter_custom(|iters| time_steps(RAdamConfig::new().init(), n, iters))
        });
        group.bench_with_input(BenchmarkId::new("burn_adam", n), &n, |b, &n| {
            b.iter_custom(|iters| time_steps(AdamConfig::new().with_epsilon(1e-8).init(), n, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, optimizer_step);
criterion_main!(benches);
