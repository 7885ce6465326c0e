//! Reshape of a row-major tensor: natively on ndarray as a view of the same buffer, with Burn's
//! `reshape` on every other backend.
//!
//! Burn 0.19.1's ndarray backend copies the whole tensor on every reshape, forward and in the
//! autodiff backward (`to_shape(…).into_shared()` of a view), although a row-major array can be
//! read in any shape of the same size as it lies. The models reshape between `[rows, length, d]`
//! and `[rows·length, d]` around every position-wise product and around the output layer, so
//! these copies were a tenth of the Transformer's training step on one core while the other
//! waited (measured, see `docs/PERFORMANCE.md`).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::ops::dispatch;

/// `x` in `shape` (of the same number of elements), as [`Tensor::reshape`] computes it.
pub(crate) fn reshape<B: Backend, const D1: usize, const D2: usize>(
    x: Tensor<B, D1>,
    shape: [usize; D2],
) -> Tensor<B, D2> {
    match dispatch::native::<B>() {
        #[cfg(feature = "ndarray-kernels")]
        Some(native) => crate::ops::ndarray::reshape::reshape(native, x, shape),
        _ => x.reshape(shape),
    }
}

#[cfg(all(test, feature = "ndarray-kernels"))]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend as Ad, TestBackend};
    use burn::tensor::{Distribution, TensorData};

    /// Forward values and the gradient of `Σ w ⊙ reshape(x)` (w fixed, so that every element's
    /// gradient differs), natively or with Burn's reshape.
    fn run(x: &Tensor<TestBackend, 3>, native: bool) -> (TensorData, TensorData) {
        let device = x.device();
        let x = Tensor::<Ad, 3>::from_inner(x.clone()).require_grad();
        let shape = [x.dims()[0] * x.dims()[1], x.dims()[2]];
        let y = if native {
            reshape(x.clone(), shape)
        } else {
            x.clone().reshape(shape)
        };
        let weights = Tensor::<Ad, 2>::from_inner(
            Tensor::arange(0..y.shape().num_elements() as i64, &device)
                .float()
                .reshape(shape),
        );
        let grads = (y.clone() * weights).sum().backward();
        (
            y.into_data(),
            x.grad(&grads).expect("x's gradient").into_data(),
        )
    }

    #[test]
    fn native_reshape_matches_burns_values_and_gradient() {
        let device = Default::default();
        let x = Tensor::<TestBackend, 3>::random([3, 5, 7], Distribution::Default, &device);
        // A transposed view as input too: not row-major, so the native reshape must copy it.
        for x in [x.clone(), x.swap_dims(0, 2).swap_dims(1, 2)] {
            let (native, burn) = (run(&x, true), run(&x, false));
            assert_eq!(native.0, burn.0, "values");
            assert_eq!(native.1, burn.1, "gradient");
        }
    }

    #[test]
    fn native_reshape_of_a_row_major_tensor_is_a_view_of_its_buffer() {
        use burn::backend::ndarray::NdArrayTensor;
        use burn::tensor::TensorPrimitive;
        let device = Default::default();
        let x = Tensor::<TestBackend, 3>::random([2, 3, 4], Distribution::Default, &device);
        let pointer = |t: TensorPrimitive<TestBackend>| match t.tensor() {
            NdArrayTensor::F32(array) => array.as_ptr(),
            _ => unreachable!("f32"),
        };
        let before = pointer(x.clone().into_primitive());
        let y = reshape(x, [6, 4]);
        assert_eq!(y.dims(), [6, 4]);
        assert_eq!(pointer(y.into_primitive()), before, "the buffer was copied");
    }
}
