//! The host-side plan of one RAdam step: which branch of Algorithm 2 runs and every scalar
//! factor it needs, computed in `f64` from the step count and the learning rate of *this* step.
//!
//! Both the generic tensor-op path and the fused kernels read the same plan, so the two can only
//! differ in how they evaluate the element-wise maths, never in the maths itself. Nothing here is
//! cached across steps: the learning rate may change on every call (schedulers, parameter groups).

use crate::rectification::rectification;

/// The hyper-parameters a plan is built from, already [widened](crate::widen) to `f64` and
/// validated (see [`RAdamFields`](crate::RAdamFields)).
#[derive(Clone, Debug, PartialEq)]
pub struct Hyper {
    /// Decay rate of the first moment, `β1`.
    pub beta_1: f64,
    /// Decay rate of the second moment, `β2`.
    pub beta_2: f64,
    /// Added to `sqrt(v_t)` in the denominator, `ε`.
    pub epsilon: f64,
    /// Weight decay `λ`.
    pub weight_decay: f64,
    /// Decoupled (`θ ← θ·(1 − α·λ)`) rather than L2 (`g ← g + λ·θ`) weight decay.
    pub decoupled_weight_decay: bool,
    /// The step is rectified when `ρ_t > threshold`.
    pub threshold: f64,
    /// Momentum steps (`true`) or no update (`false`) while `ρ_t ≤ threshold`.
    pub degenerated_to_sgd: bool,
}

/// How the parameters move at this step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Update {
    /// `ρ_t > threshold`: `θ ← θ − step_size · m_t / (sqrt(v_t) + ε)` with
    /// `step_size = α·r_t·sqrt(1 − β2^t) / (1 − β1^t)` (Algorithm 2, lines 10–12).
    Rectified {
        /// `α·r_t·sqrt(1 − β2^t) / (1 − β1^t)`.
        step_size: f64,
        /// `ε`, added to `sqrt(v_t)`.
        epsilon: f64,
    },
    /// `ρ_t ≤ threshold`, degenerated to SGD: `θ ← θ − step_size · m_t` with
    /// `step_size = α / (1 − β1^t)` (Algorithm 2, line 14).
    Momentum {
        /// `α / (1 − β1^t)`.
        step_size: f64,
    },
    /// `ρ_t ≤ threshold` and `degenerated_to_sgd = false`: θ is left as it is (the official code).
    Skip,
}

/// Everything one step needs besides the tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepPlan {
    /// The step number `t`, counted from 1.
    pub time: usize,
    /// `β1`.
    pub beta_1: f64,
    /// `β2`.
    pub beta_2: f64,
    /// Coupled (L2) weight decay: `g_t ← ∇f(θ) + λ·θ`. Zero when decay is decoupled or off.
    pub l2_penalty: f64,
    /// Decoupled weight decay: `θ ← θ·(1 − α·λ)`, only on steps that update θ. `None` when off.
    pub decay_factor: Option<f64>,
    /// How θ moves.
    pub update: Update,
}

impl StepPlan {
    /// The plan for step `time` (counted from 1) at learning rate `lr`.
    pub fn new(hyper: &Hyper, time: usize, lr: f64) -> Self {
        let step = time as f64;
        let bias_correction_1 = 1.0 - hyper.beta_1.powf(step);
        let bias_correction_2 = 1.0 - hyper.beta_2.powf(step);

        // r_t exists once ρ_t has passed the threshold (Algorithm 2, line 9).
        let update = if let Some(r_t) = rectification(hyper.beta_2, time, hyper.threshold) {
            Update::Rectified {
                step_size: lr * r_t * bias_correction_2.sqrt() / bias_correction_1,
                epsilon: hyper.epsilon,
            }
        } else if hyper.degenerated_to_sgd {
            Update::Momentum {
                step_size: lr / bias_correction_1,
            }
        } else {
            Update::Skip
        };

        let decays = hyper.weight_decay != 0.0;
        let decay_factor = (decays && hyper.decoupled_weight_decay && update != Update::Skip)
            .then_some(1.0 - lr * hyper.weight_decay);
        let l2_penalty = if decays && !hyper.decoupled_weight_decay {
            hyper.weight_decay
        } else {
            0.0
        };

        Self {
            time,
            beta_1: hyper.beta_1,
            beta_2: hyper.beta_2,
            l2_penalty,
            decay_factor,
            update,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hyper() -> Hyper {
        crate::RAdamFields::torch().hyper()
    }

    #[test]
    fn momentum_phase_until_rho_passes_the_threshold() {
        for t in 1..=5 {
            assert!(matches!(
                StepPlan::new(&hyper(), t, 1e-3).update,
                Update::Momentum { .. }
            ));
        }
        assert!(matches!(
            StepPlan::new(&hyper(), 6, 1e-3).update,
            Update::Rectified { .. }
        ));
    }

    #[test]
    fn momentum_step_is_bias_corrected() {
        let plan = StepPlan::new(&hyper(), 1, 1e-3);
        assert_eq!(
            plan.update,
            Update::Momentum {
                step_size: 1e-3 / (1.0 - 0.9)
            }
        );
    }

    #[test]
    fn skip_mode_neither_moves_nor_decays() {
        let hyper = Hyper {
            degenerated_to_sgd: false,
            weight_decay: 0.1,
            decoupled_weight_decay: true,
            ..hyper()
        };
        let plan = StepPlan::new(&hyper, 3, 1e-2);
        assert_eq!(plan.update, Update::Skip);
        assert_eq!(plan.decay_factor, None);
        let plan = StepPlan::new(&hyper, 6, 1e-2);
        assert_eq!(plan.decay_factor, Some(1.0 - 1e-2 * 0.1));
    }

    #[test]
    fn coupled_decay_goes_into_the_gradient_only() {
        let hyper = Hyper {
            weight_decay: 0.1,
            ..hyper()
        };
        let plan = StepPlan::new(&hyper, 1, 1e-2);
        assert_eq!(plan.l2_penalty, 0.1);
        assert_eq!(plan.decay_factor, None);
    }

    #[test]
    fn the_learning_rate_of_each_call_is_used() {
        let a = StepPlan::new(&hyper(), 10, 1e-3);
        let b = StepPlan::new(&hyper(), 10, 2e-3);
        match (a.update, b.update) {
            (Update::Rectified { step_size: a, .. }, Update::Rectified { step_size: b, .. }) => {
                assert!((b / a - 2.0).abs() < 1e-12)
            }
            other => panic!("expected two rectified steps, got {other:?}"),
        }
    }
}
