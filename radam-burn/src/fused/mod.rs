//! Fused single-pass RAdam steps: the whole update — weight decay, both moments, the rectified or
//! momentum branch — in one pass over θ, m and v, in place, with no per-step allocation.
//!
//! [`try_fused_step`] recognises the backends it has a kernel for at run time (from the type of
//! the tensor primitive) and hands every other backend back to the generic tensor-op step, which
//! stays the reference the kernels are tested against. Callers never name a backend.
//!
//! - ndarray (`fused-ndarray` feature): a loop over contiguous `f32` slices, parallel over chunks.
//! - wgpu without Burn's fusion (`fused-wgpu` feature): one CubeCL kernel.
//!
//! All scalars (β, step size, decay factor) are computed in `f64` on the host by the
//! [`StepPlan`]; only the per-element maths runs in `f32`, in the same operation order as the
//! tensor-op step.

#[cfg(feature = "fused-ndarray")]
mod ndarray;
#[cfg(feature = "fused-wgpu")]
mod wgpu;

use core::any::{Any, TypeId};

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::state::RAdamState;
use radam_core::StepPlan;
pub(crate) use radam_core::fused_step::Scalars;

/// The tensors of one step, handed back unchanged when no kernel applies.
pub(crate) type StepInputs<B, const D: usize> =
    (Tensor<B, D>, Tensor<B, D>, Option<RAdamState<B, D>>);

/// Runs the fused step if `B` has a kernel; otherwise returns the inputs untouched.
#[allow(clippy::result_large_err)]
pub(crate) fn try_fused_step<B: Backend, const D: usize>(
    plan: &StepPlan,
    theta: Tensor<B, D>,
    grad: Tensor<B, D>,
    state: Option<RAdamState<B, D>>,
) -> Result<(Tensor<B, D>, RAdamState<B, D>), StepInputs<B, D>> {
    let inputs = (theta, grad, state);
    #[cfg(feature = "fused-ndarray")]
    let inputs = match ndarray::step(plan, inputs) {
        Ok(done) => return Ok(done),
        Err(inputs) => inputs,
    };
    #[cfg(feature = "fused-wgpu")]
    let inputs = match wgpu::step(plan, inputs) {
        Ok(done) => return Ok(done),
        Err(inputs) => inputs,
    };
    let _ = plan;
    Err(inputs)
}

/// One pass of the fused step's memory traffic without its arithmetic — read θ, g, m, v, write
/// θ, m, v in place: 28 bytes per `f32` parameter, as a step — for measuring how close a step
/// comes to the device's memory bandwidth (`tools/gpu-check`). Returns the new θ, m, v, or
/// `None` where `B` has no such kernel (only wgpu without fusion, with the `fused-wgpu` feature).
pub fn memory_traffic_pass<B: Backend, const D: usize>(
    theta: Tensor<B, D>,
    grad: Tensor<B, D>,
    m: Tensor<B, D>,
    v: Tensor<B, D>,
) -> Option<[Tensor<B, D>; 3]> {
    #[cfg(feature = "fused-wgpu")]
    return wgpu::traffic_pass(theta, grad, m, v);
    #[cfg(not(feature = "fused-wgpu"))]
    {
        let _ = (theta, grad, m, v);
        None
    }
}

/// Which fused kernel RAdam uses on backend `B`: `Some("ndarray")`, `Some("wgpu")`, or `None`
/// when the backend gets the generic tensor-operation step (any other backend, Burn's fusion
/// backend, or a crate built without the `fused-*` features).
pub fn fused_kernel_for<B: Backend>() -> Option<&'static str> {
    #[cfg(feature = "fused-ndarray")]
    if same_type::<B::FloatTensorPrimitive, burn_ndarray::NdArrayTensor>() {
        return Some("ndarray");
    }
    #[cfg(feature = "fused-wgpu")]
    if same_type::<
        B::FloatTensorPrimitive,
        burn_cubecl::tensor::CubeTensor<cubecl::wgpu::WgpuRuntime>,
    >() {
        return Some("wgpu");
    }
    None
}

/// Whether the two types are the same.
pub(crate) fn same_type<T: 'static, U: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<U>()
}

/// Moves `value` into a `U` if it is one (no copy).
pub(crate) fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(target) => Ok(target.take().expect("the slot was just filled")),
        None => Err(slot.expect("the slot is untouched")),
    }
}

#[cfg(all(test, feature = "fused-ndarray"))]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, TensorData};
    use radam_core::{Hyper, RAdamFields, StepPlan};

    type B = NdArray<f32>;

    fn hyper() -> Hyper {
        RAdamFields::torch().hyper()
    }

    #[test]
    fn ndarray_f32_is_fused_and_other_tensors_are_handed_back() {
        let device = Default::default();
        let theta = Tensor::<B, 2>::random([4, 5], Distribution::Default, &device);
        let grad = theta.clone().mul_scalar(0.5);
        let plan = StepPlan::new(&hyper(), 1, 1e-3);
        assert!(try_fused_step(&plan, theta, grad, None).is_ok());

        type B64 = NdArray<f64>;
        let theta = Tensor::<B64, 1>::from_data(TensorData::from([1.0f64, 2.0]), &device);
        let grad = theta.clone();
        let back = try_fused_step(&plan, theta, grad, None).expect_err("f64 has no kernel");
        assert_eq!(back.0.into_data().to_vec::<f64>().unwrap(), vec![1.0, 2.0]);
    }

    #[test]
    fn cast_moves_only_between_equal_types() {
        assert_eq!(cast::<u32, u32>(7), Ok(7));
        assert_eq!(cast::<u32, i32>(7), Err(7));
        assert!(same_type::<NdArray<f32>, B>());
    }
}
