//! What every `RAdamConfig` checks before it builds an optimizer, whichever Burn it is for, and
//! how its `f32` fields become the `f64` [`Hyper`] the step plan is computed from.

use crate::error::RAdamConfigError;
use crate::step_plan::Hyper;

/// The fields of an `RAdamConfig` that define the maths, as the config holds them (`f32` as in
/// every Burn optimizer config; the threshold in `f64`). Each Burn version's config derives its
/// own `Config` and hands these fields here to be validated and widened.
#[derive(Clone, Debug, PartialEq)]
pub struct RAdamFields {
    /// `β1`, in `[0, 1)`.
    pub beta_1: f32,
    /// `β2`, in `[0, 1)`.
    pub beta_2: f32,
    /// `ε`, finite and `≥ 0`.
    pub epsilon: f32,
    /// `λ`, finite and `≥ 0`.
    pub weight_decay: f32,
    /// Decoupled rather than L2 weight decay.
    pub decoupled_weight_decay: bool,
    /// `ρ_t > threshold` rectifies; at least 4 and finite.
    pub threshold: f64,
    /// Momentum steps (`true`) or no update (`false`) while `ρ_t ≤ threshold`.
    pub degenerated_to_sgd: bool,
}

impl RAdamFields {
    /// Checks that every field makes sense, naming the first one that does not.
    ///
    /// ```
    /// use radam_core::{Preset, RAdamFields};
    /// let mut fields = RAdamFields::torch();
    /// fields.beta_2 = 1.0;
    /// assert_eq!(
    ///     fields.validate().unwrap_err().to_string(),
    ///     "invalid RAdamConfig: beta_2 = 1.0 must lie in [0, 1)"
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), RAdamConfigError> {
        const NAME: &str = "RAdamConfig";
        check_unit_interval(NAME, "beta_1", self.beta_1)?;
        check_unit_interval(NAME, "beta_2", self.beta_2)?;
        check_non_negative(NAME, "epsilon", self.epsilon)?;
        check_non_negative(NAME, "weight_decay", self.weight_decay)?;
        if self.threshold.is_nan() || self.threshold < 4.0 {
            return Err(RAdamConfigError::new(
                "threshold",
                self.threshold,
                "must be at least 4: the rectification term r_t is undefined for 2 < ρ_t < 4",
            ));
        }
        if self.threshold.is_infinite() {
            return Err(RAdamConfigError::new(
                "threshold",
                self.threshold,
                "must be finite (a saved config could not hold it): f64::MAX never rectifies",
            ));
        }
        Ok(())
    }

    /// The hyper-parameters in `f64`, each `f32` field [widened](widen) through its decimal
    /// form.
    pub fn hyper(&self) -> Hyper {
        Hyper {
            beta_1: widen(self.beta_1),
            beta_2: widen(self.beta_2),
            epsilon: widen(self.epsilon),
            weight_decay: widen(self.weight_decay),
            decoupled_weight_decay: self.decoupled_weight_decay,
            threshold: self.threshold,
            degenerated_to_sgd: self.degenerated_to_sgd,
        }
    }

    /// `torch.optim.RAdam`'s defaults: β = (0.9, 0.999), ε = 1e-8, no weight decay (L2 when
    /// set), rectification when `ρ_t > 5`, momentum steps before.
    pub fn torch() -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            threshold: 5.0,
            degenerated_to_sgd: true,
        }
    }
}

/// What a preset of `RAdamConfig` changes from torch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preset {
    /// `ρ_t > threshold` rectifies.
    pub threshold: f64,
    /// Momentum steps (`true`) or no update (`false`) while `ρ_t ≤ threshold`.
    pub degenerated_to_sgd: bool,
    /// Decoupled weight decay.
    pub decoupled_weight_decay: bool,
}

impl Preset {
    /// The paper's Algorithm 2 (Liu et al. 2020): rectify when `ρ_t > 4` (first adaptive step 5
    /// with `β2 = 0.999`, one earlier than PyTorch), momentum steps before that, and decoupled
    /// weight decay as in the paper's experiments. `ε` is placed as in PyTorch (Algorithm 2 has
    /// none).
    pub const PAPER: Self = Self {
        threshold: 4.0,
        degenerated_to_sgd: true,
        decoupled_weight_decay: true,
    };

    /// The official implementation (github.com/LiyuanLucasLiu/RAdam): rectify when `ρ_t ≥ 5`,
    /// skip the update entirely below it, and decoupled weight decay `θ ← θ − α·λ·θ` applied
    /// only on the steps that update θ.
    ///
    /// `ρ_t ≥ 5` is expressed as `ρ_t > threshold` with `threshold` the largest `f64` below 5.
    pub const OFFICIAL: Self = Self {
        threshold: f64::from_bits(5.0f64.to_bits() - 1),
        degenerated_to_sgd: false,
        decoupled_weight_decay: true,
    };
}

/// Widens an `f32` hyper-parameter to the `f64` with the same shortest decimal representation:
/// `0.999_f32` becomes the `f64` `0.999`, exactly the Python float PyTorch uses, rather than
/// `f64::from(0.999_f32)` = `0.99900001287…`. Every scalar of RAdam, of Adam-2k and of the r_t
/// shown during training is computed from values widened this way.
///
/// ```
/// assert_eq!(radam_core::widen(0.999), 0.999_f64);
/// assert_ne!(f64::from(0.999_f32), 0.999_f64);
/// ```
pub fn widen(value: f32) -> f64 {
    value
        .to_string()
        .parse()
        .expect("an f32's Display output always parses as f64")
}

/// `value` of `config`'s `field` must lie in `[0, 1)`.
pub fn check_unit_interval(
    config: &'static str,
    field: &'static str,
    value: f32,
) -> Result<(), RAdamConfigError> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(RAdamConfigError::of(
            config,
            field,
            value,
            "must lie in [0, 1)",
        ))
    }
}

/// `value` of `config`'s `field` must be finite and `≥ 0`.
pub fn check_non_negative(
    config: &'static str,
    field: &'static str,
    value: f32,
) -> Result<(), RAdamConfigError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(RAdamConfigError::of(
            config,
            field,
            value,
            "must be finite and ≥ 0",
        ))
    }
}

/// `value` of `config`'s `field` (a gradient-clipping limit) must be finite and `> 0`.
pub fn check_positive(
    config: &'static str,
    field: &'static str,
    value: f32,
) -> Result<(), RAdamConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(RAdamConfigError::of(
            config,
            field,
            value,
            "must be finite and > 0",
        ))
    }
}

/// Whether saved moments of shapes `m` and `v` belong to a parameter of shape `theta`: a record
/// from another model (or a damaged one) is refused with a message instead of being stepped
/// with.
pub fn state_fits(theta: &[usize], m: &[usize], v: &[usize]) -> Result<(), String> {
    if m == theta && v == theta {
        Ok(())
    } else {
        Err(format!(
            "the optimizer's saved state does not fit the parameter: θ has shape {theta:?}, m_t {m:?} \
             and v_t {v:?} (is the optimizer record from another model?)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_keeps_the_decimal_value() {
        assert_eq!(widen(0.999), 0.999_f64);
        assert_eq!(widen(0.9), 0.9_f64);
        assert_eq!(widen(1e-8), 1e-8_f64);
        assert_eq!(widen(0.0), 0.0);
        assert!(widen(f32::NAN).is_nan());
    }

    #[test]
    fn official_threshold_means_at_least_five() {
        let threshold = Preset::OFFICIAL.threshold;
        assert!(5.0 > threshold);
        assert!(threshold > 4.999_999_999_999);
    }

    #[test]
    fn a_state_of_another_shape_is_refused() {
        assert_eq!(
            state_fits(&[3, 4], &[4, 3], &[4, 3]).unwrap_err(),
            "the optimizer's saved state does not fit the parameter: θ has shape [3, 4], m_t [4, 3] and \
             v_t [4, 3] (is the optimizer record from another model?)"
        );
        assert!(state_fits(&[3, 4], &[3, 4], &[3, 4]).is_ok());
        assert!(state_fits(&[3, 4], &[3, 4], &[3, 5]).is_err());
    }
}
