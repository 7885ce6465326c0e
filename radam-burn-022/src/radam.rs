//! [`RAdam`], Burn 0.22's per-tensor `Optimizer` for Rectified Adam, and its per-parameter state.

use burn::optim::{LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};
use radam_core::{Hyper, StepPlan};

/// Rectified Adam (Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond",
/// ICLR 2020), as a Burn 0.22 [`Optimizer`] for every backend.
///
/// Build it with [`RAdamConfig::init`](crate::RAdamConfig::init), which wraps it in Burn's
/// `ModuleOptimizer` for a `Learner`, or [`RAdamConfig::build`](crate::RAdamConfig::build) for
/// the bare per-tensor optimizer. Each step is the plan of `radam-core` (the branch of Algorithm 2
/// and its scalars, in `f64`), applied as one fused pass in place on flex and on the CubeCL
/// runtimes ([`fused_kernel_on`](crate::fused_kernel_on)) and elsewhere with Burn tensor
/// operations: the same bits on flex, within 1e-6 relative on a GPU.
#[derive(Clone, Debug)]
pub struct RAdam {
    hyper: Hyper,
}

/// The per-parameter state of [`RAdam`]: the step count and both moments.
///
/// It derives `RecordState`, so `ModuleOptimizer::to_record`, its burnpack files and the
/// learner's checkpoints save and restore it exactly.
#[derive(burn::optim::RecordState, Clone, Debug)]
pub struct RAdamState<const D: usize> {
    /// The number of steps taken, `t`.
    pub time: usize,
    /// The first moment (momentum), `m_t`, not bias-corrected.
    pub m: Tensor<D>,
    /// The second moment, `v_t`, not bias-corrected.
    pub v: Tensor<D>,
}

impl<const D: usize> RAdamState<D> {
    /// Moves both moments to `device`.
    pub fn to_device(self, device: &Device) -> Self {
        Self {
            time: self.time,
            m: self.m.to_device(device),
            v: self.v.to_device(device),
        }
    }
}

impl RAdam {
    pub(crate) fn new(hyper: Hyper) -> Self {
        Self { hyper }
    }
}

/// Panics, naming the shapes, when saved moments `m` and `v` do not belong to the parameter
/// `theta` (an optimizer record from another model, or a damaged one): stepping with them would
/// broadcast or fail deep inside Burn ([`radam_core::state_fits`]).
pub(crate) fn refuse_moments_of_another_shape<const D: usize>(
    theta: &Tensor<D>,
    moments: Option<(&Tensor<D>, &Tensor<D>)>,
) {
    if let Some((m, v)) = moments
        && let Err(problem) = radam_core::state_fits(&theta.dims(), &m.dims(), &v.dims())
    {
        panic!("{problem}");
    }
}

impl Optimizer for RAdam {
    type State<const D: usize> = RAdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        refuse_moments_of_another_shape(&tensor, state.as_ref().map(|s| (&s.m, &s.v)));
        let time = state.as_ref().map_or(0, |state| state.time) + 1;
        let plan = StepPlan::new(&self.hyper, time, lr);
        #[cfg(any(feature = "fused-flex", feature = "fused-cube"))]
        let (tensor, grad, state) = match crate::fused::try_fused_step(&plan, (tensor, grad, state))
        {
            Ok((tensor, state)) => return (tensor, Some(state)),
            Err(inputs) => inputs,
        };
        let moments = state.map(|state| (state.m, state.v));
        let (tensor, m, v) = radam_core::tensor_op_step!(&plan, tensor, grad, moments);
        (tensor, Some(RAdamState { time, m, v }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.to_device(device)
    }
}
