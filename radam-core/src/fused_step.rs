//! The fused step's maths for every kernel: the per-element constants of a step in `f32`
//! ([`Scalars`], rounded once from the [`StepPlan`]'s `f64` values exactly as the tensor-op step
//! rounds its scalars), and — with the `cpu-kernel` feature — the step as one pass over
//! contiguous `f32` slices ([`update`]), parallel over chunks, in the tensor-op step's operation
//! order so that both round alike. The CPU backends of each Burn version (ndarray in 0.19, flex
//! in 0.22) hand it their buffers; the GPU kernels take their constants from [`Scalars`].

use crate::step_plan::{StepPlan, Update};

/// The branch of Algorithm 2 a step takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `ρ_t` above the threshold: the rectified adaptive step.
    Rectified,
    /// The un-adapted momentum step.
    Momentum,
    /// θ unchanged (the official code's early steps).
    Skip,
}

/// The per-element constants of a step, in `f32`.
#[derive(Clone, Copy, Debug)]
pub struct Scalars {
    /// `β1`.
    pub beta_1: f32,
    /// `1 − β1`.
    pub one_minus_beta_1: f32,
    /// `β2`.
    pub beta_2: f32,
    /// `1 − β2`.
    pub one_minus_beta_2: f32,
    /// Coupled L2 penalty (0 when off).
    pub l2: f32,
    /// Decoupled decay factor `1 − α·λ` (1 when off).
    pub decay: f32,
    /// `α·r_t·sqrt(1 − β2^t)/(1 − β1^t)` (rectified) or `α/(1 − β1^t)` (momentum).
    pub step_size: f32,
    /// `ε` (rectified steps only).
    pub epsilon: f32,
    /// The branch.
    pub mode: Mode,
    /// Whether the L2 penalty is on.
    pub coupled: bool,
    /// Whether the decoupled decay is on (on updating steps).
    pub decoupled: bool,
}

impl Scalars {
    /// The constants of `plan`'s step.
    pub fn new(plan: &StepPlan) -> Self {
        let (mode, step_size, epsilon) = match plan.update {
            Update::Rectified { step_size, epsilon } => (Mode::Rectified, step_size, epsilon),
            Update::Momentum { step_size } => (Mode::Momentum, step_size, 0.0),
            Update::Skip => (Mode::Skip, 0.0, 0.0),
        };
        Self {
            beta_1: plan.beta_1 as f32,
            one_minus_beta_1: (1.0 - plan.beta_1) as f32,
            beta_2: plan.beta_2 as f32,
            one_minus_beta_2: (1.0 - plan.beta_2) as f32,
            l2: plan.l2_penalty as f32,
            decay: plan.decay_factor.unwrap_or(1.0) as f32,
            step_size: step_size as f32,
            epsilon: epsilon as f32,
            mode,
            coupled: plan.l2_penalty != 0.0,
            decoupled: plan.decay_factor.is_some(),
        }
    }
}

/// Whether θ, g and the moments of an RAdam state (if any) are all `f32` — the one dtype every
/// fused kernel takes — for the tensor type of whichever Burn version expands it:
/// `all_f32!(&theta, &grad, &state)`, `state` an `Option` of a state with fields `m` and `v`.
#[macro_export]
macro_rules! all_f32 {
    ($theta:expr, $grad:expr, $state:expr) => {{
        let state = ($state).as_ref();
        [
            Some($theta),
            Some($grad),
            state.map(|s| &s.m),
            state.map(|s| &s.v),
        ]
        .into_iter()
        .flatten()
        .all(|t| t.dtype() == burn::tensor::DType::F32)
    }};
}

/// Elements per parallel task: large enough to amortise scheduling, small enough to balance.
#[cfg(feature = "cpu-kernel")]
const CHUNK: usize = 1 << 16;

/// One step over whole slices, in place: `θ`, `m` and `v` become `θ_t`, `m_t` and `v_t`. Split
/// into parallel chunks (rayon) above 2^16 elements.
///
/// # Panics
/// If the four slices differ in length.
#[cfg(feature = "cpu-kernel")]
pub fn update(scalars: &Scalars, theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    use rayon::prelude::*;
    assert!(
        theta.len() == grad.len() && grad.len() == m.len() && m.len() == v.len(),
        "θ, g, m and v must have the same number of elements"
    );
    if theta.len() <= CHUNK {
        update_chunk(scalars, theta, grad, m, v);
        return;
    }
    theta
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((theta, grad), m), v)| update_chunk(scalars, theta, grad, m, v));
}

/// Picks the loop specialised for this step's options, so the hot loop has no branches.
#[cfg(feature = "cpu-kernel")]
fn update_chunk(s: &Scalars, theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    macro_rules! dispatch {
        ($($coupled:literal, $decoupled:literal);*) => {
            match (s.coupled, s.decoupled, s.mode) {
                $(
                    ($coupled, $decoupled, Mode::Rectified) => kernel::<$coupled, $decoupled, 0>(s, theta, grad, m, v),
                    ($coupled, $decoupled, Mode::Momentum) => kernel::<$coupled, $decoupled, 1>(s, theta, grad, m, v),
                    ($coupled, $decoupled, Mode::Skip) => kernel::<$coupled, $decoupled, 2>(s, theta, grad, m, v),
                )*
            }
        };
    }
    dispatch!(false, false; false, true; true, false; true, true)
}

/// One element at a time, in the tensor-op step's operation order (so both paths round alike).
#[cfg(feature = "cpu-kernel")]
#[inline(always)]
fn kernel<const COUPLED: bool, const DECOUPLED: bool, const MODE: u8>(
    s: &Scalars,
    theta: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    for (((theta, &grad), m), v) in theta
        .iter_mut()
        .zip(grad)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        // g_t ← ∇f(θ_{t−1}) + λ·θ_{t−1}   (coupled L2)
        let g = if COUPLED { grad + *theta * s.l2 } else { grad };
        // m_t ← β1·m_{t−1} + (1 − β1)·g_t ;  v_t ← β2·v_{t−1} + (1 − β2)·g_t²
        let m_t = *m * s.beta_1 + g * s.one_minus_beta_1;
        let v_t = *v * s.beta_2 + (g * s.one_minus_beta_2) * g;
        *m = m_t;
        *v = v_t;
        // θ ← θ·(1 − α·λ)   (decoupled decay, only on updating steps: the plan leaves it at 1 otherwise)
        let t = if DECOUPLED { *theta * s.decay } else { *theta };
        *theta = match MODE {
            // θ_t ← θ − α·r_t·m̂_t·l_t
            0 => t - (m_t * s.step_size) / (v_t.sqrt() + s.epsilon),
            // θ_t ← θ − α·m̂_t
            1 => t - m_t * s.step_size,
            _ => t,
        };
    }
}
