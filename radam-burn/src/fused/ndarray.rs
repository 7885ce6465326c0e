//! The fused step on ndarray: radam-core's one pass over contiguous `f32` slices
//! (`fused_step::update`), parallel over chunks, on the arrays' buffers.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_ndarray::NdArrayTensor;

use super::{Scalars, StepInputs, cast, same_type};
use crate::state::RAdamState;
use radam_core::StepPlan;
use radam_core::fused_step::update;

fn primitive<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> NdArrayTensor {
    match tensor.into_primitive() {
        TensorPrimitive::Float(primitive) => {
            cast(primitive).unwrap_or_else(|_| unreachable!("checked: ndarray"))
        }
        TensorPrimitive::QFloat(_) => unreachable!("checked: not quantized"),
    }
}

fn tensor<B: Backend, const D: usize>(primitive: NdArrayTensor) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(
        cast(primitive).unwrap_or_else(|_| unreachable!("checked: ndarray")),
    ))
}

/// Runs the step if the tensors are ndarray `f32` tensors.
#[allow(clippy::result_large_err)]
pub(super) fn step<B: Backend, const D: usize>(
    plan: &StepPlan,
    (theta, grad, state): StepInputs<B, D>,
) -> Result<(Tensor<B, D>, RAdamState<B, D>), StepInputs<B, D>> {
    let all_f32 = radam_core::all_f32!(&theta, &grad, &state);
    if !same_type::<B::FloatTensorPrimitive, NdArrayTensor>() || !all_f32 {
        return Err((theta, grad, state));
    }
    let (m, v) = match state {
        Some(state) => (state.m, state.v),
        // m_0 = v_0 = 0: the only allocation, on a parameter's first step.
        None => (theta.zeros_like(), theta.zeros_like()),
    };
    let (
        NdArrayTensor::F32(mut theta_a),
        NdArrayTensor::F32(grad_a),
        NdArrayTensor::F32(mut m_a),
        NdArrayTensor::F32(mut v_a),
    ) = (
        primitive(theta),
        primitive(grad),
        primitive(m),
        primitive(v),
    )
    else {
        unreachable!("checked: f32")
    };
    // Fused maths needs one memory order for all four; standard (row-major) layout is what
    // Burn's ndarray tensors normally have. Anything else is copied to it first.
    for array in [&mut theta_a, &mut m_a, &mut v_a] {
        if !array.is_standard_layout() {
            *array = array.as_standard_layout().into_owned().into_shared();
        }
    }
    let grad_a = if grad_a.is_standard_layout() {
        grad_a
    } else {
        grad_a.as_standard_layout().into_owned().into_shared()
    };
    update(
        &Scalars::new(plan),
        theta_a.as_slice_mut().expect("standard layout"),
        grad_a.as_slice().expect("standard layout"),
        m_a.as_slice_mut().expect("standard layout"),
        v_a.as_slice_mut().expect("standard layout"),
    );
    let state = RAdamState {
        time: plan.time,
        m: tensor(NdArrayTensor::F32(m_a)),
        v: tensor(NdArrayTensor::F32(v_a)),
    };
    Ok((tensor(NdArrayTensor::F32(theta_a)), state))
}
