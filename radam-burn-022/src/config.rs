//! [`RAdamConfig`] for Burn 0.22: the hyper-parameters with torch's defaults, the presets of the
//! other references, validation, and the [`ModuleOptimizer`] a `Learner` takes.

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{ModuleOptimizer, Optimizer};
use radam_core::RAdamConfigError;

use crate::MasterWeights;
use crate::radam::RAdam;

radam_core::radam_config!(radam_burn_022);

impl RAdamConfig {
    /// Builds the optimizer for a whole module, with the configured gradient clipping: the
    /// [`ModuleOptimizer`] that `Learner::new` takes.
    ///
    /// # Panics
    /// If the config is invalid, with the message of [`validate`](Self::validate).
    /// Use [`try_init`](Self::try_init) to get the error as a value instead.
    pub fn init(&self) -> ModuleOptimizer {
        self.try_init().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`init`](Self::init), but returns an invalid config as an error.
    pub fn try_init(&self) -> Result<ModuleOptimizer, RAdamConfigError> {
        Ok(module_optimizer(self.build()?, &self.grad_clipping))
    }

    /// Like [`init`](Self::init), with f32 master weights and f32 moments for bf16 and f16
    /// parameters ([`MasterWeights`]): the low-precision model follows the f32 trajectory,
    /// rounded, where plain bf16 state would lose every update below half a unit in the last
    /// place of θ. f32 parameters train exactly as with `init`.
    ///
    /// # Panics
    /// If the config is invalid, with the message of [`validate`](Self::validate).
    pub fn init_with_master_weights(&self) -> ModuleOptimizer {
        let radam = self.build().unwrap_or_else(|error| panic!("{error}"));
        module_optimizer(MasterWeights::new(radam), &self.grad_clipping)
    }

    /// Builds the bare [`RAdam`] (a per-tensor `Optimizer`), e.g. for
    /// `ModuleOptimizer::with_group` (one parameter group).
    pub fn build(&self) -> Result<RAdam, RAdamConfigError> {
        self.validate()?;
        Ok(RAdam::new(self.fields().hyper()))
    }
}

/// `optimizer` for a whole module, with `grad_clipping` when one is configured: what every
/// config's `init` returns.
pub(crate) fn module_optimizer(
    optimizer: impl Optimizer,
    grad_clipping: &Option<GradientClippingConfig>,
) -> ModuleOptimizer {
    let optimizer = ModuleOptimizer::from(optimizer);
    match grad_clipping {
        Some(clipping) => optimizer.with_grad_clipping(clipping.init()),
        None => optimizer,
    }
}

#[cfg(test)]
mod tests {
    use burn::config::Config;
    use burn::grad_clipping::GradientClippingConfig;
    use radam_core::{Preset, RAdamFields};

    use super::*;

    #[test]
    fn defaults_are_pytorchs_and_presets_the_references() {
        let config = RAdamConfig::new();
        assert_eq!(config.fields(), RAdamFields::torch());
        assert!(config.grad_clipping.is_none());
        let paper = RAdamConfig::paper();
        assert_eq!(paper.threshold, Preset::PAPER.threshold);
        assert!(paper.degenerated_to_sgd && paper.decoupled_weight_decay);
        let official = RAdamConfig::official();
        assert_eq!(official.threshold, Preset::OFFICIAL.threshold);
        assert!(!official.degenerated_to_sgd && official.decoupled_weight_decay);
    }

    #[test]
    fn bad_configs_are_one_clear_error() {
        let error = |config: RAdamConfig| config.try_init().err().unwrap().to_string();
        assert_eq!(
            error(RAdamConfig::new().with_beta_2(1.0)),
            "invalid RAdamConfig: beta_2 = 1.0 must lie in [0, 1)"
        );
        assert_eq!(
            error(RAdamConfig::new().with_threshold(3.0)),
            "invalid RAdamConfig: threshold = 3.0 must be at least 4: the rectification term r_t \
             is undefined for 2 < ρ_t < 4"
        );
        assert_eq!(
            error(RAdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Value(-1.0)))),
            "invalid RAdamConfig: grad_clipping (Value) = -1.0 must be finite and > 0"
        );
    }

    #[test]
    fn config_round_trips_through_json() {
        let config = RAdamConfig::official();
        let back = RAdamConfig::load_binary(config.to_string().as_bytes()).unwrap();
        assert_eq!(back.threshold, config.threshold);
        assert_eq!(back.degenerated_to_sgd, config.degenerated_to_sgd);
    }
}
