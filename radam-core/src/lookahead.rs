//! Lookahead (Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step back",
//! NeurIPS 2019) without a framework: its fields and their checks, and the synchronisation of the
//! slow weights as Burn tensor operations ([`lookahead_sync!`](crate::lookahead_sync)).
//!
//! The wrapped ("fast") optimizer takes its steps as usual; after every `k` of them the slow
//! weights `φ` move a fraction `α` of the way towards the fast ones, and the fast weights restart
//! from there: `φ ← φ + α·(θ − φ)`, `θ ← φ` (the paper's Algorithm 1).

use crate::error::RAdamConfigError;

/// The fields of a `LookaheadConfig`; the paper's defaults are `k = 5`, `α = 0.5`.
#[derive(Clone, Debug, PartialEq)]
pub struct LookaheadFields {
    /// `k`: fast steps between two synchronisations, `≥ 1`.
    pub k: usize,
    /// `α`: the slow weights' step towards the fast ones, in `(0, 1]`.
    pub alpha: f32,
}

impl LookaheadFields {
    /// Checks `k` and `α`, naming the first field that is unusable.
    ///
    /// ```
    /// use radam_core::LookaheadFields;
    /// assert_eq!(
    ///     LookaheadFields { k: 0, alpha: 0.5 }.validate().unwrap_err().to_string(),
    ///     "invalid LookaheadConfig: k = 0 must be at least 1"
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), RAdamConfigError> {
        const NAME: &str = "LookaheadConfig";
        if self.k == 0 {
            return Err(RAdamConfigError::of(
                NAME,
                "k",
                self.k,
                "must be at least 1",
            ));
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(RAdamConfigError::of(
                NAME,
                "alpha",
                self.alpha,
                "must lie in (0, 1]",
            ));
        }
        Ok(())
    }

    /// Whether the slow weights synchronise after fast step `step` (counted from 1).
    pub fn synchronises_after(&self, step: usize) -> bool {
        step.is_multiple_of(self.k)
    }
}

/// The slow weights after a synchronisation, `φ + α·(θ − φ)`, with Burn tensor operations for
/// the tensor type of whichever Burn version expands it: `lookahead_sync!(phi, theta, alpha)`,
/// `phi` and `theta` tensors of one shape on one device, `alpha` an `f32`. The fast weights
/// restart from the result.
#[macro_export]
macro_rules! lookahead_sync {
    ($phi:expr, $theta:expr, $alpha:expr) => {{
        let phi = $phi;
        // φ ← φ + α·(θ − φ)   (Algorithm 1, after k inner steps)
        phi.clone().add(($theta - phi).mul_scalar($alpha))
    }};
}

/// Defines `LookaheadConfig` and `RangerConfig` in the calling crate, for the Burn that crate
/// names `burn`, as [`radam_config!`](crate::radam_config) does `RAdamConfig`: fields, documented
/// defaults and `validate`, once for every Burn version. The calling crate provides
/// `RAdamConfig`, `Lookahead` and `Ranger`, and the constructors in `impl` blocks of its own.
///
/// `lookahead_config!(crate_name)`: `crate_name` is the calling crate's name in Rust (for the
/// documentation's examples).
// `crate::RAdamConfig` names the calling crate's config on purpose: each Burn version has its own.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! lookahead_config {
    ($crate_name:ident) => {
        /// Configuration of [`Lookahead`](crate::Lookahead); the defaults are the paper's
        /// (`k = 5`, `α = 0.5`).
        ///
        /// ```
        #[doc = concat!("use ", stringify!($crate_name), "::LookaheadConfig;")]
        ///
        /// let config = LookaheadConfig::new().with_k(6);
        /// assert_eq!(config.alpha, 0.5);
        /// assert!(config.validate().is_ok());
        /// ```
        #[derive(burn::config::Config, Debug)]
        pub struct LookaheadConfig {
            /// `k`: fast steps between two synchronisations of the slow weights. Must be `≥ 1`.
            #[config(default = 5)]
            pub k: usize,
            /// `α`: the slow weights' step towards the fast ones, `φ ← φ + α·(θ − φ)`. Must lie
            /// in `(0, 1]`; `1` makes Lookahead the wrapped optimizer itself.
            #[config(default = 0.5)]
            pub alpha: f32,
        }

        impl LookaheadConfig {
            /// Checks `k` and `α`, naming the first field that is unusable.
            pub fn validate(&self) -> Result<(), $crate::RAdamConfigError> {
                self.fields().validate()
            }

            /// The fields, as `radam-core` validates them.
            pub fn fields(&self) -> $crate::LookaheadFields {
                $crate::LookaheadFields {
                    k: self.k,
                    alpha: self.alpha,
                }
            }
        }

        /// Configuration of [`Ranger`](crate::Ranger): RAdam (torch's defaults unless set) with
        /// Lookahead over it (`k = 5`, `α = 0.5`), L. Wright's combination of the two (2019).
        /// The original Ranger used `β1 = 0.95` and `k = 6`; set them to match it.
        ///
        /// ```
        #[doc = concat!("use ", stringify!($crate_name), "::{LookaheadConfig, RAdamConfig, RangerConfig};")]
        ///
        /// let config = RangerConfig::new(
        ///     RAdamConfig::new().with_beta_1(0.95),
        ///     LookaheadConfig::new().with_k(6),
        /// );
        /// assert!(config.validate().is_ok());
        /// ```
        #[derive(burn::config::Config, Debug)]
        pub struct RangerConfig {
            /// The fast optimizer, RAdam.
            pub radam: crate::RAdamConfig,
            /// The slow weights' schedule.
            pub lookahead: LookaheadConfig,
        }

        impl RangerConfig {
            /// Checks both configs, naming the first field that is unusable.
            pub fn validate(&self) -> Result<(), $crate::RAdamConfigError> {
                self.radam.validate()?;
                self.lookahead.validate()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronises_every_k_steps() {
        let fields = LookaheadFields { k: 3, alpha: 0.5 };
        let steps: Vec<usize> = (1..=9).filter(|&s| fields.synchronises_after(s)).collect();
        assert_eq!(steps, [3, 6, 9]);
    }

    #[test]
    fn alpha_outside_the_unit_interval_is_refused() {
        for alpha in [0.0, -0.5, 1.5, f32::NAN] {
            let error = LookaheadFields { k: 5, alpha }.validate().unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("invalid LookaheadConfig: alpha = {alpha:?} must lie in (0, 1]")
            );
        }
        assert!(LookaheadFields { k: 5, alpha: 1.0 }.validate().is_ok());
    }
}
