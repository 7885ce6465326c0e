//! # radam-burn
//!
//! RAdam — Rectified Adam (Liu et al., ["On the Variance of the Adaptive Learning Rate and
//! Beyond"](https://arxiv.org/abs/1908.03265), ICLR 2020) — for the [Burn](https://burn.dev)
//! deep-learning framework, following `torch.optim.RAdam` to within float rounding.
//!
//! Adam's adaptive learning rate has a huge variance in the first steps, when the second moment
//! has seen few gradients; warmup is the usual cure. RAdam measures that variance through the
//! length of the approximated moving average, `ρ_t`, takes plain momentum steps while it is
//! intractable, and then scales the adaptive step by the rectification term `r_t`.
//!
//! ```no_run
//! use burn::backend::{Autodiff, NdArray};
//! use burn::nn::{Linear, LinearConfig};
//! use burn::optim::{GradientsParams, Optimizer};
//! use burn::tensor::Tensor;
//! use radam_burn::RAdamConfig;
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! let mut model: Linear<B> = LinearConfig::new(4, 1).init(&device);
//! let mut optimizer = RAdamConfig::new().with_weight_decay(1e-4).init();
//! for _ in 0..100 {
//!     let x = Tensor::<B, 2>::ones([8, 4], &device);
//!     let loss = model.forward(x).powi_scalar(2).mean();
//!     let grads = GradientsParams::from_grads(loss.backward(), &model);
//!     model = optimizer.step(1e-3, model, grads);
//! }
//! ```
//!
//! With Burn's `LearnerBuilder`, pass `RAdamConfig::new().init()` as the optimizer, exactly as
//! `AdamConfig::new().init()`.
//!
//! ## Features
//!
//! - `fused-ndarray` (default): a single-pass, in-place step on Burn's ndarray backend.
//! - `fused-wgpu` (opt-in): the same step as one CubeCL kernel on Burn's wgpu backend (without
//!   Burn's fusion). It brings burn-wgpu, CubeCL and wgpu into the build, so a CPU-only user
//!   leaves it off; on a backend without a kernel the step runs as Burn tensor operations, with
//!   the same results.

#![warn(missing_docs)]

mod adam_2k;
mod config;
mod fused;
mod lookahead;
mod radam;
mod state;

#[cfg(test)]
mod parity_tests;
#[cfg(test)]
mod two_parameter_model;

pub use adam_2k::{Adam2k, Adam2kConfig, Adam2kState};
pub use config::RAdamConfig;
pub use lookahead::{Lookahead, LookaheadConfig, LookaheadRecord, Ranger, RangerConfig};
pub use radam::RAdam;
pub use state::RAdamState;
// The maths shared with the adaptor for Burn 0.22 (radam-burn-022).
pub use radam_core::{RAdamConfigError, rectification, rho, rho_inf};

/// Hooks for this workspace's own tools (the speed check, the r_t metric, the kernel tests),
/// kept out of the documented API: nothing here is needed to train, and it may change.
#[doc(hidden)]
pub mod tooling {
    pub use crate::fused::{fused_kernel_for, memory_traffic_pass};
    pub use radam_core::{RAdamFields, widen};
}
