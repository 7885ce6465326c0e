//! [`RAdamConfig`]: the hyper-parameters, the presets that match each reference implementation,
//! validation, and the constructor of the optimizer that `LearnerBuilder` takes.

use burn::config::Config;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::tensor::backend::AutodiffBackend;

use radam_core::{Hyper, Preset, RAdamConfigError, RAdamFields, check_positive};

use crate::radam::RAdam;

/// Configuration of the [RAdam](crate::RAdam) optimizer.
///
/// The defaults are those of `torch.optim.RAdam`, and with them this optimizer follows PyTorch's
/// trajectory to within float rounding. Two presets reproduce the other references:
/// [`RAdamConfig::paper`] and [`RAdamConfig::official`].
///
/// The learning rate is not part of the config: as with every Burn optimizer it comes from the
/// learning-rate scheduler on each step.
///
/// ```
/// use radam_burn::RAdamConfig;
///
/// let config = RAdamConfig::new()
///     .with_beta_2(0.99)
///     .with_weight_decay(1e-4)
///     .with_decoupled_weight_decay(true);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Config, Debug)]
pub struct RAdamConfig {
    /// Exponential decay rate of the first moment `m_t`. Must lie in `[0, 1)`.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Exponential decay rate of the second moment `v_t`. Must lie in `[0, 1)`.
    /// With `β2 ≤ 0.6`, `ρ∞ ≤ 4` and the optimizer never leaves its momentum phase.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Added to `sqrt(v_t)` (the *un*-corrected second moment, as PyTorch does) in the
    /// denominator. PyTorch's default `1e-8`, not Burn's Adam default `1e-5`. Must be `≥ 0`;
    /// with `0`, a parameter whose gradients have all been zero gets `0/0 = NaN`, as in PyTorch.
    #[config(default = 1e-8)]
    pub epsilon: f32,
    /// Weight decay `λ`. Must be `≥ 0`. See [`decoupled_weight_decay`](Self::decoupled_weight_decay).
    #[config(default = 0.0)]
    pub weight_decay: f32,
    /// `false` (default): L2 penalty, `g_t ← g_t + λ·θ`, as `torch.optim.RAdam`.
    /// `true`: decoupled decay, `θ ← θ·(1 − α·λ)` on every step that updates θ (AdamW style,
    /// `decoupled_weight_decay=True` in PyTorch).
    #[config(default = false)]
    pub decoupled_weight_decay: bool,
    /// The step is rectified when `ρ_t > threshold`. PyTorch uses 5 (first adaptive step: 6 with
    /// `β2 = 0.999`); the paper's Algorithm 2 uses 4 (first adaptive step: 5). Must be `≥ 4`:
    /// `r_t` is not a real number for `2 < ρ_t < 4`. `f64::MAX` never rectifies (an infinite
    /// threshold is refused: JSON, in which configs are saved, has no infinity).
    #[config(default = 5.0)]
    pub threshold: f64,
    /// What happens while `ρ_t ≤ threshold`. `true` (default): an un-adapted momentum step
    /// `θ ← θ − α·m̂_t`. `false`: the parameters are left unchanged (the moments and the step
    /// count still advance), as the official repository recommends against early divergence.
    #[config(default = true)]
    pub degenerated_to_sgd: bool,
    /// Gradient clipping, applied per parameter tensor before the step (Burn's semantics).
    pub grad_clipping: Option<GradientClippingConfig>,
}

impl RAdamConfig {
    /// The paper's Algorithm 2 (Liu et al. 2020): rectify when `ρ_t > 4` (first adaptive step 5
    /// with `β2 = 0.999`, one earlier than PyTorch), momentum steps before that, and decoupled
    /// weight decay as in the paper's experiments (set it with `with_weight_decay`).
    /// `ε` is placed as in PyTorch (Algorithm 2 has none).
    pub fn paper() -> Self {
        Self::new().with_preset(Preset::PAPER)
    }

    /// The official implementation (github.com/LiyuanLucasLiu/RAdam): rectify when `ρ_t ≥ 5`,
    /// skip the update entirely below it (`degenerated_to_sgd = false`), and decoupled weight
    /// decay `θ ← θ − α·λ·θ` applied only on the steps that update θ.
    ///
    /// `ρ_t ≥ 5` is expressed as `ρ_t > threshold` with `threshold` the largest `f64` below 5.
    pub fn official() -> Self {
        Self::new().with_preset(Preset::OFFICIAL)
    }

    fn with_preset(self, preset: Preset) -> Self {
        self.with_threshold(preset.threshold)
            .with_degenerated_to_sgd(preset.degenerated_to_sgd)
            .with_decoupled_weight_decay(preset.decoupled_weight_decay)
    }

    /// Checks that every hyper-parameter makes sense, naming the first field that does not.
    pub fn validate(&self) -> Result<(), RAdamConfigError> {
        self.fields().validate()?;
        match &self.grad_clipping {
            Some(GradientClippingConfig::Value(limit)) => {
                check_positive("grad_clipping (Value)", *limit)
            }
            Some(GradientClippingConfig::Norm(limit)) => {
                check_positive("grad_clipping (Norm)", *limit)
            }
            None => Ok(()),
        }
    }

    /// Builds the optimizer, wrapped in Burn's [`OptimizerAdaptor`] so that it can be passed
    /// straight to `LearnerBuilder::build` or used with `Optimizer::step`.
    ///
    /// # Panics
    /// If the config is invalid, with the message of [`validate`](Self::validate).
    /// Use [`try_init`](Self::try_init) to get the error as a value instead.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> OptimizerAdaptor<RAdam, M, B> {
        self.try_init().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`init`](Self::init), but returns an invalid config as an error.
    pub fn try_init<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
    ) -> Result<OptimizerAdaptor<RAdam, M, B>, RAdamConfigError> {
        let optimizer = OptimizerAdaptor::from(self.build()?);
        Ok(match &self.grad_clipping {
            Some(clipping) => optimizer.with_grad_clipping(clipping.init()),
            None => optimizer,
        })
    }

    /// Builds the bare [`RAdam`] (a Burn `SimpleOptimizer`), for wrapping in another adaptor.
    pub fn build(&self) -> Result<RAdam, RAdamConfigError> {
        self.validate()?;
        Ok(RAdam::new(self.hyper()))
    }

    /// The hyper-parameters in `f64`, each `f32` field [widened](crate::widen) through its
    /// decimal form.
    pub(crate) fn hyper(&self) -> Hyper {
        self.fields().hyper()
    }

    /// The fields that define the maths, for the checks and the widening shared with every
    /// Burn version.
    fn fields(&self) -> RAdamFields {
        RAdamFields {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            decoupled_weight_decay: self.decoupled_weight_decay,
            threshold: self.threshold,
            degenerated_to_sgd: self.degenerated_to_sgd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_pytorchs() {
        let config = RAdamConfig::new();
        assert_eq!(config.beta_1, 0.9);
        assert_eq!(config.beta_2, 0.999);
        assert_eq!(config.epsilon, 1e-8);
        assert_eq!(config.weight_decay, 0.0);
        assert!(!config.decoupled_weight_decay);
        assert_eq!(config.threshold, 5.0);
        assert!(config.degenerated_to_sgd);
        assert!(config.grad_clipping.is_none());
        assert!(config.validate().is_ok());
        assert_eq!(config.fields(), RAdamFields::torch());
    }

    #[test]
    fn builder_setters_chain() {
        let config = RAdamConfig::new()
            .with_beta_2(0.99)
            .with_weight_decay(1e-4)
            .with_decoupled_weight_decay(true);
        assert_eq!(config.beta_2, 0.99);
        assert_eq!(config.weight_decay, 1e-4);
        assert!(config.decoupled_weight_decay);
    }

    #[test]
    fn official_threshold_means_at_least_five() {
        let threshold = RAdamConfig::official().threshold;
        assert!(5.0 > threshold);
        assert!(threshold > 4.999_999_999_999);
    }

    #[test]
    fn config_round_trips_through_json() {
        let config =
            RAdamConfig::official().with_grad_clipping(Some(GradientClippingConfig::Norm(5.0)));
        let json = serde_json::to_string(&config).unwrap();
        let back: RAdamConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert_eq!(back.threshold, config.threshold);
    }

    fn error_text(config: RAdamConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn bad_configs_name_the_field_and_the_value() {
        assert_eq!(
            error_text(RAdamConfig::new().with_beta_1(1.0)),
            "invalid RAdamConfig: beta_1 = 1.0 must lie in [0, 1)"
        );
        assert_eq!(
            error_text(RAdamConfig::new().with_beta_2(-0.5)),
            "invalid RAdamConfig: beta_2 = -0.5 must lie in [0, 1)"
        );
        assert_eq!(
            error_text(RAdamConfig::new().with_beta_2(f32::NAN)),
            "invalid RAdamConfig: beta_2 = NaN must lie in [0, 1)"
        );
        assert_eq!(
            error_text(RAdamConfig::new().with_epsilon(-1e-8)),
            "invalid RAdamConfig: epsilon = -1e-8 must be finite and ≥ 0"
        );
        assert_eq!(
            error_text(RAdamConfig::new().with_weight_decay(f32::NAN)),
            "invalid RAdamConfig: weight_decay = NaN must be finite and ≥ 0"
        );
        assert_eq!(
            error_text(RAdamConfig::new().with_weight_decay(-0.1)),
            "invalid RAdamConfig: weight_decay = -0.1 must be finite and ≥ 0"
        );
        assert_eq!(
            error_text(RAdamConfig::new().with_threshold(3.0)),
            "invalid RAdamConfig: threshold = 3.0 must be at least 4: the rectification term r_t is \
             undefined for 2 < ρ_t < 4"
        );
        assert_eq!(
            error_text(RAdamConfig::new().with_threshold(f64::NAN)),
            "invalid RAdamConfig: threshold = NaN must be at least 4: the rectification term r_t \
             is undefined for 2 < ρ_t < 4"
        );
        assert_eq!(
            error_text(
                RAdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(0.0)))
            ),
            "invalid RAdamConfig: grad_clipping (Norm) = 0.0 must be finite and > 0"
        );
    }

    #[test]
    fn small_beta_2_and_a_never_rectifying_threshold_are_valid() {
        assert!(RAdamConfig::new().with_beta_2(0.5).validate().is_ok());
        assert!(RAdamConfig::new().with_beta_2(0.0).validate().is_ok());
        assert!(RAdamConfig::new().with_epsilon(0.0).validate().is_ok());
        let never = RAdamConfig::new().with_threshold(f64::MAX);
        assert!(never.validate().is_ok());
        let json = serde_json::to_string(&never).unwrap();
        let back: RAdamConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.threshold, f64::MAX);
        assert_eq!(
            error_text(RAdamConfig::new().with_threshold(f64::INFINITY)),
            "invalid RAdamConfig: threshold = inf must be finite (a saved config could not hold \
             it): f64::MAX never rectifies"
        );
    }
}
