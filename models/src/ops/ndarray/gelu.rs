//! The exact GELU, as PyTorch's `nn.GELU()` computes it, as one parallel pass each way on
//! `Autodiff<NdArray<f32>>`:
//!
//! - forward: `x·Φ(x) = x/2·(1 + erf(x/√2))`;
//! - backward: its derivative `Φ(x) + x·φ(x)`, `φ(x) = e^{−x²/2}/√(2π)`.
//!
//! (Burn's `gelu` has the same forward but, as its gradient, the derivative of GELU's tanh
//! approximation, up to 9e-4 away; see [`crate::ops::gelu`].)

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use ndarray::{ArcArray, IxDyn};

use super::bridge::{
    Ad, Inner, f32_array, nd_tensor, primitive_of, register_input_gradient, slice, tensor_of,
};
use super::fill::zip_map;
use crate::ops::dispatch::Native;

/// `x·Φ(x)`.
fn gelu_of(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `1/√(2π)`.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// GELU's derivative at `x`: `Φ(x) + x·φ(x)`.
fn gelu_derivative(x: f32) -> f32 {
    let cdf = 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
    cdf + x * FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
}

/// The autodiff step: `∂x = ∂y · gelu′(x)`.
#[derive(Debug)]
struct GeluBackward;

impl Backward<Inner, 1> for GeluBackward {
    type State = Arc<ArcArray<f32, IxDyn>>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        register_input_gradient(ops, grads, |grad, x| {
            let dx = zip_map(slice(&grad), slice(x), |g, x| g * gelu_derivative(x));
            nd_tensor(dx, x.shape())
        });
    }
}

/// GELU of `x`, `B` being the ndarray backend `native`.
pub(crate) fn gelu<B: Backend, const D: usize>(native: Native, x: Tensor<B, D>) -> Tensor<B, D> {
    let forward = |x: &ArcArray<f32, IxDyn>| {
        let values = slice(x);
        nd_tensor(zip_map(values, values, |x, _| gelu_of(x)), x.shape())
    };
    if native == Native::NdArray {
        let x = f32_array(primitive_of::<Inner, _, D>(x));
        return tensor_of::<Inner, _, D>(forward(&x));
    }
    let x = primitive_of::<Ad, _, D>(x);
    let values = f32_array(x.primitive.clone());
    let output: NdArrayTensor = forward(&values);
    let y = match GeluBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(Arc::new(values), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    tensor_of::<Ad, _, D>(y)
}
