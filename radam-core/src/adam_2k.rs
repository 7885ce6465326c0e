//! Adam-2k, the paper's control for the variance hypothesis (Liu et al. 2020, §3.2), without a
//! framework: its fields and their checks, the plan of each step, and the step as Burn tensor
//! operations ([`adam_2k_step!`](crate::adam_2k_step)) for every Burn version's adaptor.
//!
//! For the first `k` steps only the second moment `v_t` is updated; θ and the first moment `m_t`
//! stay frozen. After that it is Adam, both bias corrections counting the total step `t` (as the
//! code behind the paper's figure, `Adam2` in `nmt/my_module/adam2.py` of
//! github.com/LiyuanLucasLiu/RAdam, does), with decoupled weight decay on updating steps.

use crate::error::RAdamConfigError;
use crate::validation::{check_non_negative, check_unit_interval, widen};

/// The fields of an `Adam2kConfig` that define the maths, as the config holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam2kFields {
    /// `β1`, in `[0, 1)`.
    pub beta_1: f32,
    /// `β2`, in `[0, 1)`.
    pub beta_2: f32,
    /// `ε`, finite and `≥ 0`, added to the un-corrected `sqrt(v_t)`.
    pub epsilon: f32,
    /// Decoupled weight decay `λ`, finite and `≥ 0`.
    pub weight_decay: f32,
    /// `k`: the first steps that update `v_t` only. `0` is plain Adam.
    pub frozen_steps: usize,
}

impl Adam2kFields {
    /// Checks every field, naming the first that is unusable.
    ///
    /// ```
    /// use radam_core::Adam2kFields;
    /// let fields = Adam2kFields { beta_1: 0.9, beta_2: 1.0, epsilon: 1e-8, weight_decay: 0.0, frozen_steps: 2000 };
    /// assert_eq!(
    ///     fields.validate().unwrap_err().to_string(),
    ///     "invalid Adam2kConfig: beta_2 = 1.0 must lie in [0, 1)"
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), RAdamConfigError> {
        const NAME: &str = "Adam2kConfig";
        check_unit_interval(NAME, "beta_1", self.beta_1)?;
        check_unit_interval(NAME, "beta_2", self.beta_2)?;
        check_non_negative(NAME, "epsilon", self.epsilon)?;
        check_non_negative(NAME, "weight_decay", self.weight_decay)
    }

    /// The fields widened to `f64`, for [`Adam2kPlan::new`].
    pub fn hyper(&self) -> Adam2kHyper {
        Adam2kHyper {
            beta_1: widen(self.beta_1),
            beta_2: widen(self.beta_2),
            epsilon: widen(self.epsilon),
            weight_decay: widen(self.weight_decay),
            frozen_steps: self.frozen_steps,
        }
    }
}

/// Adam-2k's hyper-parameters, [widened](crate::widen) to `f64` and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam2kHyper {
    /// `β1`.
    pub beta_1: f64,
    /// `β2`.
    pub beta_2: f64,
    /// `ε`.
    pub epsilon: f64,
    /// Decoupled weight decay `λ`.
    pub weight_decay: f64,
    /// `k`.
    pub frozen_steps: usize,
}

/// Everything one Adam-2k step needs besides the tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam2kPlan {
    /// `β1`.
    pub beta_1: f64,
    /// `β2`.
    pub beta_2: f64,
    /// `t ≤ k`: only `v_t` moves.
    pub frozen: bool,
    /// `α·λ`: `θ ← θ − α·λ·θ` before the update (0 when decay is off or the step is frozen).
    pub decay: f64,
    /// `α·sqrt(1 − β2^t) / (1 − β1^t)`, `t` the total step.
    pub step_size: f64,
    /// `ε`.
    pub epsilon: f64,
}

impl Adam2kPlan {
    /// The plan for step `time` (counted from 1, frozen steps included) at learning rate `lr`.
    pub fn new(hyper: &Adam2kHyper, time: usize, lr: f64) -> Self {
        let step = time as f64;
        let frozen = time <= hyper.frozen_steps;
        Self {
            beta_1: hyper.beta_1,
            beta_2: hyper.beta_2,
            frozen,
            decay: if frozen { 0.0 } else { lr * hyper.weight_decay },
            step_size: lr * (1.0 - hyper.beta_2.powf(step)).sqrt()
                / (1.0 - hyper.beta_1.powf(step)),
            epsilon: hyper.epsilon,
        }
    }
}

/// One Adam-2k step with Burn tensor operations, for the tensor type of whichever Burn version
/// expands it.
///
/// `adam_2k_step!(plan, theta, grad, moments)`: `plan` is a `&`[`Adam2kPlan`], `theta` and `grad`
/// are tensors of one shape, `moments` is `Option<(m_{t−1}, v_{t−1})>` (`None` on the first
/// step: both zero). Evaluates to `(θ_t, m_t, v_t)`.
#[macro_export]
macro_rules! adam_2k_step {
    ($plan:expr, $theta:expr, $grad:expr, $moments:expr) => {{
        let plan: &$crate::Adam2kPlan = $plan;
        let theta = $theta;
        let g_t = $grad;
        let (m_prev, v_prev) = match $moments {
            Some(moments) => moments,
            None => (theta.zeros_like(), theta.zeros_like()),
        };
        // v_t ← β2·v_{t−1} + (1 − β2)·g_t²   (every step, the frozen ones included)
        let v_t = v_prev
            .mul_scalar(plan.beta_2)
            .add(g_t.clone().mul_scalar(1.0 - plan.beta_2).mul(g_t.clone()));
        if plan.frozen {
            // θ and m frozen while v_t gathers its first k gradients (Adam-2k, §3.2)
            (theta, m_prev, v_t)
        } else {
            // θ ← θ − α·λ·θ   (decoupled weight decay, only on updating steps)
            let theta = if plan.decay != 0.0 {
                theta.clone() - theta.mul_scalar(plan.decay)
            } else {
                theta
            };
            // m_t ← β1·m_{t−1} + (1 − β1)·g_t
            let m_t = m_prev
                .mul_scalar(plan.beta_1)
                .add(g_t.mul_scalar(1.0 - plan.beta_1));
            // θ_t ← θ − α·sqrt(1 − β2^t)/(1 − β1^t) · m_t / (sqrt(v_t) + ε)   (Kingma & Ba, §2)
            let denominator = v_t.clone().sqrt().add_scalar(plan.epsilon);
            let theta = theta - m_t.clone().mul_scalar(plan.step_size).div(denominator);
            (theta, m_t, v_t)
        }
    }};
}

/// Defines `Adam2kConfig` in the calling crate, for the Burn that crate names `burn`, as
/// [`radam_config!`](crate::radam_config) does `RAdamConfig`: the fields, their documented
/// defaults and `validate`, once for every Burn version. The calling crate provides `Adam2k` and
/// the constructors (`init`, `try_init`, `build`) in an `impl Adam2kConfig` of its own.
///
/// `adam_2k_config!(crate_name)`: `crate_name` is the calling crate's name in Rust (for the
/// documentation's example).
#[macro_export]
macro_rules! adam_2k_config {
    ($crate_name:ident) => {
        /// Configuration of [`Adam2k`](crate::Adam2k): Adam whose first `frozen_steps` steps only
        /// update `v_t` (the paper's control experiment, Liu et al. 2020, §3.2).
        ///
        /// ```
        #[doc = concat!("use ", stringify!($crate_name), "::Adam2kConfig;")]
        ///
        /// // The paper's Adam-2k: v_t alone for the first 2000 steps, then Adam.
        /// let config = Adam2kConfig::new().with_frozen_steps(2000);
        /// assert_eq!(config.epsilon, 1e-8);
        /// assert!(config.validate().is_ok());
        /// ```
        #[derive(burn::config::Config, Debug)]
        pub struct Adam2kConfig {
            /// Exponential decay rate of the first moment `m_t`. Must lie in `[0, 1)`.
            #[config(default = 0.9)]
            pub beta_1: f32,
            /// Exponential decay rate of the second moment `v_t`. Must lie in `[0, 1)`.
            #[config(default = 0.999)]
            pub beta_2: f32,
            /// Added to `sqrt(v_t)` (un-corrected, as the reference and PyTorch's Adam do). Must
            /// be `≥ 0`.
            #[config(default = 1e-8)]
            pub epsilon: f32,
            /// Decoupled weight decay `λ`: `θ ← θ − α·λ·θ` on every step that updates θ (none
            /// during the frozen steps), as the reference does. Must be `≥ 0`.
            #[config(default = 0.0)]
            pub weight_decay: f32,
            /// `k`: the number of first steps that update `v_t` only. `0` is plain Adam.
            #[config(default = 2000)]
            pub frozen_steps: usize,
            /// Gradient clipping, applied per parameter tensor before the step (Burn's
            /// semantics).
            pub grad_clipping: Option<burn::grad_clipping::GradientClippingConfig>,
        }

        impl Adam2kConfig {
            /// The config with the maths of `fields` and no gradient clipping.
            pub fn from_fields(fields: &$crate::Adam2kFields) -> Self {
                Self::new()
                    .with_beta_1(fields.beta_1)
                    .with_beta_2(fields.beta_2)
                    .with_epsilon(fields.epsilon)
                    .with_weight_decay(fields.weight_decay)
                    .with_frozen_steps(fields.frozen_steps)
            }

            /// The fields that define the maths, as `radam-core` validates and widens them.
            pub fn fields(&self) -> $crate::Adam2kFields {
                $crate::Adam2kFields {
                    beta_1: self.beta_1,
                    beta_2: self.beta_2,
                    epsilon: self.epsilon,
                    weight_decay: self.weight_decay,
                    frozen_steps: self.frozen_steps,
                }
            }

            /// Checks every hyper-parameter, naming the first field that is unusable.
            pub fn validate(&self) -> Result<(), $crate::RAdamConfigError> {
                self.fields().validate()?;
                $crate::check_grad_clipping!("Adam2kConfig", &self.grad_clipping)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hyper(frozen_steps: usize, weight_decay: f64) -> Adam2kHyper {
        Adam2kHyper {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay,
            frozen_steps,
        }
    }

    #[test]
    fn frozen_steps_then_adam_with_the_total_steps_bias_corrections() {
        let hyper = hyper(2, 0.1);
        let frozen = Adam2kPlan::new(&hyper, 2, 0.5);
        assert!(frozen.frozen);
        assert_eq!(frozen.decay, 0.0);
        let third = Adam2kPlan::new(&hyper, 3, 0.5);
        assert!(!third.frozen);
        assert_eq!(third.decay, 0.05);
        let expected = 0.5 * (1.0 - 0.999f64.powi(3)).sqrt() / (1.0 - 0.9f64.powi(3));
        assert_eq!(third.step_size, expected);
    }

    #[test]
    fn without_frozen_steps_no_step_is_frozen() {
        assert!(!Adam2kPlan::new(&hyper(0, 0.0), 1, 1e-3).frozen);
    }

    #[test]
    fn invalid_fields_name_themselves() {
        let fields = Adam2kFields {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: f32::NAN,
            frozen_steps: 5,
        };
        assert_eq!(
            fields.validate().unwrap_err().to_string(),
            "invalid Adam2kConfig: weight_decay = NaN must be finite and ≥ 0"
        );
    }
}
