//! [`RAdam`], Burn's `SimpleOptimizer` for Rectified Adam, and its per-parameter state.

use burn::optim::{LearningRate, SimpleOptimizer};
use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::step_plan::{Hyper, StepPlan, Update};

/// Rectified Adam (Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond",
/// ICLR 2020), as a Burn [`SimpleOptimizer`] for every backend.
///
/// Build it with [`RAdamConfig::init`](crate::RAdamConfig::init), which wraps it in Burn's
/// `OptimizerAdaptor` so that it can be given to `LearnerBuilder`.
///
/// On ndarray and on wgpu (without Burn's fusion) each step runs as one fused, in-place pass
/// over θ, m and v; every other backend uses Burn tensor operations. Both compute the same
/// maths in the same order.
#[derive(Clone, Debug)]
pub struct RAdam {
    hyper: Hyper,
    fused: bool,
}

/// The per-parameter state of [`RAdam`]: the step count and both moments.
///
/// It derives [`Record`], so the Learner's checkpoints save and resume it. Save it with a
/// full-precision recorder: in `f16`, second moments below `6e-8` underflow to zero.
#[derive(Record, Clone, Debug)]
pub struct RAdamState<B: Backend, const D: usize> {
    /// The number of steps taken, `t`.
    pub time: usize,
    /// The first moment (momentum), `m_t`, not bias-corrected.
    pub m: Tensor<B, D>,
    /// The second moment, `v_t`, not bias-corrected.
    pub v: Tensor<B, D>,
}

impl<B: Backend, const D: usize> RAdamState<B, D> {
    /// Moves both moments to `device`.
    pub fn to_device(self, device: &B::Device) -> Self {
        Self {
            time: self.time,
            m: self.m.to_device(device),
            v: self.v.to_device(device),
        }
    }
}

impl RAdam {
    pub(crate) fn new(hyper: Hyper) -> Self {
        Self { hyper, fused: true }
    }

    /// Never use a fused kernel: run the step with Burn tensor operations on every backend (the
    /// reference implementation; slower, and it allocates temporaries on every step).
    pub fn tensor_ops_only(mut self) -> Self {
        self.fused = false;
        self
    }

    /// Whether fused kernels are used where the backend has one.
    pub fn uses_fused_kernels(&self) -> bool {
        self.fused
    }

    /// The step number and every scalar factor of the next step at learning rate `lr`.
    pub(crate) fn plan<B: Backend, const D: usize>(
        &self,
        lr: LearningRate,
        state: Option<&RAdamState<B, D>>,
    ) -> StepPlan {
        let time = state.map_or(0, |state| state.time) + 1;
        StepPlan::new(&self.hyper, time, lr)
    }
}

/// One RAdam step with Burn tensor operations: works on every backend, and is the oracle the
/// fused kernels are tested against. Used on every backend without a fused kernel.
pub(crate) fn tensor_op_step<B: Backend, const D: usize>(
    plan: &StepPlan,
    theta: Tensor<B, D>,
    grad: Tensor<B, D>,
    state: Option<RAdamState<B, D>>,
) -> (Tensor<B, D>, RAdamState<B, D>) {
    // g_t ← ∇f(θ_{t−1}) + λ·θ_{t−1}   (L2 weight decay, coupled)
    let g_t = if plan.l2_penalty != 0.0 {
        grad + theta.clone().mul_scalar(plan.l2_penalty)
    } else {
        grad
    };

    // m_t ← β1·m_{t−1} + (1 − β1)·g_t   (Algorithm 2, line 5)
    // v_t ← β2·v_{t−1} + (1 − β2)·g_t²  (Algorithm 2, line 4)
    let g_m = g_t.clone().mul_scalar(1.0 - plan.beta_1);
    let g2_v = g_t.clone().mul_scalar(1.0 - plan.beta_2).mul(g_t);
    let (m_t, v_t) = match state {
        Some(state) => (
            state.m.mul_scalar(plan.beta_1).add(g_m),
            state.v.mul_scalar(plan.beta_2).add(g2_v),
        ),
        None => (g_m, g2_v),
    };

    // θ ← θ·(1 − α·λ)   (decoupled weight decay, on steps that update θ)
    let theta = match plan.decay_factor {
        Some(factor) => theta.mul_scalar(factor),
        None => theta,
    };

    let theta = match plan.update {
        // θ_t ← θ_{t−1} − α·r_t·m̂_t·l_t, with l_t = sqrt(1 − β2^t) / (sqrt(v_t) + ε)  (lines 10–12)
        Update::Rectified { step_size, epsilon } => {
            let denominator = v_t.clone().sqrt().add_scalar(epsilon);
            theta - m_t.clone().mul_scalar(step_size).div(denominator)
        }
        // θ_t ← θ_{t−1} − α·m̂_t   (line 14)
        Update::Momentum { step_size } => theta - m_t.clone().mul_scalar(step_size),
        Update::Skip => theta,
    };

    let state = RAdamState {
        time: plan.time,
        m: m_t,
        v: v_t,
    };
    (theta, state)
}

/// Whether saved moments `m` and `v` belong to a parameter of shape `theta`: a record from
/// another model (or a damaged one) is refused with a message instead of being stepped with.
pub(crate) fn state_fits<B: Backend, const D: usize>(
    theta: &[usize],
    m: &Tensor<B, D>,
    v: &Tensor<B, D>,
) -> Result<(), String> {
    let (m, v) = (m.shape().dims, v.shape().dims);
    if m == theta && v == theta {
        Ok(())
    } else {
        Err(format!(
            "RAdam's saved state does not fit the parameter: θ has shape {theta:?}, m_t {m:?} \
             and v_t {v:?} (is the optimizer record from another model?)"
        ))
    }
}

impl<B: Backend> SimpleOptimizer<B> for RAdam {
    type State<const D: usize> = RAdamState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        if let Some(state) = &state
            && let Err(problem) = state_fits(&tensor.shape().dims, &state.m, &state.v)
        {
            panic!("{problem}");
        }
        let plan = self.plan(lr, state.as_ref());
        let fused = if self.fused {
            crate::fused::try_fused_step(&plan, tensor, grad, state)
        } else {
            Err((tensor, grad, state))
        };
        let (tensor, state) = match fused {
            Ok(done) => done,
            Err((tensor, grad, state)) => tensor_op_step(&plan, tensor, grad, state),
        };
        (tensor, Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        state.to_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    fn state(shape: [usize; 2]) -> RAdamState<B, 2> {
        let device = Default::default();
        RAdamState {
            time: 3,
            m: Tensor::zeros(shape, &device),
            v: Tensor::zeros(shape, &device),
        }
    }

    #[test]
    fn a_state_of_another_shape_is_refused_on_both_paths() {
        let device = Default::default();
        let theta = Tensor::<B, 2>::ones([3, 4], &device);
        // Same element count, other shape: the fused path alone would not notice.
        let wrong = state([4, 3]);
        assert_eq!(
            state_fits(&[3, 4], &wrong.m, &wrong.v).unwrap_err(),
            "RAdam's saved state does not fit the parameter: θ has shape [3, 4], m_t [4, 3] and \
             v_t [4, 3] (is the optimizer record from another model?)"
        );
        assert!(state_fits(&[3, 4], &state([3, 4]).m, &state([3, 4]).v).is_ok());
        for fused in [true, false] {
            let mut optimizer = crate::RAdamConfig::new().build().unwrap();
            if !fused {
                optimizer = optimizer.tensor_ops_only();
            }
            let (theta, wrong) = (theta.clone(), state([4, 3]));
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SimpleOptimizer::<B>::step(&optimizer, 1e-3, theta.clone(), theta, Some(wrong))
            }));
            let message = outcome.expect_err("refused");
            let message = message.downcast_ref::<String>().unwrap();
            assert!(message.contains("does not fit the parameter"), "{message}");
        }
    }
}
