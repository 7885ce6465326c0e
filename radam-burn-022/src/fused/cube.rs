//! The fused step on every CubeCL runtime (Burn 0.22's `CubeBackend`: wgpu, Vulkan, Metal, CUDA,
//! ROCm): one kernel that reads θ, g, m and v once and writes θ, m and v in place. Burn's fusion
//! runs it as a custom operation of its stream (the `Fusion` impl `#[backend_extension]`
//! generates), handing it buffers it may write when nothing else holds them.

use burn_cubecl::CubeBackend;
// The `#[cube]` macro's expansion names the `cubecl` crate: Burn's re-export, the same version.
use burn_cubecl::cubecl;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubecl::{CubeDim, calculate_cube_count_elemwise};
use radam_core::fused_step::{Mode, Scalars};

use super::FusedStep;

/// `variant`'s bit for the coupled L2 penalty.
const COUPLED: u32 = 4;
/// `variant`'s bit for the decoupled decay.
const DECOUPLED: u32 = 8;

/// One RAdam step per element (or per vector of `N` elements).
///
/// `variant`: the branch (0 rectified, 1 momentum, 2 skip) plus [`COUPLED`] or [`DECOUPLED`].
/// `decay` is the L2 penalty λ when coupled and the factor `1 − α·λ` when decoupled (the two
/// never go together). The operation order is the tensor-op step's.
#[allow(clippy::too_many_arguments)]
#[cube(launch)]
fn radam_step_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    m: &mut [Vector<f32, N>],
    v: &mut [Vector<f32, N>],
    beta_1: f32,
    one_minus_beta_1: f32,
    beta_2: f32,
    one_minus_beta_2: f32,
    decay: f32,
    step_size: f32,
    epsilon: f32,
    #[comptime] variant: u32,
) {
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
        g += old_theta * Vector::new(decay);
    }
    // m_t ← β1·m_{t−1} + (1 − β1)·g_t ;  v_t ← β2·v_{t−1} + (1 − β2)·g_t²
    let m_t = m[i] * Vector::new(beta_1) + g * Vector::new(one_minus_beta_1);
    let v_t = v[i] * Vector::new(beta_2) + (g * Vector::new(one_minus_beta_2)) * g;
    m[i] = m_t;
    v[i] = v_t;
    let mut t = old_theta;
    if decoupled {
        // θ ← θ·(1 − α·λ)
        t *= Vector::new(decay);
    }
    if mode == 0 {
        // θ_t ← θ − α·r_t·m̂_t·l_t, the bias corrections folded into the step size
        theta[i] = t - (m_t * Vector::new(step_size)) / (Vector::sqrt(v_t) + Vector::new(epsilon));
    } else if mode == 1 {
        // θ_t ← θ − α·m̂_t
        theta[i] = t - m_t * Vector::new(step_size);
    } else {
        theta[i] = t;
    }
}

impl FusedStep for CubeBackend {
    fn radam_step(
        theta: CubeTensor,
        grad: CubeTensor,
        m: CubeTensor,
        v: CubeTensor,
        s: Scalars,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        let (theta, m, v) = (writable(theta), writable(m), writable(v));
        let grad = into_contiguous(grad);
        let len = theta.meta.num_elements();
        // Four elements per invocation (128-bit loads and stores) when the length allows it.
        let vector_size = if len.is_multiple_of(4) { 4 } else { 1 };
        let invocations = len / vector_size;
        let client = theta.client.clone();
        let cube_dim = CubeDim::new(&client, invocations);
        let cube_count = calculate_cube_count_elemwise(&client, invocations, cube_dim);
        let mode = match s.mode {
            Mode::Rectified => 0,
            Mode::Momentum => 1,
            Mode::Skip => 2,
        };
        let variant =
            mode + if s.coupled { COUPLED } else { 0 } + if s.decoupled { DECOUPLED } else { 0 };
        let decay = if s.coupled { s.l2 } else { s.decay };
        radam_step_kernel::launch(
            &client,
            cube_count,
            cube_dim,
            vector_size,
            theta.clone().into_buffer_arg(),
            grad.into_buffer_arg(),
            m.clone().into_buffer_arg(),
            v.clone().into_buffer_arg(),
            s.beta_1,
            s.one_minus_beta_1,
            s.beta_2,
            s.one_minus_beta_2,
            decay,
            s.step_size,
            s.epsilon,
            variant,
        );
        (theta, m, v)
    }
}

/// `tensor` as a contiguous buffer that this step alone holds, so the kernel may write it: the
/// tensor itself when it is one, else a copy.
fn writable(tensor: CubeTensor) -> CubeTensor {
    let tensor = into_contiguous(tensor);
    if tensor.can_mut() && tensor.is_contiguous_buffer() {
        tensor
    } else {
        tensor.copy()
    }
}
