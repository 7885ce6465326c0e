//! Optimizer step speed on the adapter: fused RAdam, RAdam with tensor operations and Burn's Adam
//! on one flat parameter, against a kernel with the step's memory traffic and no arithmetic — the
//! floor any step of this traffic can reach on this adapter.

use burn::backend::Autodiff;
use burn::backend::Wgpu;
use burn::module::{AutodiffModule, Module, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use radam_burn::RAdamConfig;

use super::Report;
use crate::gpu_check::workloads::time_steps;

type G = Wgpu<f32, i32>;
type A = Autodiff<G>;
type Device = <G as Backend>::Device;

/// Bytes a step moves per `f32` parameter: reads θ, g, m, v; writes θ, m, v.
pub const BYTES_PER_PARAMETER: f64 = 28.0;

/// Parameter counts of the speed figures.
pub fn sizes(tiny: bool) -> Vec<usize> {
    if tiny {
        vec![100_000]
    } else {
        vec![10_000_000, 100_000_000]
    }
}

/// Untimed steps before each figure.
const UNTIMED: u64 = 3;

/// Timed steps per figure (after [`UNTIMED`] ones).
fn timed_steps(n: usize) -> u64 {
    if n >= 100_000_000 { 10 } else { 20 }
}

/// One flat parameter of `n` elements.
#[derive(Module, Debug)]
struct Flat<B: burn::tensor::backend::Backend> {
    w: Param<Tensor<B, 1>>,
}

/// Seconds per step of `optimizer` on a parameter of `n` elements with a fixed gradient.
fn seconds_per_step<O: Optimizer<Flat<A>, A>>(
    mut optimizer: O,
    n: usize,
    steps: u64,
    device: &Device,
) -> f64 {
    let model = Flat::<A> {
        w: Param::from_tensor(Tensor::random([n], Distribution::Normal(0.0, 1.0), device)),
    };
    let grad = Tensor::<G, 1>::random([n], Distribution::Normal(0.0, 1e-2), device);
    let step = |model: Flat<A>| {
        let mut grads = GradientsParams::new();
        grads.register(model.w.id, grad.clone());
        optimizer.step(1e-3, model, grads)
    };
    let (time, model) = time_steps::<G, _>(model, UNTIMED, steps, device, step);
    drop(model.valid());
    time.as_secs_f64() / steps as f64
}

/// Seconds per pass of the traffic kernel over `n` elements.
fn seconds_per_traffic_pass(n: usize, steps: u64, device: &Device) -> f64 {
    let normal = || Tensor::<G, 1>::random([n], Distribution::Normal(0.0, 1.0), device);
    let grad = normal();
    let pass = |[theta, m, v]: [Tensor<G, 1>; 3]| {
        radam_burn::tooling::memory_traffic_pass(theta, grad.clone(), m, v)
            .expect("the traffic kernel runs on wgpu")
    };
    let state = [normal(), normal(), normal()];
    let (time, _) = time_steps::<G, _>(state, UNTIMED, steps, device, pass);
    time.as_secs_f64() / steps as f64
}

/// The optimizers whose steps are timed.
const OPTIMIZERS: [&str; 3] = ["radam-fused", "radam-tensor-ops", "burn-adam"];

/// Seconds per step of the optimizer called `name` in [`OPTIMIZERS`].
fn seconds_per_step_of(name: &str, n: usize, steps: u64, device: &Device) -> f64 {
    match name {
        "radam-fused" => {
            seconds_per_step(RAdamConfig::new().init::<A, Flat<A>>(), n, steps, device)
        }
        "radam-tensor-ops" => {
            let radam = RAdamConfig::new().build().expect("valid").tensor_ops_only();
            seconds_per_step(
                OptimizerAdaptor::<_, Flat<A>, A>::from(radam),
                n,
                steps,
                device,
            )
        }
        "burn-adam" => seconds_per_step(AdamConfig::new().init::<A, Flat<A>>(), n, steps, device),
        other => unreachable!("not in OPTIMIZERS: {other}"),
    }
}

/// Measures every optimizer at `n` parameters: ns per parameter per step, and the fraction of the
/// bandwidth the traffic kernel reaches.
pub fn measure_size(n: usize, device: &Device, report: &Report) {
    let steps = timed_steps(n);
    let floor = seconds_per_traffic_pass(n, steps, device);
    let per_parameter = |seconds: f64| seconds * 1e9 / n as f64;
    report.figure(
        format!("bandwidth-n{n}"),
        BYTES_PER_PARAMETER * n as f64 / floor / 1e9,
        "GB/s",
    );
    report.figure(format!("step-floor-n{n}"), per_parameter(floor), "ns/param");
    for name in OPTIMIZERS {
        let seconds = seconds_per_step_of(name, n, steps, device);
        report.figure(
            format!("step-{name}-n{n}"),
            per_parameter(seconds),
            "ns/param",
        );
        report.figure(
            format!("step-{name}-n{n}-of-bandwidth"),
            floor / seconds,
            "fraction",
        );
    }
}
