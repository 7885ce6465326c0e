//! # radam-core
//!
//! The maths of RAdam — Rectified Adam (Liu et al., ["On the Variance of the Adaptive Learning
//! Rate and Beyond"](https://arxiv.org/abs/1908.03265), ICLR 2020) — with no deep-learning
//! framework: the length of the approximated moving average `ρ_t`, the rectification term `r_t`,
//! the plan of each step (its branch of Algorithm 2 and every scalar factor, in `f64`), the
//! validation of the hyper-parameters, the presets, and the element-wise step as Burn tensor
//! operations ([`tensor_op_step!`]), and the definition of `RAdamConfig` ([`radam_config!`]);
//! the fused step's constants and its one-pass CPU loop ([`fused_step`]); likewise the paper's
//! Adam-2k control ([`Adam2kPlan`], [`adam_2k_step!`]) and Lookahead's
//! fields and synchronisation ([`LookaheadFields`], [`lookahead_sync!`]).
//!
//! `radam-burn` (Burn 0.19) and `radam-burn-022` (Burn 0.22) are thin adaptors over this crate,
//! so both compute the same maths from the same text. Use one of them, not this crate, to train.

#![warn(missing_docs)]

mod adam_2k;
mod config_struct;
mod error;
pub mod fused_step;
mod lookahead;
mod rectification;
mod step_plan;
mod tensor_step;
mod validation;

#[cfg(feature = "reference-data")]
pub mod reference_data;

pub use adam_2k::{Adam2kFields, Adam2kHyper, Adam2kPlan};
pub use error::RAdamConfigError;
pub use lookahead::LookaheadFields;
pub use rectification::{rectification, rho, rho_inf};
pub use step_plan::{Hyper, StepPlan, Update};
pub use validation::{
    Preset, RAdamFields, check_non_negative, check_positive, check_unit_interval, state_fits, widen,
};
