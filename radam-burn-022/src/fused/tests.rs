//! The fused steps against the tensor-op step on the same device: the same bits on flex (the same
//! operations in the same order on the CPU), within 1e-6 relative on wgpu (a shader compiler may
//! contract `a·b + c` into one rounding).

use burn::tensor::{DType, FloatDType, TensorData};
use radam_core::Hyper;
use radam_core::reference_data::assert_fused_matches;

use super::*;
use crate::RAdamConfig;
use crate::test_devices::wgpu_device;

/// A device with a fused kernel, and how far its step may differ from the tensor-op step's
/// (relative; 0 for the same bits).
struct Case {
    name: &'static str,
    device: Device,
    tolerance: f32,
}

/// flex, and wgpu where the crate has the kernel and the machine an adapter.
fn devices() -> Vec<Case> {
    let mut cases = vec![Case {
        name: "flex",
        device: Device::flex(),
        tolerance: 0.0,
    }];
    cases.extend(wgpu_device().map(|device| Case {
        name: "wgpu",
        device,
        tolerance: 1e-6,
    }));
    cases
}

fn configs() -> Vec<(&'static str, RAdamConfig)> {
    let configurations = radam_core::reference_data::kernel_configurations();
    let config = |(name, fields)| (name, RAdamConfig::from_fields(&fields));
    configurations.into_iter().map(config).collect()
}

fn hyper(config: &RAdamConfig) -> Hyper {
    config.fields().hyper()
}

/// Values of mixed signs and magnitudes from an integer hash, every seventh exactly zero.
fn values(n: usize, salt: u64, scale: f32) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            if i % 7 == 3 {
                return 0.0;
            }
            let h =
                (i ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
            let unit = (h >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            (unit * 2.0 - 1.0) * scale
        })
        .collect()
}

fn tensor(values: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

fn read(tensor: &Tensor<1>) -> Vec<f32> {
    tensor.to_data().try_to_vec::<f32>().unwrap()
}

/// θ_t, m_t and v_t, read back.
type Stepped = (Vec<f32>, Vec<f32>, Vec<f32>);

/// One step both ways on `case`'s device from the same θ, g and state; returns the fused step's
/// θ, m and v and the largest relative difference from the tensor-op step's.
fn both_ways(
    case: &Case,
    plan: &StepPlan,
    theta: &[f32],
    grad: &[f32],
    moments: Option<(&[f32], &[f32])>,
    what: &str,
) -> (Stepped, f32) {
    let device = &case.device;
    let state = |(m, v): (&[f32], &[f32])| RAdamState {
        time: plan.time - 1,
        m: tensor(m, device),
        v: tensor(v, device),
    };
    let fused = try_fused_step(
        plan,
        (
            tensor(theta, device),
            tensor(grad, device),
            moments.map(state),
        ),
    );
    let (fused_theta, fused_state) = fused.unwrap_or_else(|_| panic!("{what}: not fused"));
    assert_eq!(fused_state.time, plan.time);
    let moments = moments.map(|(m, v)| (tensor(m, device), tensor(v, device)));
    let (theta_t, m_t, v_t) =
        radam_core::tensor_op_step!(plan, tensor(theta, device), tensor(grad, device), moments);
    let fused = (
        read(&fused_theta),
        read(&fused_state.m),
        read(&fused_state.v),
    );
    let mut worst = 0.0_f32;
    for (name, fused, reference) in [
        ("θ", &fused.0, read(&theta_t)),
        ("m", &fused.1, read(&m_t)),
        ("v", &fused.2, read(&v_t)),
    ] {
        let what = format!("{}: {what}, {name}", case.name);
        worst = worst.max(assert_fused_matches(
            fused,
            &reference,
            case.tolerance,
            &what,
        ));
    }
    (fused, worst)
}

/// Every configuration (each preset, each weight-decay mode), eight steps from a fresh state
/// (the momentum phase, then rectified steps), at sizes from one element to past flex's parallel
/// chunk (2^16), odd and multiples of four (the CubeCL kernel's vectors of four): θ, m_t and v_t
/// as the tensor-op step's.
#[test]
fn the_fused_step_is_the_tensor_op_step() {
    for case in devices() {
        let mut worst = 0.0_f32;
        for (name, config) in configs() {
            let hyper = hyper(&config);
            for n in [1, 7, 1001, 65_537, 70_000, 200_003] {
                let mut theta = values(n, 1, 1.0);
                let mut moments: Option<(Vec<f32>, Vec<f32>)> = None;
                for t in 1..=8 {
                    let plan = StepPlan::new(&hyper, t, 1e-2 * (1.0 + t as f64 / 10.0));
                    let grad = values(n, 10 + t as u64, 10f32.powi(t as i32 % 5 - 3));
                    let what = format!("{name}, n = {n}, step {t}");
                    let current = moments.as_ref().map(|(m, v)| (m.as_slice(), v.as_slice()));
                    let ((next, m, v), difference) =
                        both_ways(&case, &plan, &theta, &grad, current, &what);
                    worst = worst.max(difference);
                    theta = next;
                    moments = Some((m, v));
                }
            }
        }
        println!(
            "{}: largest relative difference from the tensor-op step {worst:e}",
            case.name
        );
    }
}

/// 2^24 + 1 elements (where an `f32` count rounds, and a launch sized in `f32` would leave the
/// last element out), one rectified step with decoupled and with coupled decay.
#[test]
fn the_largest_odd_size_is_updated_whole() {
    let n = (1 << 24) + 1;
    let (theta, grad) = (values(n, 1, 1.0), values(n, 2, 0.1));
    let (m, v) = (
        values(n, 3, 0.01),
        values(n, 4, 1e-3).iter().map(|v| v * v).collect::<Vec<_>>(),
    );
    for case in devices() {
        for config in [
            RAdamConfig::new().with_weight_decay(0.1),
            RAdamConfig::new()
                .with_weight_decay(0.1)
                .with_decoupled_weight_decay(true),
        ] {
            let plan = StepPlan::new(&hyper(&config), 7, 1e-3);
            let ((next, _, _), _) =
                both_ways(&case, &plan, &theta, &grad, Some((&m, &v)), "2^24 + 1");
            assert_ne!(next[n - 1], theta[n - 1], "{}: the last element", case.name);
        }
    }
}

/// θ shared with another tensor (a clone the caller keeps) is not written in place: the clone
/// keeps its values.
#[test]
fn a_shared_parameter_is_not_overwritten() {
    for case in devices() {
        let theta = tensor(&values(1001, 1, 1.0), &case.device);
        let kept = theta.clone();
        let plan = StepPlan::new(&hyper(&RAdamConfig::new()), 1, 0.5);
        let grad = tensor(&values(1001, 2, 1.0), &case.device);
        let (next, _) = try_fused_step(&plan, (theta, grad, None))
            .unwrap_or_else(|_| panic!("{}: not fused", case.name));
        assert_eq!(read(&kept), values(1001, 1, 1.0), "{}", case.name);
        assert_ne!(read(&next), read(&kept), "{}: the step moved θ", case.name);
    }
}

/// Only `f32` tensors on a device with a kernel are fused; others come back untouched for the
/// tensor-op step.
#[test]
#[allow(deprecated)] // burn-ndarray, deprecated in Burn 0.22
fn other_backends_and_dtypes_are_handed_back() {
    let plan = StepPlan::new(&hyper(&RAdamConfig::new()), 1, 1e-3);
    let on = |device: &Device, dtype| {
        let theta = tensor(&[1.0, 2.0, 3.0], device).cast(dtype);
        let grad = tensor(&[0.5, 0.5, 0.5], device).cast(dtype);
        try_fused_step(&plan, (theta, grad, None)).is_ok()
    };
    for case in devices() {
        assert!(on(&case.device, FloatDType::F32), "{}", case.name);
        if case.device.supports_dtype(DType::F16) {
            assert!(!on(&case.device, FloatDType::F16), "{}", case.name);
        }
    }
    assert!(!on(&Device::flex(), FloatDType::BF16));
    assert_eq!(fused_kernel_on(&Device::flex()), Some("flex"));
    assert_eq!(fused_kernel_on(&Device::flex().autodiff()), None);
    #[cfg(not(burn_023))]
    {
        assert_eq!(fused_kernel_on(&Device::ndarray()), None);
        let theta = tensor(&[1.0, 2.0], &Device::ndarray());
        let back = try_fused_step(&plan, (theta.clone(), theta, None))
            .expect_err("ndarray has no fused step");
        assert_eq!(read(&back.0), vec![1.0, 2.0]);
    }
}
