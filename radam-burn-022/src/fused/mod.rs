//! The fused RAdam step for Burn 0.22: the whole update — weight decay, both moments, the
//! rectified or momentum branch — in one pass over θ, g, m and v, writing θ, m and v in place,
//! where the tensor-op step makes about five passes over memory.
//!
//! It is a Burn backend extension ([`FusedStep`], `#[backend_extension]`), implemented for
//!
//! - **flex**, Burn 0.22's CPU backend (`fused-flex`, on by default): radam-core's parallel loop
//!   over the `f32` buffers ([`flex`]);
//! - **every CubeCL runtime** (`fused-cube`, turned on by the `wgpu`, `vulkan`, `metal`, `cuda`
//!   and `rocm` features): one CubeCL kernel ([`cube`]), queued in Burn's fusion stream as a
//!   custom operation, so it runs in order with the operations around it.
//!
//! [`try_fused_step`] asks θ's device whether it is one of those, and whether the tensors are
//! `f32`; every other backend and dtype is handed back to the tensor-op step
//! (`radam_core::tensor_op_step!`), which stays the reference the kernels are tested against.
//! Callers never name a backend. All scalars (β, step size, decay factor) come from radam-core's
//! [`StepPlan`], computed in `f64` on the host; only the per-element maths runs in `f32`, in the
//! tensor-op step's operation order.

#[cfg(feature = "fused-cube")]
mod cube;
#[cfg(feature = "fused-flex")]
mod flex;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{Device, Tensor};
use radam_core::StepPlan;
use radam_core::fused_step::Scalars;

use crate::RAdamState;

/// One fused RAdam step on a backend's own tensors: θ, m and v updated in place where the
/// backend lets them be written, new buffers where it does not.
///
/// `m` and `v` are the previous moments (zeros on a parameter's first step); the result is
/// `(θ_t, m_t, v_t)`. All four tensors are `f32` and have θ's shape (checked by the caller).
#[backend_extension(
    Flex: cfg(feature = "fused-flex"),
    Cube: cfg(feature = "fused-cube"),
    Fusion: cfg(feature = "fused-cube"),
)]
pub(crate) trait FusedStep: Backend {
    /// The step with `scalars`, the constants of radam-core's plan for it.
    #[fusion(meta = |theta, _grad, m, v, _scalars| (theta.clone(), m.clone(), v.clone()))]
    fn radam_step(
        theta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scalars: Scalars,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// The tensors of one step, handed back unchanged when no kernel applies.
pub(crate) type StepInputs<const D: usize> = (Tensor<D>, Tensor<D>, Option<RAdamState<D>>);

/// Which fused kernel RAdam runs on `device`: `Some("flex")`, `Some("cube")` (a CubeCL runtime:
/// wgpu, Vulkan, Metal, CUDA, ROCm), or `None` where it runs the tensor-op step (any other
/// backend, an autodiff device, or a crate built without the matching feature).
pub fn fused_kernel_on(device: &Device) -> Option<&'static str> {
    if device.is_autodiff() {
        // The optimizer steps the inner tensors; an autodiff tensor is a caller's own call.
        return None;
    }
    #[allow(unreachable_patterns, clippy::match_single_binding)]
    match device.as_dispatch() {
        #[cfg(feature = "fused-flex")]
        burn::backend::DispatchDevice::Flex(_) => Some("flex"),
        #[cfg(feature = "fused-cube")]
        burn::backend::DispatchDevice::Cube(_) => Some("cube"),
        _ => None,
    }
}

/// Runs the fused step if θ's device has a kernel and every tensor is `f32`; otherwise returns
/// the inputs untouched. The caller has checked that the moments (if any) have θ's shape.
#[allow(clippy::result_large_err)]
pub(crate) fn try_fused_step<const D: usize>(
    plan: &StepPlan,
    (theta, grad, state): StepInputs<D>,
) -> Result<(Tensor<D>, RAdamState<D>), StepInputs<D>> {
    let all_f32 = radam_core::all_f32!(&theta, &grad, &state);
    let addressable = theta.shape().num_elements() <= u32::MAX as usize;
    if !all_f32 || !addressable || fused_kernel_on(&theta.device()).is_none() {
        return Err((theta, grad, state));
    }
    let (m, v) = match state {
        Some(state) => (state.m, state.v),
        // m_0 = v_0 = 0: the only allocation, on a parameter's first step.
        None => (theta.zeros_like(), theta.zeros_like()),
    };
    let (theta, m, v) = <Dispatch as FusedStep>::radam_step(
        theta.into_dispatch(),
        grad.into_dispatch(),
        m.into_dispatch(),
        v.into_dispatch(),
        Scalars::new(plan),
    );
    let state = RAdamState {
        time: plan.time,
        m: Tensor::from_dispatch(m),
        v: Tensor::from_dispatch(v),
    };
    Ok((Tensor::from_dispatch(theta), state))
}

#[cfg(test)]
pub(crate) mod tests;
