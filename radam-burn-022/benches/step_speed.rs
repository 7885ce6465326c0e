//! Nanoseconds per parameter of one optimizer step on Burn 0.22: RAdam's fused pass (what
//! `RAdam` runs on flex and, with the `wgpu` feature, on wgpu), RAdam as Burn tensor operations
//! (what it runs on every other backend; radam-core's `tensor_op_step!`), and Burn 0.22's own
//! Adam. On flex always; on wgpu with the `wgpu` feature where wgpu finds an adapter.
//!
//! ```sh
//! cargo bench -p radam-burn-022 --bench step_speed
//! cargo bench -p radam-burn-022 --bench step_speed --features wgpu
//! ```
//!
//! Each figure is the median of 15 timed steps after 3 untimed ones, on one parameter tensor of
//! the given size (the state carried from step to step, as in training).

use std::time::Instant;

use burn::optim::{AdamConfig, Optimizer};
use burn::tensor::{Device, Tensor, TensorData};
use radam_burn_022::RAdamConfig;
use radam_core::StepPlan;

const WARMUP: usize = 3;
const TIMED: usize = 15;

fn tensor(n: usize, salt: usize, device: &Device) -> Tensor<1> {
    let values = (0..n)
        .map(|i| ((i * 31 + salt * 17) % 1000) as f32 / 1000.0 - 0.5)
        .collect::<Vec<_>>();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// The median nanoseconds per parameter of `step` over [`TIMED`] calls.
fn median_ns_per_param(n: usize, mut step: impl FnMut()) -> f64 {
    for _ in 0..WARMUP {
        step();
    }
    let mut times: Vec<f64> = (0..TIMED)
        .map(|_| {
            let start = Instant::now();
            step();
            start.elapsed().as_secs_f64() * 1e9 / n as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[TIMED / 2]
}

/// Times `optimizer`'s per-tensor step on `n` parameters.
fn time_optimizer<O: Optimizer>(optimizer: &O, n: usize, device: &Device) -> f64 {
    let grad = tensor(n, 1, device);
    let mut theta = Some(tensor(n, 2, device));
    let mut state = None;
    median_ns_per_param(n, || {
        let (next, next_state) =
            optimizer.step(1e-3, theta.take().unwrap(), grad.clone(), state.take());
        // The step's every output done (flex runs eagerly; wgpu and its fusion wait here).
        device.sync().expect("the device runs the step");
        theta = Some(next);
        state = next_state;
    })
}

/// Times the tensor-op step (radam-core's `tensor_op_step!`) on `n` parameters.
fn time_tensor_ops(n: usize, device: &Device) -> f64 {
    let hyper = RAdamConfig::new().fields().hyper();
    let grad = tensor(n, 1, device);
    let mut theta = Some(tensor(n, 2, device));
    let mut moments: Option<(Tensor<1>, Tensor<1>)> = None;
    let mut time = 0;
    median_ns_per_param(n, || {
        time += 1;
        let plan = StepPlan::new(&hyper, time, 1e-3);
        let (next, m, v) =
            radam_core::tensor_op_step!(&plan, theta.take().unwrap(), grad.clone(), moments.take());
        device.sync().expect("the device runs the step");
        theta = Some(next);
        moments = Some((m, v));
    })
}

/// Prints the three figures on `device` for each size in `sizes`.
fn table(label: &str, device: &Device, sizes: &[usize]) {
    let radam = RAdamConfig::new().build().expect("valid config");
    let adam = AdamConfig::new().build();
    println!("ns per parameter, one step on {label} (median of {TIMED}):");
    let kernel = radam_burn_022::fused_kernel_on(device).unwrap_or("none: tensor operations");
    println!("RAdam's fused kernel there: {kernel}");
    println!(
        "{:>12} {:>12} {:>12} {:>12}",
        "parameters", "RAdam", "RAdam ops", "Burn Adam"
    );
    for &n in sizes {
        let radam = time_optimizer(&radam, n, device);
        let ops = time_tensor_ops(n, device);
        let burn_adam = time_optimizer(&adam, n, device);
        println!("{n:>12} {radam:>12.2} {ops:>12.2} {burn_adam:>12.2}");
    }
}

fn main() {
    // "RAdam" is what `RAdam` runs there: the fused pass on flex and on wgpu.
    table("flex", &Device::flex(), &[100_000, 1_000_000, 10_000_000]);
    #[cfg(feature = "wgpu")]
    match Device::wgpu_options().init() {
        Ok(device) => table("wgpu", &device, &[100_000, 1_000_000, 10_000_000]),
        Err(error) => println!("wgpu: no adapter ({error})"),
    }
}
