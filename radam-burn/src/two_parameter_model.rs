//! The model the Lookahead and Adam-2k references are replayed on: the two parameters `w`
//! (3 × 4) and `b` (5) of `radam_core::reference_data::two_parameters`, and a running statistic
//! that no optimizer may touch.

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, Param, RunningState};
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use radam_core::reference_data::two_parameters::{B_SHAPE, Pair, W_SHAPE};

/// The backend of the tests.
pub(crate) type B = Autodiff<NdArray<f32>>;

#[derive(Module, Debug)]
pub(crate) struct TwoParameters<B: Backend> {
    pub(crate) w: Param<Tensor<B, 2>>,
    pub(crate) b: Param<Tensor<B, 1>>,
    pub(crate) statistic: RunningState<Tensor<B, 1>>,
}

impl TwoParameters<B> {
    /// The model at the recorded initial values.
    pub(crate) fn new(initial: &Pair<Vec<f32>>) -> Self {
        let device = Default::default();
        let w = TensorData::new(initial.w.clone(), W_SHAPE);
        let b = TensorData::new(initial.b.clone(), B_SHAPE);
        Self {
            w: Param::from_tensor(Tensor::from_data(w, &device)),
            b: Param::from_tensor(Tensor::from_data(b, &device)),
            statistic: RunningState::new(Tensor::zeros([2], &device)),
        }
    }

    /// Both parameters' values, `w` flattened.
    pub(crate) fn values(&self) -> Pair<Vec<f32>> {
        let values = |t: Tensor<B, 1>| t.into_data().to_vec::<f32>().unwrap();
        Pair {
            w: values(self.w.val().flatten(0, 1)),
            b: values(self.b.val()),
        }
    }

    /// `loss = Σ w ⊙ G_w + Σ b ⊙ G_b`, whose gradients are exactly `grads`.
    pub(crate) fn gradients(&self, grads: Pair<&[f32]>) -> GradientsParams {
        let device = Default::default();
        let g_w = Tensor::<B, 2>::from_data(TensorData::new(grads.w.to_vec(), W_SHAPE), &device);
        let g_b = Tensor::<B, 1>::from_data(TensorData::new(grads.b.to_vec(), B_SHAPE), &device);
        let loss = self.w.val().mul(g_w).sum() + self.b.val().mul(g_b).sum();
        GradientsParams::from_grads(loss.backward(), self)
    }
}
