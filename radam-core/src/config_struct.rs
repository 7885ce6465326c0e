//! The one definition of `RAdamConfig` — fields, defaults, documentation, presets and checks —
//! expanded by each Burn version's adaptor with that version's `#[derive(Config)]`.
//!
//! A config derives Burn's `Config`, and each Burn version has its own derive and its own
//! `GradientClippingConfig`, so the struct cannot live in this Burn-free crate as a type. It
//! lives here as text instead: [`radam_config!`](crate::radam_config) defines it where it is
//! expanded, with the `burn` of that crate, so both versions have the same fields and defaults by
//! construction. Each adaptor adds only what differs between Burn versions: the constructors of
//! its optimizer (`init`, `try_init`, `build`).

/// Defines `RAdamConfig` in the calling crate, for the Burn that crate names `burn`.
///
/// `radam_config!(crate_name)`: `crate_name` is the calling crate's name in Rust (for the
/// documentation's example). The calling crate provides `RAdam`, and `init`/`try_init`/`build`
/// in an `impl RAdamConfig` of its own.
#[macro_export]
macro_rules! radam_config {
    ($crate_name:ident) => {
        /// Configuration of the [RAdam](crate::RAdam) optimizer.
        ///
        /// The defaults are those of `torch.optim.RAdam`, and with them this optimizer follows
        /// PyTorch's trajectory to within float rounding. Two presets reproduce the other
        /// references: [`RAdamConfig::paper`] and [`RAdamConfig::official`].
        ///
        /// The learning rate is not part of the config: as with every Burn optimizer it comes
        /// from the learning-rate scheduler on each step.
        ///
        /// ```
        #[doc = concat!("use ", stringify!($crate_name), "::RAdamConfig;")]
        ///
        /// let config = RAdamConfig::new()
        ///     .with_beta_2(0.99)
        ///     .with_weight_decay(1e-4)
        ///     .with_decoupled_weight_decay(true);
        /// assert!(config.validate().is_ok());
        /// ```
        #[derive(burn::config::Config, Debug)]
        pub struct RAdamConfig {
            /// Exponential decay rate of the first moment `m_t`. Must lie in `[0, 1)`.
            #[config(default = 0.9)]
            pub beta_1: f32,
            /// Exponential decay rate of the second moment `v_t`. Must lie in `[0, 1)`.
            /// With `β2 ≤ 0.6`, `ρ∞ ≤ 4` and the optimizer never leaves its momentum phase.
            #[config(default = 0.999)]
            pub beta_2: f32,
            /// Added to `sqrt(v_t)` (the *un*-corrected second moment, as PyTorch does) in the
            /// denominator. PyTorch's default `1e-8`, not Burn's Adam default `1e-5`. Must be
            /// `≥ 0`; with `0`, a parameter whose gradients have all been zero gets `0/0 = NaN`,
            /// as in PyTorch.
            #[config(default = 1e-8)]
            pub epsilon: f32,
            /// Weight decay `λ`. Must be `≥ 0`. See
            /// [`decoupled_weight_decay`](Self::decoupled_weight_decay).
            #[config(default = 0.0)]
            pub weight_decay: f32,
            /// `false` (default): L2 penalty, `g_t ← g_t + λ·θ`, as `torch.optim.RAdam`.
            /// `true`: decoupled decay, `θ ← θ·(1 − α·λ)` on every step that updates θ (AdamW
            /// style, `decoupled_weight_decay=True` in PyTorch).
            #[config(default = false)]
            pub decoupled_weight_decay: bool,
            /// The step is rectified when `ρ_t > threshold`. PyTorch uses 5 (first adaptive
            /// step: 6 with `β2 = 0.999`); the paper's Algorithm 2 uses 4 (first adaptive step:
            /// 5). Must be `≥ 4`: `r_t` is not a real number for `2 < ρ_t < 4`. `f64::MAX` never
            /// rectifies (an infinite threshold is refused: JSON, in which configs are saved,
            /// has no infinity).
            #[config(default = 5.0)]
            pub threshold: f64,
            /// What happens while `ρ_t ≤ threshold`. `true` (default): an un-adapted momentum
            /// step `θ ← θ − α·m̂_t`. `false`: the parameters are left unchanged (the moments and
            /// the step count still advance), as the official repository recommends against
            /// early divergence.
            #[config(default = true)]
            pub degenerated_to_sgd: bool,
            /// Gradient clipping, applied per parameter tensor before the step (Burn's
            /// semantics).
            pub grad_clipping: Option<burn::grad_clipping::GradientClippingConfig>,
        }

        impl RAdamConfig {
            /// The paper's Algorithm 2 (Liu et al. 2020): rectify when `ρ_t > 4` (first adaptive
            /// step 5 with `β2 = 0.999`, one earlier than PyTorch), momentum steps before that,
            /// and decoupled weight decay as in the paper's experiments (set it with
            /// `with_weight_decay`). `ε` is placed as in PyTorch (Algorithm 2 has none).
            pub fn paper() -> Self {
                Self::new().with_preset($crate::Preset::PAPER)
            }

            /// The official implementation (github.com/LiyuanLucasLiu/RAdam): rectify when
            /// `ρ_t ≥ 5`, skip the update entirely below it (`degenerated_to_sgd = false`), and
            /// decoupled weight decay `θ ← θ − α·λ·θ` applied only on the steps that update θ.
            ///
            /// `ρ_t ≥ 5` is expressed as `ρ_t > threshold` with `threshold` the largest `f64`
            /// below 5.
            pub fn official() -> Self {
                Self::new().with_preset($crate::Preset::OFFICIAL)
            }

            fn with_preset(self, preset: $crate::Preset) -> Self {
                self.with_threshold(preset.threshold)
                    .with_degenerated_to_sgd(preset.degenerated_to_sgd)
                    .with_decoupled_weight_decay(preset.decoupled_weight_decay)
            }

            /// The config with the maths of `fields` and no gradient clipping.
            pub fn from_fields(fields: &$crate::RAdamFields) -> Self {
                Self::new()
                    .with_beta_1(fields.beta_1)
                    .with_beta_2(fields.beta_2)
                    .with_epsilon(fields.epsilon)
                    .with_weight_decay(fields.weight_decay)
                    .with_decoupled_weight_decay(fields.decoupled_weight_decay)
                    .with_threshold(fields.threshold)
                    .with_degenerated_to_sgd(fields.degenerated_to_sgd)
            }

            /// The fields that define the maths, as `radam-core` validates and widens them.
            pub fn fields(&self) -> $crate::RAdamFields {
                $crate::RAdamFields {
                    beta_1: self.beta_1,
                    beta_2: self.beta_2,
                    epsilon: self.epsilon,
                    weight_decay: self.weight_decay,
                    decoupled_weight_decay: self.decoupled_weight_decay,
                    threshold: self.threshold,
                    degenerated_to_sgd: self.degenerated_to_sgd,
                }
            }

            /// Checks that every hyper-parameter makes sense, naming the first field that does
            /// not.
            pub fn validate(&self) -> Result<(), $crate::RAdamConfigError> {
                self.fields().validate()?;
                $crate::check_grad_clipping!("RAdamConfig", &self.grad_clipping)
            }
        }
    };
}

/// Checks the `Option<GradientClippingConfig>` (of the calling crate's Burn) of the config named
/// `config`: its limit must be finite and `> 0`. Evaluates to `Result<(), RAdamConfigError>`.
#[doc(hidden)]
#[macro_export]
macro_rules! check_grad_clipping {
    ($config:expr, $grad_clipping:expr) => {
        match $grad_clipping {
            Some(burn::grad_clipping::GradientClippingConfig::Value(limit)) => {
                $crate::check_positive($config, "grad_clipping (Value)", *limit)
            }
            Some(burn::grad_clipping::GradientClippingConfig::Norm(limit)) => {
                $crate::check_positive($config, "grad_clipping (Norm)", *limit)
            }
            None => Ok(()),
        }
    };
}
