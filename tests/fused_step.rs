//! The fused RAdam kernels (ndarray, wgpu) against the tensor-operation step, for every
//! configuration knob, on random data of several scales.
#![recursion_limit = "256"]

mod common;

use burn::backend::{NdArray, Wgpu};
use burn::optim::SimpleOptimizer;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use radam_burn::{RAdam, RAdamConfig, RAdamState};

fn configs() -> Vec<(&'static str, RAdamConfig)> {
    vec![
        ("defaults", RAdamConfig::new()),
        ("l2 decay", RAdamConfig::new().with_weight_decay(0.1)),
        (
            "decoupled decay",
            RAdamConfig::new()
                .with_weight_decay(0.1)
                .with_decoupled_weight_decay(true),
        ),
        ("paper", RAdamConfig::paper().with_weight_decay(0.01)),
        (
            "official (skip)",
            RAdamConfig::official().with_weight_decay(0.01),
        ),
        ("threshold 8", RAdamConfig::new().with_threshold(8.0)),
        ("beta_2 0.9999", RAdamConfig::new().with_beta_2(0.9999)),
        (
            "beta_2 0.5 (never rectifies)",
            RAdamConfig::new().with_beta_2(0.5),
        ),
        (
            "epsilon 0",
            RAdamConfig::new().with_epsilon(0.0).with_beta_1(0.0),
        ),
    ]
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

/// `|a − b| ≤ 1e-6 · max(|a|, |b|)`; returns the largest relative difference.
fn compare(fused: &[f32], reference: &[f32], what: &str) -> f32 {
    let mut worst = 0.0_f32;
    for (i, (a, b)) in fused.iter().zip(reference).enumerate() {
        if a.is_nan() && b.is_nan() {
            continue; // ε = 0 with a zero gradient is 0/0 on both paths, as in PyTorch.
        }
        let scale = a.abs().max(b.abs());
        let difference = (a - b).abs();
        assert!(
            difference <= 1e-6 * scale,
            "{what}, element {i}: fused {a:e} vs tensor ops {b:e}"
        );
        if scale > 0.0 {
            worst = worst.max(difference / scale);
        }
    }
    worst
}

fn fused_matches_tensor_ops<B: Backend>(device: &B::Device, len: usize) -> f32 {
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
                worst = worst.max(compare(&to_vec(&a), &to_vec(&b), &format!("{what}: θ")));
                let (sa, sb) = (sa.unwrap(), sb.unwrap());
                assert_eq!(sa.time, sb.time);
                worst = worst.max(compare(
                    &to_vec(&sa.m),
                    &to_vec(&sb.m),
                    &format!("{what}: m"),
                ));
                worst = worst.max(compare(
                    &to_vec(&sa.v),
                    &to_vec(&sb.v),
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
        radam_burn::fused_kernel_for::<NdArray<f32>>(),
        Some("ndarray")
    );
    assert_eq!(
        radam_burn::fused_kernel_for::<Wgpu<f32, i32>>(),
        Some("wgpu")
    );
    // The autodiff wrapper is not what the optimizer sees (it steps the inner backend).
    assert_eq!(
        radam_burn::fused_kernel_for::<burn::backend::Autodiff<NdArray<f32>>>(),
        None
    );
}

#[test]
fn fused_ndarray_step_matches_tensor_operations() {
    // Small (one chunk) and large enough to be split across threads.
    for len in [1, 1031, 200_003] {
        let worst = fused_matches_tensor_ops::<NdArray<f32>>(&Default::default(), len);
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
    for len in [1, 1031, 70_000] {
        let worst = fused_matches_tensor_ops::<Wgpu<f32, i32>>(&device, len);
        println!("wgpu, {len} parameters: largest relative difference {worst:e}");
    }
}
