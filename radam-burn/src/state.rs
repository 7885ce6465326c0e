//! [`RAdamState`], the per-parameter state of [`RAdam`](crate::RAdam), which both the tensor-operation
//! step and the fused kernels read and write.

use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

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
