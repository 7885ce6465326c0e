//! The fused step on wgpu (Burn's `CubeBackend<WgpuRuntime>`, i.e. without kernel fusion): one
//! CubeCL kernel that reads θ, g, m, v once and writes θ, m, v in place.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::CubeDim;
use cubecl::prelude::*;
use cubecl::wgpu::WgpuRuntime;

use super::{Scalars, StepInputs, cast, same_type};
use crate::state::RAdamState;
use radam_core::StepPlan;
use radam_core::fused_step::Mode;

type Primitive = CubeTensor<WgpuRuntime>;

const COUPLED: u32 = 4;
const DECOUPLED: u32 = 8;

/// `variant`: the mode (0 rectified, 1 momentum, 2 skip) plus `COUPLED` or `DECOUPLED`.
/// `scalars`: β1, 1 − β1, β2, 1 − β2, decay, step size, ε — where `decay` is the L2 penalty λ
/// when coupled and the factor `1 − α·λ` when decoupled (the two never go together).
/// The operation order is the tensor-op step's.
#[cube(launch)]
fn radam_step_kernel(
    theta: &mut Array<Line<f32>>,
    grad: &Array<Line<f32>>,
    m: &mut Array<Line<f32>>,
    v: &mut Array<Line<f32>>,
    scalars: Sequence<f32>,
    #[comptime] variant: u32,
) {
    let beta_1 = Line::new(*scalars.index(0));
    let one_minus_beta_1 = Line::new(*scalars.index(1));
    let beta_2 = Line::new(*scalars.index(2));
    let one_minus_beta_2 = Line::new(*scalars.index(3));
    let decay = Line::new(*scalars.index(4));
    let step_size = Line::new(*scalars.index(5));
    let epsilon = Line::new(*scalars.index(6));
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let mode = comptime!(variant % 4);
    let coupled = comptime!(variant & COUPLED != 0);
    let decoupled = comptime!(variant & DECOUPLED != 0);
    let old_theta = theta[i];
    let mut g = grad[i];
    if coupled {
        // g_t ← ∇f(θ_{t−1}) + λ·θ_{t−1}
        g += old_theta * decay;
    }
    // m_t ← β1·m_{t−1} + (1 − β1)·g_t ;  v_t ← β2·v_{t−1} + (1 − β2)·g_t²
    let m_t = m[i] * beta_1 + g * one_minus_beta_1;
    let v_t = v[i] * beta_2 + (g * one_minus_beta_2) * g;
    m[i] = m_t;
    v[i] = v_t;
    let mut t = old_theta;
    if decoupled {
        // θ ← θ·(1 − α·λ)
        t *= decay;
    }
    if mode == 0 {
        // θ_t ← θ − α·r_t·m̂_t·l_t
        theta[i] = t - (m_t * step_size) / (Line::sqrt(v_t) + epsilon);
    } else if mode == 1 {
        // θ_t ← θ − α·m̂_t
        theta[i] = t - m_t * step_size;
    } else {
        theta[i] = t;
    }
}

fn primitive<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Primitive {
    let primitive = match tensor.into_primitive() {
        TensorPrimitive::Float(primitive) => {
            cast(primitive).unwrap_or_else(|_| unreachable!("checked: wgpu"))
        }
        TensorPrimitive::QFloat(_) => unreachable!("checked: not quantized"),
    };
    // The kernel indexes linearly and writes in place: it needs contiguous buffers it owns.
    let primitive = into_contiguous(primitive);
    if primitive.can_mut() && primitive.is_contiguous_buffer() {
        primitive
    } else {
        primitive.copy()
    }
}

fn tensor<B: Backend, const D: usize>(primitive: Primitive) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(
        cast(primitive).unwrap_or_else(|_| unreachable!("checked: wgpu")),
    ))
}

/// Runs the step if the tensors are wgpu `f32` tensors.
#[allow(clippy::result_large_err)]
pub(super) fn step<B: Backend, const D: usize>(
    plan: &StepPlan,
    (theta, grad, state): StepInputs<B, D>,
) -> Result<(Tensor<B, D>, RAdamState<B, D>), StepInputs<B, D>> {
    let all_f32 = radam_core::all_f32!(&theta, &grad, &state);
    let len = theta.shape().num_elements();
    if !same_type::<B::FloatTensorPrimitive, Primitive>() || !all_f32 || len > u32::MAX as usize {
        return Err((theta, grad, state));
    }
    let (m, v) = match state {
        Some(state) => (state.m, state.v),
        None => (theta.zeros_like(), theta.zeros_like()),
    };
    let (theta, grad, m, v) = (
        primitive(theta),
        into_contiguous(primitive_ref(grad)),
        primitive(m),
        primitive(v),
    );
    let s = Scalars::new(plan);
    let mode = match s.mode {
        Mode::Rectified => 0,
        Mode::Momentum => 1,
        Mode::Skip => 2,
    };
    let variant =
        mode + if s.coupled { COUPLED } else { 0 } + if s.decoupled { DECOUPLED } else { 0 };
    let decay = if s.coupled { s.l2 } else { s.decay };
    let mut scalars = SequenceArg::<WgpuRuntime, f32>::new();
    for value in [
        s.beta_1,
        s.one_minus_beta_1,
        s.beta_2,
        s.one_minus_beta_2,
        decay,
        s.step_size,
        s.epsilon,
    ] {
        scalars.push(ScalarArg::new(value));
    }
    // Four elements per invocation (128-bit loads and stores) when the length allows it.
    let line_size: u8 = if len.is_multiple_of(4) { 4 } else { 1 };
    let cube_dim = CubeDim::default();
    let cube_count = cube_count(len / line_size as usize, cube_dim);
    radam_step_kernel::launch::<WgpuRuntime>(
        &theta.client,
        cube_count,
        cube_dim,
        theta.as_array_arg::<f32>(line_size),
        grad.as_array_arg::<f32>(line_size),
        m.as_array_arg::<f32>(line_size),
        v.as_array_arg::<f32>(line_size),
        scalars,
        variant,
    );
    let state = RAdamState {
        time: plan.time,
        m: tensor(m),
        v: tensor(v),
    };
    Ok((tensor(theta), state))
}

/// The memory traffic of [`radam_step_kernel`] without its arithmetic: reads θ, g, m, v and
/// writes θ, m, v (28 bytes per `f32` parameter), each output a copy of another input.
#[cube(launch)]
fn traffic_kernel(
    theta: &mut Array<Line<f32>>,
    grad: &Array<Line<f32>>,
    m: &mut Array<Line<f32>>,
    v: &mut Array<Line<f32>>,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let (old_theta, g, old_m, old_v) = (theta[i], grad[i], m[i], v[i]);
    theta[i] = old_m;
    m[i] = old_v;
    v[i] = old_theta + g;
}

/// One pass of the fused step's memory traffic over wgpu `f32` tensors of one length, in place;
/// `None` (inputs dropped) on another backend or dtype.
pub(super) fn traffic_pass<B: Backend, const D: usize>(
    theta: Tensor<B, D>,
    grad: Tensor<B, D>,
    m: Tensor<B, D>,
    v: Tensor<B, D>,
) -> Option<[Tensor<B, D>; 3]> {
    let len = theta.shape().num_elements();
    let all_f32 = [&theta, &grad, &m, &v]
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.shape().num_elements() == len);
    if !same_type::<B::FloatTensorPrimitive, Primitive>() || !all_f32 || len > u32::MAX as usize {
        return None;
    }
    let (theta, grad, m, v) = (
        primitive(theta),
        into_contiguous(primitive_ref(grad)),
        primitive(m),
        primitive(v),
    );
    let line_size: u8 = if len.is_multiple_of(4) { 4 } else { 1 };
    let cube_dim = CubeDim::default();
    traffic_kernel::launch::<WgpuRuntime>(
        &theta.client,
        cube_count(len / line_size as usize, cube_dim),
        cube_dim,
        theta.as_array_arg::<f32>(line_size),
        grad.as_array_arg::<f32>(line_size),
        m.as_array_arg::<f32>(line_size),
        v.as_array_arg::<f32>(line_size),
    );
    Some([tensor(theta), tensor(m), tensor(v)])
}

/// Enough cubes of `cube_dim` for `invocations`, as a near-square grid (each side stays far
/// below the 65 535 a dimension may hold). Integer arithmetic throughout: CubeCL's own
/// `calculate_cube_count_elemwise` divides in `f32`, which rounds 2^24 + 1 down to 2^24 and
/// leaves the last elements of such tensors without an invocation.
fn cube_count(invocations: usize, cube_dim: CubeDim) -> CubeCount {
    let (cubes_x, cubes_y) = grid(invocations, cube_dim.num_elems() as usize);
    CubeCount::Static(cubes_x, cubes_y, 1)
}

/// `(x, y)` with `x · y · per_cube ≥ invocations`, `x = ⌈√cubes⌉`.
fn grid(invocations: usize, per_cube: usize) -> (u32, u32) {
    let cubes = invocations.div_ceil(per_cube).max(1);
    let mut x = cubes.isqrt();
    if x * x < cubes {
        x += 1;
    }
    let y = cubes.div_ceil(x);
    (x as u32, y as u32)
}

/// The gradient is only read: no ownership needed.
fn primitive_ref<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Primitive {
    match tensor.into_primitive() {
        TensorPrimitive::Float(primitive) => {
            cast(primitive).unwrap_or_else(|_| unreachable!("checked: wgpu"))
        }
        TensorPrimitive::QFloat(_) => unreachable!("checked: not quantized"),
    }
}

#[cfg(test)]
mod tests {
    use super::grid;

    #[test]
    fn the_grid_covers_every_invocation() {
        for invocations in [
            1,
            255,
            256,
            257,
            1 << 24,
            (1 << 24) + 1,
            100_000_001,
            25_000_001,
        ] {
            let (x, y) = grid(invocations, 256);
            let covered = x as usize * y as usize * 256;
            assert!(covered >= invocations, "{invocations}: {x} × {y}");
            // Not more than one row of cubes too many.
            assert!(
                covered - invocations < (x as usize + 1) * 256,
                "{invocations}: {x} × {y}"
            );
            assert!(x <= 65_535 && y <= 65_535);
        }
        // CubeCL's f32 arithmetic for 2^24 + 1 single-element invocations in cubes of 256
        // gives 256 × 256 cubes: one element short. This grid has one row more.
        assert_eq!(grid((1 << 24) + 1, 256), (257, 256));
    }
}
