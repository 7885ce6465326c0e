//! The recorded reference trajectories every adaptor's parity tests replay, and the tolerances
//! they are checked with (feature `reference-data`, for tests).
//!
//! `tools/radam_reference.py` records them from PyTorch's `torch.optim.RAdam` and from float32
//! re-implementations of the paper's and the official presets, into
//! `testdata/radam_reference.json`; [`lookahead`] and [`adam_2k`] hold the references of the
//! other optimizers, over the two small parameters of [`two_parameters`].

pub mod adam_2k;
pub mod lookahead;
pub mod two_parameters;

use serde::Deserialize;

use crate::{Preset, RAdamFields};

/// Everything `testdata/radam_reference.json` holds.
#[derive(Deserialize)]
pub struct Reference {
    /// Small parameters stepped with recorded gradients and learning rates.
    pub cases: Vec<Case>,
    /// Large parameters whose gradients both sides build from an integer hash.
    pub large_cases: Vec<LargeCase>,
    /// `y = Wx + b` trained for 100 steps, per weight-decay mode.
    pub linear_regression: Vec<LinearRegression>,
}

/// One recorded trajectory of a small parameter.
#[derive(Deserialize)]
pub struct Case {
    /// The case's name, for messages.
    pub name: String,
    /// `torch`, `paper` or `official`.
    pub preset: String,
    /// `β1`.
    pub beta_1: f32,
    /// `β2`.
    pub beta_2: f32,
    /// `ε`.
    pub epsilon: f32,
    /// `λ`.
    pub weight_decay: f32,
    /// Decoupled weight decay (for the `torch` preset; the others imply it).
    pub decoupled_weight_decay: bool,
    /// The parameter's shape.
    pub shape: [usize; 2],
    /// The learning rate of each step.
    pub lrs: Vec<f64>,
    /// θ before the first step.
    pub theta0: Vec<f32>,
    /// The gradient of each step.
    pub grads: Vec<Vec<f32>>,
    /// θ after every step.
    pub thetas: Vec<Vec<f32>>,
    /// `m_t` after every step.
    pub ms: Vec<Vec<f32>>,
    /// `v_t` after every step.
    pub vs: Vec<Vec<f32>>,
}

/// A parameter of 200,003 elements (several parallel chunks of a fused step) whose values both
/// sides build from the hash `mix` of `tools/radam_reference.py`; a sample of the elements after
/// the last step.
#[derive(Deserialize)]
pub struct LargeCase {
    /// The case's name, for messages.
    pub name: String,
    /// The number of elements.
    pub n: usize,
    /// The number of steps.
    pub steps: usize,
    /// `λ`.
    pub weight_decay: f32,
    /// Decoupled weight decay.
    pub decoupled_weight_decay: bool,
    /// The learning rate of each step.
    pub lrs: Vec<f64>,
    /// The sampled element indices.
    pub sample: Vec<usize>,
    /// θ at the sampled elements after the last step.
    pub theta: Vec<f32>,
    /// `m_t` at the sampled elements.
    pub m: Vec<f32>,
    /// `v_t` at the sampled elements.
    pub v: Vec<f32>,
}

/// Linear regression trained with `torch.optim.RAdam`.
#[derive(Deserialize)]
pub struct LinearRegression {
    /// `λ`.
    pub weight_decay: f32,
    /// Decoupled weight decay.
    pub decoupled_weight_decay: bool,
    /// The trained weight.
    pub weight: Vec<f32>,
    /// The trained bias.
    pub bias: Vec<f32>,
}

impl Case {
    /// The config this case was recorded with.
    pub fn fields(&self) -> RAdamFields {
        let preset = match self.preset.as_str() {
            "torch" => None,
            "paper" => Some(Preset::PAPER),
            "official" => Some(Preset::OFFICIAL),
            other => panic!("unknown preset {other} in the reference data"),
        };
        let torch = RAdamFields::torch();
        RAdamFields {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            decoupled_weight_decay: preset
                .map_or(self.decoupled_weight_decay, |p| p.decoupled_weight_decay),
            threshold: preset.map_or(torch.threshold, |p| p.threshold),
            degenerated_to_sgd: preset.map_or(torch.degenerated_to_sgd, |p| p.degenerated_to_sgd),
        }
    }
}

/// The configurations every fused kernel is checked in against the tensor-op step: each preset,
/// each weight-decay mode, and the edges (a late threshold, β2 close to 1, β2 that never
/// rectifies, ε = 0 with β1 = 0), by name.
pub fn kernel_configurations() -> Vec<(&'static str, RAdamFields)> {
    let torch = RAdamFields::torch();
    let with = |change: &dyn Fn(&mut RAdamFields)| {
        let mut fields = torch.clone();
        change(&mut fields);
        fields
    };
    let preset = |preset: Preset, weight_decay: f32| {
        with(&|f| {
            f.threshold = preset.threshold;
            f.degenerated_to_sgd = preset.degenerated_to_sgd;
            f.decoupled_weight_decay = preset.decoupled_weight_decay;
            f.weight_decay = weight_decay;
        })
    };
    vec![
        ("defaults", torch.clone()),
        ("l2 decay", with(&|f| f.weight_decay = 0.1)),
        (
            "decoupled decay",
            with(&|f| {
                f.weight_decay = 0.1;
                f.decoupled_weight_decay = true;
            }),
        ),
        ("paper", preset(Preset::PAPER, 0.01)),
        ("official (skip)", preset(Preset::OFFICIAL, 0.01)),
        ("threshold 8", with(&|f| f.threshold = 8.0)),
        ("beta_2 0.9999", with(&|f| f.beta_2 = 0.9999)),
        ("beta_2 0.5 (never rectifies)", with(&|f| f.beta_2 = 0.5)),
        (
            "epsilon 0",
            with(&|f| {
                f.epsilon = 0.0;
                f.beta_1 = 0.0;
            }),
        ),
    ]
}

/// The parsed `testdata/radam_reference.json`.
pub fn reference() -> Reference {
    serde_json::from_str(include_str!("../testdata/radam_reference.json"))
        .expect("testdata/radam_reference.json parses")
}

/// `|actual − expected| ≤ tolerance · max(|expected|, 1)` for every element, or a panic that
/// names the case, the step and the element; returns the worst scaled error.
pub fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32, what: &str) -> f32 {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let mut worst = 0.0_f32;
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let error = (a - e).abs() / e.abs().max(1.0);
        assert!(
            error <= tolerance,
            "{what}, element {i}: got {a}, expected {e} (scaled error {error:e} > {tolerance:e})"
        );
        worst = worst.max(error);
    }
    worst
}

/// A fused kernel's `fused` values against the tensor-op step's `reference`:
/// `|a − b| ≤ tolerance · max(|a|, |b|)` for every element, and the very same value when
/// `tolerance` is 0 — the same bits, but for the sign of a zero (a fused step starts from
/// m = v = +0, the tensor-op step from the first gradient's terms, so a gradient of −0 gives −0
/// there). NaN matches NaN (ε = 0 with a zero gradient is 0/0 on both paths, as in PyTorch).
/// Panics at the first element outside, naming it; returns the largest relative difference.
pub fn assert_fused_matches(fused: &[f32], reference: &[f32], tolerance: f32, what: &str) -> f32 {
    assert_eq!(fused.len(), reference.len(), "{what}: lengths");
    let mut worst = 0.0_f32;
    for (i, (&a, &b)) in fused.iter().zip(reference).enumerate() {
        if a.is_nan() && b.is_nan() {
            continue;
        }
        let scale = a.abs().max(b.abs());
        let difference = (a - b).abs();
        let agrees = if tolerance == 0.0 {
            a.to_bits() == b.to_bits() || (a == 0.0 && b == 0.0)
        } else {
            difference <= tolerance * scale
        };
        assert!(
            agrees,
            "{what}, element {i}: fused {a:e}, tensor ops {b:e} (tolerance {tolerance:e})"
        );
        if scale > 0.0 {
            worst = worst.max(difference / scale);
        }
    }
    worst
}

/// `|actual − expected| ≤ tolerance · |expected|` (plus the smallest normal float), for values
/// such as `v_t` that span 1e-19..1e6.
pub fn assert_relative(actual: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance * e.abs() + f32::MIN_POSITIVE,
            "{what}, element {i}: got {a}, expected {e}"
        );
    }
}

/// `m_t` against PyTorch's `lerp_` form of the same average: within 5e-6 scaled, or within a
/// few float32 roundings (4e-7) of the largest gradient averaged so far, whose terms cancel.
pub fn assert_moment(actual: &[f32], expected: &[f32], largest_gradient: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let error = (a - e).abs();
        assert!(
            error <= 5e-6 * e.abs().max(1.0) || error <= 4e-7 * largest_gradient,
            "{what}, element {i}: got {a}, expected {e} (largest gradient {largest_gradient})"
        );
    }
}

/// The tolerance of θ in the trajectory cases: `5e-6 · max(|θ|, 1)`.
pub const THETA_TOLERANCE: f32 = 5e-6;

/// The relative tolerance of `v_t` in the trajectory cases.
pub const V_TOLERANCE: f32 = 5e-6;

/// What an optimizer under test reports after one step of a trajectory case.
pub struct Stepped {
    /// θ after the step.
    pub theta: Vec<f32>,
    /// `m_t` after the step.
    pub m: Vec<f32>,
    /// `v_t` after the step.
    pub v: Vec<f32>,
    /// The step count in the optimizer's state.
    pub time: usize,
}

/// Replays every trajectory case of the reference: `start` sets up an optimizer and a parameter
/// for a case, `step` takes one step at a learning rate with a gradient and reports the state.
/// Panics at the first value outside the tolerances; returns the worst scaled error of θ.
pub fn replay_trajectories<S>(
    mut start: impl FnMut(&Case) -> S,
    mut step: impl FnMut(&mut S, f64, &[f32]) -> Stepped,
) -> f32 {
    let mut worst = 0.0_f32;
    for case in reference().cases {
        let mut under_test = start(&case);
        let mut largest_gradient = 0.0_f32;
        for (t, ((grad, lr), expected)) in case
            .grads
            .iter()
            .zip(&case.lrs)
            .zip(&case.thetas)
            .enumerate()
        {
            let stepped = step(&mut under_test, *lr, grad);
            let what = format!("case {}, step {}", case.name, t + 1);
            worst = worst.max(assert_close(
                &stepped.theta,
                expected,
                THETA_TOLERANCE,
                &what,
            ));
            assert_eq!(stepped.time, t + 1, "{what}: step count");
            // PyTorch updates m_t as m + (1 − β1)·(g − m) (`lerp_`), which rounds differently
            // from β1·m + (1 − β1)·g: an f32 rounding of the gradients being averaged.
            largest_gradient = grad.iter().fold(largest_gradient, |a, g| a.max(g.abs()));
            assert_moment(
                &stepped.m,
                &case.ms[t],
                largest_gradient,
                &format!("{what}, m"),
            );
            assert_relative(&stepped.v, &case.vs[t], V_TOLERANCE, &format!("{what}, v"));
        }
    }
    worst
}
