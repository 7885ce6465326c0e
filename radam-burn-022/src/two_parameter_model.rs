//! The model the Lookahead and Adam-2k references are replayed on through a `ModuleOptimizer`:
//! the two parameters `w` (3 × 4) and `b` (5) of `radam_core::reference_data::two_parameters`.

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use radam_core::reference_data::two_parameters::{B_SHAPE, Pair, W_SHAPE};

#[derive(Module, Debug)]
pub(crate) struct TwoParameters {
    pub(crate) w: Param<Tensor<2>>,
    pub(crate) b: Param<Tensor<1>>,
}

impl TwoParameters {
    /// The model at the recorded initial values, on `device` (an autodiff device).
    pub(crate) fn new(initial: &Pair<Vec<f32>>, device: &Device) -> Self {
        Self {
            w: Param::from_data(TensorData::new(initial.w.clone(), W_SHAPE), device),
            b: Param::from_data(TensorData::new(initial.b.clone(), B_SHAPE), device),
        }
    }

    /// Both parameters' values, `w` flattened.
    pub(crate) fn values(&self) -> Pair<Vec<f32>> {
        let values = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
        Pair {
            w: values(self.w.val().flatten(0, 1)),
            b: values(self.b.val()),
        }
    }

    /// `loss = Σ w ⊙ G_w + Σ b ⊙ G_b`, whose gradients are exactly `grads`.
    pub(crate) fn gradients(&self, grads: Pair<&[f32]>) -> GradientsParams {
        let device = self.w.val().device();
        let g_w = Tensor::<2>::from_data(TensorData::new(grads.w.to_vec(), W_SHAPE), &device);
        let g_b = Tensor::<1>::from_data(TensorData::new(grads.b.to_vec(), B_SHAPE), &device);
        let loss = self.w.val().mul(g_w).sum() + self.b.val().mul(g_b).sum();
        GradientsParams::from_grads(loss.backward(), self)
    }
}
