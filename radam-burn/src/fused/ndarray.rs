//! The fused step on ndarray: one pass over contiguous `f32` slices, parallel over chunks.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_ndarray::NdArrayTensor;
use rayon::prelude::*;

use super::{Mode, Scalars, StepInputs, cast, same_type};
use crate::state::RAdamState;
use radam_core::StepPlan;

/// Elements per parallel task: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 1 << 16;

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
    let all_f32 = [
        Some(&theta),
        Some(&grad),
        state.as_ref().map(|s| &s.m),
        state.as_ref().map(|s| &s.v),
    ]
    .into_iter()
    .flatten()
    .all(|t| t.dtype() == DType::F32);
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

/// The step over whole slices, split into parallel chunks.
pub(crate) fn update(
    scalars: &Scalars,
    theta: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    assert!(
        theta.len() == grad.len() && grad.len() == m.len() && m.len() == v.len(),
        "θ, g, m and v must have the same number of elements"
    );
    if theta.len() <= CHUNK {
        update_chunk(scalars, theta, grad, m, v);
        return;
    }
    theta
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((theta, grad), m), v)| update_chunk(scalars, theta, grad, m, v));
}

/// Picks the loop specialised for this step's options, so the hot loop has no branches.
fn update_chunk(s: &Scalars, theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    macro_rules! dispatch {
        ($($coupled:literal, $decoupled:literal);*) => {
            match (s.coupled, s.decoupled, s.mode) {
                $(
                    ($coupled, $decoupled, Mode::Rectified) => kernel::<$coupled, $decoupled, 0>(s, theta, grad, m, v),
                    ($coupled, $decoupled, Mode::Momentum) => kernel::<$coupled, $decoupled, 1>(s, theta, grad, m, v),
                    ($coupled, $decoupled, Mode::Skip) => kernel::<$coupled, $decoupled, 2>(s, theta, grad, m, v),
                )*
            }
        };
    }
    dispatch!(false, false; false, true; true, false; true, true)
}

/// One element at a time, in the tensor-op step's operation order (so both paths round alike).
#[inline(always)]
fn kernel<const COUPLED: bool, const DECOUPLED: bool, const MODE: u8>(
    s: &Scalars,
    theta: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    for (((theta, &grad), m), v) in theta
        .iter_mut()
        .zip(grad)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        // g_t ← ∇f(θ_{t−1}) + λ·θ_{t−1}   (coupled L2)
        let g = if COUPLED { grad + *theta * s.l2 } else { grad };
        // m_t ← β1·m_{t−1} + (1 − β1)·g_t ;  v_t ← β2·v_{t−1} + (1 − β2)·g_t²
        let m_t = *m * s.beta_1 + g * s.one_minus_beta_1;
        let v_t = *v * s.beta_2 + (g * s.one_minus_beta_2) * g;
        *m = m_t;
        *v = v_t;
        // θ ← θ·(1 − α·λ)   (decoupled decay, only on updating steps: the plan leaves it at 1 otherwise)
        let t = if DECOUPLED { *theta * s.decay } else { *theta };
        *theta = match MODE {
            // θ_t ← θ − α·r_t·m̂_t·l_t
            0 => t - (m_t * s.step_size) / (v_t.sqrt() + s.epsilon),
            // θ_t ← θ − α·m̂_t
            1 => t - m_t * s.step_size,
            _ => t,
        };
    }
}
