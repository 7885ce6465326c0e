//! Correctness of the fused wgpu step: the same steps through the fused kernel and through Burn
//! tensor operations on the same adapter, for each preset with each weight-decay mode, compared
//! element by element on the device.

use burn::backend::Wgpu;
use burn::optim::SimpleOptimizer;
use burn::tensor::{Distribution, Tensor};
use radam_burn::{RAdam, RAdamConfig, RAdamState};

use super::Report;

/// The inner (non-autodiff) wgpu backend the steps run on.
type G = Wgpu<f32, i32>;

/// The largest relative difference between the two paths that passes.
pub const TOLERANCE: f32 = 1e-6;

/// The weight decay of the decaying cases.
const WEIGHT_DECAY: f32 = 0.01;

/// The learning rate of every step.
const LR: f64 = 1e-3;

/// Parameter counts: one element, an odd count, a million, one past 2^24 (where `f32`
/// arithmetic on the launch size would drop the last element), and 10^8.
pub fn sizes(tiny: bool) -> Vec<usize> {
    if tiny {
        vec![1, 1_001, (1 << 24) + 1]
    } else {
        vec![1, 1_001, 1_000_000, (1 << 24) + 1, 100_000_000]
    }
}

/// The presets, each with L2 (coupled) and decoupled weight decay: `(name, config)`.
pub fn configs() -> Vec<(String, RAdamConfig)> {
    let presets = [
        ("torch", RAdamConfig::new()),
        ("paper", RAdamConfig::paper()),
        ("official", RAdamConfig::official()),
    ];
    let mut configs = Vec::new();
    for (preset, config) in presets {
        for (mode, decoupled) in [("l2", false), ("decoupled", true)] {
            configs.push((
                format!("{preset}-{mode}"),
                config
                    .clone()
                    .with_weight_decay(WEIGHT_DECAY)
                    .with_decoupled_weight_decay(decoupled),
            ));
        }
    }
    configs
}

/// `max |a − b| / max(|a|, |b|)` over the elements (0 where both are 0); NaN if any is NaN.
fn worst_relative(a: Tensor<G, 1>, b: Tensor<G, 1>) -> f32 {
    let difference = (a.clone() - b.clone()).abs();
    let scale = a.abs().max_pair(b.abs()).clamp_min(f32::MIN_POSITIVE);
    let relative = difference / scale;
    let has_nan = relative.clone().is_nan().int().sum().into_scalar() > 0;
    if has_nan {
        f32::NAN
    } else {
        relative.max().into_scalar()
    }
}

/// Elements the fused step left at `before` although the tensor-op step moved them.
fn unmoved(fused: Tensor<G, 1>, reference: Tensor<G, 1>, before: Tensor<G, 1>) -> i64 {
    let stayed = fused.equal(before.clone()).int();
    let moved = reference.not_equal(before).int();
    i64::from((stayed * moved).sum().into_scalar())
}

/// One step through `optimizer`.
fn step(
    optimizer: &RAdam,
    theta: &Tensor<G, 1>,
    grad: &Tensor<G, 1>,
    state: Option<RAdamState<G, 1>>,
) -> (Tensor<G, 1>, RAdamState<G, 1>) {
    let (theta, state) =
        SimpleOptimizer::<G>::step(optimizer, LR, theta.clone(), grad.clone(), state);
    (theta, state.expect("RAdam always returns its state"))
}

/// Checks every config at `n` parameters: a first step (momentum or skipped, from no state) and
/// a rectified step (from a state at t = 10), fused against tensor operations. Records one figure
/// per config (the worst relative difference of θ, m and v over both steps) and a failure for
/// each difference over [`TOLERANCE`] or element the fused step failed to move.
pub fn check_size(
    n: usize,
    device: &<G as burn::tensor::backend::Backend>::Device,
    report: &Report,
) {
    let normal = |scale: f64| Tensor::<G, 1>::random([n], Distribution::Normal(0.0, scale), device);
    let theta = normal(1.0);
    let (grad_1, grad_2) = (normal(1e-2), normal(1e-2));
    let (m, v_root) = (normal(1e-2), normal(1e-2));
    let state = || RAdamState {
        time: 10,
        m: m.clone(),
        v: v_root.clone().powi_scalar(2),
    };
    for (name, config) in configs() {
        let fused = config.build().expect("the presets are valid");
        let reference = fused.clone().tensor_ops_only();
        let mut worst = 0.0_f32;
        let mut left = 0;
        for (grad, start) in [(&grad_1, None), (&grad_2, Some(state()))] {
            let (theta_f, state_f) = step(&fused, &theta, grad, start.clone());
            let (theta_r, state_r) = step(&reference, &theta, grad, start);
            left += unmoved(theta_f.clone(), theta_r.clone(), theta.clone());
            for (a, b) in [
                (theta_f, theta_r),
                (state_f.m, state_r.m),
                (state_f.v, state_r.v),
            ] {
                let difference = worst_relative(a, b);
                worst = if difference.is_nan() {
                    f32::NAN
                } else {
                    worst.max(difference)
                };
            }
        }
        let case = format!("step-diff-{name}-n{n}");
        report.figure(case.clone(), f64::from(worst), "relative");
        if worst.is_nan() || worst > TOLERANCE {
            report.fail(format!(
                "{case}: fused and tensor-op steps differ by {worst:e} (> {TOLERANCE:e})"
            ));
        }
        if left > 0 {
            report.fail(format!("{case}: the fused step left {left} element(s) unchanged that the tensor-op step moved"));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    /// The default wgpu device, or `None` (with a notice) where there is no adapter — a failure
    /// with `RADAM_REQUIRE_WGPU=1`, as in CI.
    fn device_or_skip() -> Option<<G as burn::tensor::backend::Backend>::Device> {
        match crate::backend::wgpu_device() {
            Ok(device) => Some(device),
            Err(error) if std::env::var("RADAM_REQUIRE_WGPU").is_ok_and(|v| v == "1") => {
                panic!("RADAM_REQUIRE_WGPU=1, but {error}")
            }
            Err(error) => {
                eprintln!("skipped: {error}");
                None
            }
        }
    }

    fn tensor(
        values: &[f32],
        device: &<G as burn::tensor::backend::Backend>::Device,
    ) -> Tensor<G, 1> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
    }

    #[test]
    fn the_comparisons_catch_a_difference_a_nan_and_an_element_left_behind() {
        let Some(device) = device_or_skip() else {
            return;
        };
        let t = |values: &[f32]| tensor(values, &device);
        assert_eq!(
            worst_relative(t(&[1.0, -2.0, 0.0]), t(&[1.0, -2.0, 0.0])),
            0.0
        );
        // 4e-6 relative in the second element: over the tolerance.
        let worst = worst_relative(t(&[1.0, -2.0, 0.0]), t(&[1.0, -2.000008, 0.0]));
        assert!((worst - 4e-6).abs() < 5e-7 && worst > TOLERANCE, "{worst}");
        assert!(worst_relative(t(&[1.0, f32::NAN]), t(&[1.0, 2.0])).is_nan());
        // The fused step left elements 0 and 2 where the tensor-op step moved them.
        let before = t(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            unmoved(
                t(&[1.0, 2.5, 3.0, 4.0]),
                t(&[1.5, 2.5, 3.5, 4.0]),
                before.clone()
            ),
            2
        );
        assert_eq!(
            unmoved(t(&[1.5, 2.5, 3.5, 4.0]), t(&[1.5, 2.5, 3.5, 4.0]), before),
            0
        );
    }

    #[test]
    fn every_preset_runs_with_both_decay_modes_and_the_tail_case_is_in_every_size_list() {
        let names: Vec<String> = configs().into_iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "torch-l2",
                "torch-decoupled",
                "paper-l2",
                "paper-decoupled",
                "official-l2",
                "official-decoupled"
            ]
        );
        for (name, config) in configs() {
            assert!(config.validate().is_ok(), "{name}");
            assert_eq!(config.decoupled_weight_decay, name.ends_with("decoupled"));
        }
        for tiny in [true, false] {
            assert!(sizes(tiny).contains(&((1 << 24) + 1)));
        }
        assert_eq!(sizes(false).last(), Some(&100_000_000));
    }
}
