//! # radam-burn-022
//!
//! RAdam — Rectified Adam (Liu et al., ["On the Variance of the Adaptive Learning Rate and
//! Beyond"](https://arxiv.org/abs/1908.03265), ICLR 2020) — for [Burn](https://burn.dev) 0.22,
//! following `torch.optim.RAdam` to within float rounding. It is the same optimizer as
//! `radam-burn` (for Burn 0.19): both are thin adaptors over `radam-core`, which holds the
//! maths (`ρ_t`, `r_t`, the plan of each step and its element-wise operations) once.
//!
//! In Burn 0.22 an optimizer is a per-tensor [`Optimizer`](burn::optim::Optimizer) wrapped in a
//! [`ModuleOptimizer`](burn::optim::ModuleOptimizer); [`RAdamConfig::init`] returns one, ready for
//! `burn::train::Learner::new(model, optimizer, lr_scheduler)` and `SupervisedTraining`.
//!
//! ```no_run
//! use burn::nn::{Linear, LinearConfig};
//! use burn::optim::GradientsParams;
//! use burn::tensor::{Device, Tensor};
//! use radam_burn_022::RAdamConfig;
//!
//! let device = Device::flex().autodiff();
//! let mut model: Linear = LinearConfig::new(4, 1).init(&device);
//! let mut optimizer = RAdamConfig::new().with_weight_decay(1e-4).init();
//! for _ in 0..100 {
//!     let x = Tensor::<2>::ones([8, 4], &device);
//!     let loss = model.forward(x).powi_scalar(2).mean();
//!     let grads = GradientsParams::from_grads(loss.backward(), &model);
//!     model = optimizer.step(1e-3, model, grads);
//! }
//! ```
//!
//! On flex (Burn 0.22's CPU backend) and on every CubeCL runtime (wgpu, Vulkan, Metal, CUDA,
//! ROCm) the step is one fused pass over θ, g, m and v, in place: a CPU loop on flex (feature
//! `fused-flex`, on by default), one CubeCL kernel on the others (features `wgpu`, `vulkan`,
//! `metal`, `cuda`, `rocm`). It is chosen at run time from θ's device ([`fused_kernel_on`]); any
//! other backend or dtype runs the same maths as Burn tensor operations. On flex the fused step
//! gives the tensor-op step's bits; on a GPU it agrees to within 1e-6 relative (a shader compiler
//! may contract `a·b + c` into one rounding).
//!
//! Beside RAdam: [`Adam2kConfig`] (the paper's Adam-2k control), [`LookaheadConfig`] (Lookahead
//! over any per-tensor optimizer) and [`RangerConfig`] (RAdam + Lookahead), with the maths and
//! the reference tests of radam-burn's for Burn 0.19; and [`MasterWeights`], f32 master weights
//! and f32 optimizer state for bf16/f16 parameters around any of them
//! ([`RAdamConfig::init_with_master_weights`]).

#![warn(missing_docs)]

mod adam_2k;
mod config;
#[cfg(any(feature = "fused-flex", feature = "fused-cube"))]
mod fused;
mod lookahead;
mod master_weights;
mod radam;

// `#[derive(RecordState)]` names these at the crate root, as Burn's own optimizers have them.
use burn::optim::{RecordState, StateSink, StateSource, join_path};

pub use adam_2k::{Adam2k, Adam2kConfig, Adam2kState};
pub use config::RAdamConfig;
#[cfg(any(feature = "fused-flex", feature = "fused-cube"))]
pub use fused::fused_kernel_on;
pub use lookahead::{Lookahead, LookaheadConfig, LookaheadState, Ranger, RangerConfig};
pub use master_weights::{MasterWeights, MasterWeightsState};
pub use radam::{RAdam, RAdamState};
pub use radam_core::{RAdamConfigError, RAdamFields, rectification, rho, rho_inf, widen};

/// Which fused kernel RAdam runs on `device`: always `None` in this build, which has none (the
/// features `fused-flex`, `wgpu`, `vulkan`, `metal`, `cuda` and `rocm` each bring one).
#[cfg(not(any(feature = "fused-flex", feature = "fused-cube")))]
pub fn fused_kernel_on(_device: &burn::tensor::Device) -> Option<&'static str> {
    None
}

#[cfg(test)]
mod parity_tests;
/// The integration tests' way to a wgpu device, for the unit tests too.
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod test_devices;
#[cfg(test)]
mod two_parameter_model;
