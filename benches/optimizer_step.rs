//! One optimizer step over a single parameter tensor of N elements: fused RAdam, RAdam with
//! Burn tensor operations, and Burn's Adam, in the same run — on ndarray, and on wgpu when a
//! Vulkan adapter exists. Criterion reports the time per step; ns/parameter/step is that time
//! divided by N (its throughput line gives parameters per second).
//!
//! `cargo bench --bench optimizer_step` (add `-- ndarray` or `-- wgpu` to pick one backend).
#![recursion_limit = "256"]

use std::time::Duration;

use burn::module::{Module, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use radam_burn::RAdamConfig;
use radam_train::backend::{NdArrayBackend, WgpuBackend, wgpu_device};
use radam_train::gpu_check::workloads::time_steps;

#[derive(Module, Debug)]
struct Flat<B: Backend> {
    weights: Param<Tensor<B, 1>>,
}

/// Times `iters` steps after 10 warm-up steps (past RAdam's momentum phase).
fn time_optimizer<B: AutodiffBackend, O: Optimizer<Flat<B>, B>>(
    mut optimizer: O,
    n: usize,
    iters: u64,
    device: &B::Device,
) -> Duration {
    let model = Flat {
        weights: Param::from_tensor(Tensor::<B, 1>::random(
            [n],
            Distribution::Normal(0.0, 1.0),
            device,
        )),
    };
    let grad = Tensor::<B::InnerBackend, 1>::random([n], Distribution::Normal(0.0, 1.0), device);
    let step = |model: Flat<B>| {
        let mut grads = GradientsParams::new();
        grads.register(model.weights.id, grad.clone());
        optimizer.step(1e-3, model, grads)
    };
    let (elapsed, model) = time_steps::<B, _>(model, 10, iters, device, step);
    std::hint::black_box(model);
    elapsed
}

fn bench_backend<B: AutodiffBackend>(
    c: &mut Criterion,
    name: &str,
    device: B::Device,
    sizes: &[usize],
) {
    let mut group = c.benchmark_group(format!("optimizer_step_{name}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for &n in sizes {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("radam_fused", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let optimizer: OptimizerAdaptor<_, Flat<B>, B> = RAdamConfig::new().init();
                time_optimizer(optimizer, n, iters, &device)
            })
        });
        group.bench_with_input(BenchmarkId::new("radam_tensor_ops", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let radam = RAdamConfig::new().build().unwrap().tensor_ops_only();
                let optimizer: OptimizerAdaptor<_, Flat<B>, B> = OptimizerAdaptor::from(radam);
                time_optimizer(optimizer, n, iters, &device)
            })
        });
        group.bench_with_input(BenchmarkId::new("burn_adam", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let optimizer: OptimizerAdaptor<_, Flat<B>, B> =
                    AdamConfig::new().with_epsilon(1e-8).init();
                time_optimizer(optimizer, n, iters, &device)
            })
        });
    }
    group.finish();
}

fn optimizer_step(c: &mut Criterion) {
    bench_backend::<NdArrayBackend>(
        c,
        "ndarray",
        Default::default(),
        &[100_000, 1_000_000, 10_000_000],
    );
    match wgpu_device() {
        Ok(device) => {
            bench_backend::<WgpuBackend>(c, "wgpu", device, &[100_000, 1_000_000, 10_000_000])
        }
        Err(error) => eprintln!("skipping the wgpu benchmarks: {error}"),
    }
}

criterion_group!(benches, optimizer_step);
criterion_main!(benches);
