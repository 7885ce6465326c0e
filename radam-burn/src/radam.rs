//! [`RAdam`], Burn's `SimpleOptimizer` for Rectified Adam.

use burn::optim::{LearningRate, SimpleOptimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use radam_core::{Hyper, StepPlan};

use crate::state::RAdamState;

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

/// One RAdam step with Burn tensor operations ([`radam_core::tensor_op_step!`], the text shared
/// with every Burn version): works on every backend, and is the oracle the fused kernels are
/// tested against. Used on every backend without a fused kernel.
pub(crate) fn tensor_op_step<B: Backend, const D: usize>(
    plan: &StepPlan,
    theta: Tensor<B, D>,
    grad: Tensor<B, D>,
    state: Option<RAdamState<B, D>>,
) -> (Tensor<B, D>, RAdamState<B, D>) {
    let moments = state.map(|state| (state.m, state.v));
    let (theta, m, v) = radam_core::tensor_op_step!(plan, theta, grad, moments);
    let state = RAdamState {
        time: plan.time,
        m,
        v,
    };
    (theta, state)
}

/// Whether saved moments `m` and `v` belong to a parameter of shape `theta`
/// ([`radam_core::state_fits`]).
pub(crate) fn state_fits<B: Backend, const D: usize>(
    theta: &[usize],
    m: &Tensor<B, D>,
    v: &Tensor<B, D>,
) -> Result<(), String> {
    radam_core::state_fits(theta, &m.shape().dims, &v.shape().dims)
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
        assert!(state_fits(&[3, 4], &wrong.m, &wrong.v).is_err());
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
