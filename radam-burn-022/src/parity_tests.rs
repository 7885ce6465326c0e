//! Parity with the references through Burn 0.22's `Optimizer` trait: the same recorded
//! `torch.optim.RAdam` trajectories (and the paper's and the official presets) as radam-burn's
//! tests for Burn 0.19, with the same tolerances (`radam_core::reference_data`).

use burn::module::{Module, Param};
use burn::optim::{GradientsParams, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor, TensorData};
use radam_core::reference_data::{Case, Stepped, replay_trajectories};

use crate::test_devices::devices;
use crate::{RAdam, RAdamConfig, rectification};

/// The config of a reference case.
fn config_of(case: &Case) -> RAdamConfig {
    RAdamConfig::from_fields(&case.fields())
}

fn tensor(values: &[f32], shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

fn values(tensor: &Tensor<2>) -> Vec<f32> {
    tensor.to_data().try_to_vec::<f32>().unwrap()
}

/// The per-tensor optimizer against the recorded trajectories, on both CPU backends and (with
/// the `wgpu` feature) on wgpu, where the fused CubeCL kernel runs.
#[test]
fn trajectories_match_the_references_through_the_optimizer_trait() {
    for device in devices() {
        type UnderTest = (RAdam, Tensor<2>, Option<crate::RAdamState<2>>, [usize; 2]);
        let worst = replay_trajectories(
            |case| -> UnderTest {
                let radam = config_of(case).build().expect("valid config");
                (
                    radam,
                    tensor(&case.theta0, case.shape, &device),
                    None,
                    case.shape,
                )
            },
            |(radam, theta, state, shape), lr, grad| {
                let grad = tensor(grad, *shape, &device);
                let (next, next_state) = radam.step(lr, theta.clone(), grad, state.take());
                *theta = next;
                let next_state = next_state.expect("RAdam always returns its state");
                let stepped = Stepped {
                    theta: values(theta),
                    m: values(&next_state.m),
                    v: values(&next_state.v),
                    time: next_state.time,
                };
                *state = Some(next_state);
                stepped
            },
        );
        println!("worst scaled parameter error on {device:?}: {worst:e}");
    }
}

/// A module whose only parameter is `w`; `loss = sum(w ⊙ G)` makes its gradient exactly `G`.
#[derive(Module, Debug)]
struct Weights {
    w: Param<Tensor<2>>,
}

impl Weights {
    fn gradients(&self, grad: &[f32]) -> GradientsParams {
        let w = self.w.val();
        let g = tensor(grad, w.dims(), &w.device());
        GradientsParams::from_grads(w.mul(g).sum().backward(), self)
    }
}

/// The gradient of step `t` of a 3×4 parameter: mixed signs and magnitudes.
fn gradient(t: usize) -> Vec<f32> {
    (0..12)
        .map(|i| ((i * 7 + t * 3) % 11) as f32 / 5.0 - 1.0)
        .collect()
}

/// Through the `ModuleOptimizer` that `init` returns: with a constant gradient of 1, `m̂_t = 1`,
/// so a momentum step moves θ by α and the first rectified step (6 for torch's defaults, 5 for
/// the paper's, none before 6 for the official code) by `α·r_t·sqrt(1 − β2^t)/(sqrt(1 − β2^t)
/// + ε) ≈ α·r_t`.
#[test]
fn each_preset_starts_adapting_at_its_documented_step() {
    let device = Device::flex().autodiff();
    let lr = 1e-3;
    for (config, first_rectified, moves_before) in [
        (RAdamConfig::new(), 6, true),
        (RAdamConfig::paper(), 5, true),
        (RAdamConfig::official(), 6, false),
    ] {
        let mut model = Weights {
            w: Param::from_tensor(Tensor::zeros([1, 1], &device)),
        };
        let mut optimizer = config.init();
        let mut previous = 0.0_f64;
        for t in 1..=first_rectified {
            let grads = model.gradients(&[1.0]);
            model = optimizer.step(lr, model, grads);
            let current = f64::from(values(&model.w.val())[0]);
            let expected = if t < first_rectified {
                if moves_before { lr } else { 0.0 }
            } else {
                lr * rectification(0.999, t, config.threshold).unwrap()
            };
            let moved = previous - current;
            assert!(
                (moved - expected).abs() <= 1e-9 + 1e-5 * expected,
                "threshold {}, step {t}: θ moved by {moved:e}, expected {expected:e}",
                config.threshold
            );
            previous = current;
        }
    }
}

/// Saving the optimizer in the middle of training and loading it into a fresh one continues
/// the same trajectory to the last bit.
#[test]
fn resuming_from_a_saved_record_is_bit_identical() {
    let device = Device::flex().autodiff();
    let start = Weights {
        w: Param::from_tensor(tensor(&gradient(99), [3, 4], &device)),
    };
    let config = RAdamConfig::new().with_weight_decay(0.01);
    let train =
        |mut model: Weights, optimizer: &mut ModuleOptimizer, steps: std::ops::Range<usize>| {
            for t in steps {
                let grads = model.gradients(&gradient(t));
                model = optimizer.step(1e-2, model, grads);
            }
            model
        };
    let mut uninterrupted = config.init();
    let straight = train(start.clone(), &mut uninterrupted, 0..12);

    let mut first = config.init();
    let halfway = train(start, &mut first, 0..7);
    let bytes = first.into_bytes().expect("the record serialises");
    let mut resumed = config.init().from_bytes(bytes).expect("the record loads");
    let resumed_model = train(halfway, &mut resumed, 7..12);

    let (a, b) = (values(&straight.w.val()), values(&resumed_model.w.val()));
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
        "{a:?} vs {b:?}"
    );
    assert_ne!(
        a,
        values(&tensor(&gradient(99), [3, 4], &device)),
        "the parameter moved"
    );
}

/// Moments of another shape are refused with one message before any kernel sees them, on the
/// devices with a fused step as on the others.
#[test]
fn a_state_of_another_shape_is_refused() {
    for device in devices() {
        let radam = RAdamConfig::new().build().unwrap();
        let theta = Tensor::<2>::ones([3, 4], &device);
        let wrong = crate::RAdamState {
            time: 3,
            m: Tensor::zeros([4, 3], &device),
            v: Tensor::zeros([4, 3], &device),
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            radam.step(1e-3, theta.clone(), theta, Some(wrong))
        }));
        let message = outcome.expect_err("refused");
        let message = message.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("does not fit the parameter"),
            "{device:?}: {message}"
        );
    }
}
