//! The fused RAdam kernels (ndarray, wgpu) against the tensor-operation step, for every
//! configuration knob, on random data of several scales.
#![recursion_limit = "256"]

mod common;

use burn::backend::{NdArray, Wgpu};
use burn::optim::SimpleOptimizer;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use radam_burn::{RAdam, RAdamConfig, RAdamState};
use radam_core::reference_data::assert_fused_matches;

fn configs() -> Vec<(&'static str, RAdamConfig)> {
    let configurations = radam_core::reference_data::kernel_configurations();
    let config = |(name, fields)| (name, RAdamConfig::from_fields(&fields));
    configurations.into_iter().map(config).collect()
}

/// Gradients of one scale: `scale · N(0, 1)`, with every seventh element exactly zero.
fn gradient<B: Backend>(values: &[f32], scale: f32, device: &B::Device) -> Tensor<B, 1> {
    let data: Vec<f32> = values
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 7 == 3 { 0.0 } else { v * scale })
        .collect();
    Tensor::from_data(TensorData::new(data, [values.len()]), device)
}

fn to_vec<B: Backend>(tensor: &Tensor<B, 1>) -> Vec<f32> {
    tensor.to_data().to_vec().unwrap()
}

fn fused_matches_tensor_ops<B: Backend>(device: &B::Device, len: usize, tolerance: f32) -> f32 {
    let mut worst = 0.0_f32;
    let seed_values: Vec<Vec<f32>> = (0..12)
        .map(|_| {
            Tensor::<NdArray, 1>::random([len], Distribution::Normal(0.0, 1.0), &Default::default())
        })
        .map(|t| t.into_data().to_vec().unwrap())
        .collect();
    let theta0: Vec<f32> =
        Tensor::<NdArray, 1>::random([len], Distribution::Normal(0.0, 1.0), &Default::default())
            .into_data()
            .to_vec()
            .unwrap();
    for (name, config) in configs() {
        for scale in [1.0_f32, 1e-6, 1e3, 0.0] {
            let fused: RAdam = config.build().unwrap();
            let reference: RAdam = config.build().unwrap().tensor_ops_only();
            let mut theta_a =
                Tensor::<B, 1>::from_data(TensorData::new(theta0.clone(), [len]), device);
            let mut theta_b = theta_a.clone();
            let (mut state_a, mut state_b): (Option<RAdamState<B, 1>>, Option<RAdamState<B, 1>>) =
                (None, None);
            // 12 steps: the momentum phase and the first rectified steps, with a changing lr.
            for (step, values) in seed_values.iter().enumerate() {
                let lr = 1e-2 * (1.0 + step as f64 / 10.0);
                let grad = gradient::<B>(values, scale, device);
                let (a, sa) = fused.step(lr, theta_a, grad.clone(), state_a);
                let (b, sb) = reference.step(lr, theta_b, grad, state_b);
                let what = format!(
                    "{name}, gradient scale {scale}, step {}, len {len}",
                    step + 1
                );
                worst = worst.max(assert_fused_matches(
                    &to_vec(&a),
                    &to_vec(&b),
                    tolerance,
                    &format!("{what}: θ"),
                ));
                let (sa, sb) = (sa.unwrap(), sb.unwrap());
                assert_eq!(sa.time, sb.time);
                worst = worst.max(assert_fused_matches(
                    &to_vec(&sa.m),
                    &to_vec(&sb.m),
                    tolerance,
                    &format!("{what}: m"),
                ));
                worst = worst.max(assert_fused_matches(
                    &to_vec(&sa.v),
                    &to_vec(&sb.v),
                    tolerance,
                    &format!("{what}: v"),
                ));
                (theta_a, theta_b, state_a, state_b) = (a, b, Some(sa), Some(sb));
            }
        }
    }
    worst
}

#[test]
fn the_fused_kernels_are_chosen_by_backend() {
    assert_eq!(
        radam_burn::tooling::fused_kernel_for::<NdArray<f32>>(),
        Some("ndarray")
    );
    assert_eq!(
        radam_burn::tooling::fused_kernel_for::<Wgpu<f32, i32>>(),
        Some("wgpu")
    );
    // The autodiff wrapper is not what the optimizer sees (it steps the inner backend).
    assert_eq!(
        radam_burn::tooling::fused_kernel_for::<burn::backend::Autodiff<NdArray<f32>>>(),
        None
    );
}

#[test]
fn fused_ndarray_step_matches_tensor_operations() {
    // Small (one chunk) and large enough to be split across threads: the same operations in the
    // same order on the CPU, so the very same bits.
    for len in [1, 1031, 200_003] {
        let worst = fused_matches_tensor_ops::<NdArray<f32>>(&Default::default(), len, 0.0);
        println!("ndarray, {len} parameters: largest relative difference {worst:e}");
    }
}

#[test]
fn fused_wgpu_step_matches_tensor_operations() {
    let Some(device) = common::wgpu_device_or_skip("fused_wgpu_step_matches_tensor_operations")
    else {
        return;
    };
    // 70 000 is a multiple of 4: the kernel then works on lines of four elements.
    // A shader compiler may contract a·b + c into one rounding: 1e-6 relative there.
    for len in [1, 1031, 70_000] {
        let worst = fused_matches_tensor_ops::<Wgpu<f32, i32>>(&device, len, 1e-6);
        println!("wgpu, {len} parameters: largest relative difference {worst:e}");
    }
}

#[test]
fn the_wgpu_kernel_updates_every_element_of_a_tensor_of_2_pow_24_plus_1() {
    let Some(device) = common::wgpu_device_or_skip(
        "the_wgpu_kernel_updates_every_element_of_a_tensor_of_2_pow_24_plus_1",
    ) else {
        return;
    };
    // An odd length (one element per invocation) past 2^24, where an f32 count of invocations
    // rounds down and the last element would be left out.
    let len = (1 << 24) + 1;
    // Uploaded, not filled by a kernel: Burn 0.19's own fill kernels size their launch in f32
    // too and leave the last element of such a tensor at 0.
    let ones = || {
        Tensor::<Wgpu<f32, i32>, 1>::from_data(TensorData::new(vec![1.0_f32; len], [len]), &device)
    };
    let (theta, grad) = (ones(), ones());
    let radam: RAdam = RAdamConfig::new().build().unwrap();
    // First step: momentum, θ − lr·m̂_1 = 1 − 0.5 = 0.5 for every element.
    let (theta, state) = radam.step(0.5, theta, grad, None);
    let values = to_vec(&theta);
    assert_eq!(values.len(), len);
    let unchanged = values.iter().filter(|&&value| value != 0.5).count();
    assert_eq!(
        unchanged,
        0,
        "{unchanged} elements not updated; the last is {}",
        values[len - 1]
    );
    let state = state.unwrap();
    assert_eq!(to_vec(&state.v)[len - 1], (1.0 - 0.999_f64) as f32);
}
