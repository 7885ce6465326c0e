//! Dropout as Burn's [`Dropout`] module computes it (`x · mask / (1 − p)` while training,
//! identity otherwise), with the mask drawn natively on ndarray: Burn 0.19.1 draws it there one
//! element at a time, which cost a tenth of a Transformer training step.

use burn::nn::Dropout;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::ops::dispatch;

/// `layer.forward(x)`: elements of `x` zeroed with probability `layer.prob` and the rest scaled
/// by `1 / (1 − prob)` when autodiff is on (training), `x` itself otherwise.
pub(crate) fn dropout<B: Backend, const D: usize>(
    layer: &Dropout,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    if !B::ad_enabled() || layer.prob == 0.0 {
        return x;
    }
    match dispatch::native::<B>() {
        #[cfg(feature = "ndarray-kernels")]
        Some(native) => crate::ops::ndarray::dropout::dropped(native, x, layer.prob),
        _ => layer.forward(x),
    }
}

#[cfg(all(test, feature = "ndarray-kernels"))]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend as Ad, TestBackend};
    use burn::nn::DropoutConfig;
    use burn::tensor::Distribution;

    #[test]
    fn training_dropout_zeroes_and_scales_and_its_gradient_is_the_mask() {
        let device = Default::default();
        let layer = DropoutConfig::new(0.25).init();
        let values =
            Tensor::<TestBackend, 2>::random([40, 50], Distribution::Uniform(1.0, 2.0), &device);
        let x = Tensor::<Ad, 2>::from_inner(values.clone()).require_grad();
        let y = dropout(&layer, x.clone());
        let gradient = x.grad(&y.clone().sum().backward()).unwrap();
        let (y, x, gradient) = (
            y.inner().into_data().to_vec::<f32>().unwrap(),
            values.into_data().to_vec::<f32>().unwrap(),
            gradient.into_data().to_vec::<f32>().unwrap(),
        );
        let scale = (1.0 / 0.75f64) as f32;
        let mut dropped = 0;
        for ((y, x), g) in y.iter().zip(&x).zip(&gradient) {
            if *y == 0.0 {
                dropped += 1;
                assert_eq!(*g, 0.0);
            } else {
                // Burn's `x · 1 · (1 / keep)`, bit for bit.
                assert_eq!(*y, x * scale);
                assert_eq!(*g, scale);
            }
        }
        assert!(
            (300..700).contains(&dropped),
            "{dropped} of 2000 dropped at p = 0.25"
        );
    }

    #[test]
    fn dropout_is_the_identity_without_autodiff() {
        let layer = DropoutConfig::new(0.5).init();
        let x = Tensor::<TestBackend, 1>::ones([100], &Default::default());
        assert_eq!(dropout(&layer, x.clone()).into_data(), x.into_data());
    }
}
