//! [`RAdamConfig`]: the hyper-parameters, the presets that match each reference implementation,
//! validation, and the constructor of the optimizer that `LearnerBuilder` takes.

use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::SimpleOptimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::tensor::backend::AutodiffBackend;

use radam_core::{Hyper, RAdamConfigError};

use crate::radam::RAdam;

// `RAdamConfig` itself — the struct, its fields with their documented defaults (PyTorch's), the
// builder methods `with_*`, the presets and `validate` — is written once, in radam-core's
// `radam_config!` macro (radam-core/src/config_struct.rs), and expanded here and in radam-burn-022, so
// that both Burn versions take exactly the same configuration. Rustdoc shows the expansion in
// full; this file adds what needs Burn 0.19: building the optimizer.
radam_core::radam_config!(radam_burn);

impl RAdamConfig {
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
        Ok(adaptor(self.build()?, &self.grad_clipping))
    }

    /// Builds the bare [`RAdam`] (a Burn `SimpleOptimizer`), for wrapping in another adaptor.
    pub fn build(&self) -> Result<RAdam, RAdamConfigError> {
        self.validate()?;
        Ok(RAdam::new(self.hyper()))
    }

    /// The hyper-parameters in `f64`, each `f32` field [widened](radam_core::widen) through its
    /// decimal form.
    pub(crate) fn hyper(&self) -> Hyper {
        self.fields().hyper()
    }
}

/// `optimizer` wrapped for a whole module, with `grad_clipping` when one is configured: what
/// every config's `init` returns.
pub(crate) fn adaptor<O, M, B>(
    optimizer: O,
    grad_clipping: &Option<GradientClippingConfig>,
) -> OptimizerAdaptor<O, M, B>
where
    O: SimpleOptimizer<B::InnerBackend>,
    M: AutodiffModule<B>,
    B: AutodiffBackend,
{
    let optimizer = OptimizerAdaptor::from(optimizer);
    match grad_clipping {
        Some(clipping) => optimizer.with_grad_clipping(clipping.init()),
        None => optimizer,
    }
}

#[cfg(test)]
mod tests {
    use burn::grad_clipping::GradientClippingConfig;
    use radam_core::RAdamFields;

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
