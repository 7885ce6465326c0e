//! The exact GELU `x·Φ(x)` and its exact derivative `Φ(x) + x·φ(x)`, as PyTorch's `nn.GELU()`
//! (`approximate='none'`) computes them: natively on ndarray, with Burn's tensor operations on
//! every other backend.
//!
//! Not Burn's `activation::gelu`: its forward is the same, but its gradient is the derivative of
//! GELU's tanh approximation, up to 9e-4 away from the exact one (measured below), which moved
//! the Transformer's gradients 5e-4 away from PyTorch's.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::ops::dispatch;

/// `x·Φ(x)`, element-wise.
pub(crate) fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    match dispatch::native::<B>() {
        #[cfg(feature = "ndarray-kernels")]
        Some(native) => crate::ops::ndarray::gelu::gelu(native, x),
        _ => generic(x),
    }
}

/// [`gelu`] with Burn's tensor operations: `x/2·(1 + erf(x/√2))`, whose autodiff gradient is the
/// exact one (Burn differentiates `erf` exactly).
fn generic<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let cdf = x
        .clone()
        .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)
        .erf()
        .add_scalar(1.0)
        .mul_scalar(0.5);
    x * cdf
}

#[cfg(all(test, feature = "ndarray-kernels"))]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend as Ad, TestBackend};
    use burn::tensor::Distribution;

    /// GELU and its derivative at `x` in f64, from the definition (`erf` by its series, which
    /// converges to f64 precision for |x| ≤ 6; beyond, Φ is 0 or 1 to f64 precision).
    fn exact(x: f64) -> (f64, f64) {
        let z = x / std::f64::consts::SQRT_2;
        let erf = if z.abs() > 4.3 {
            z.signum()
        } else {
            // erf z = 2/√π Σ (−1)ⁿ z^{2n+1} / (n! (2n + 1))
            let (mut term, mut sum, mut n) = (z, z, 0.0);
            while term.abs() > 1e-18 {
                n += 1.0;
                term *= -z * z / n;
                sum += term / (2.0 * n + 1.0);
            }
            2.0 / std::f64::consts::PI.sqrt() * sum
        };
        let cdf = 0.5 * (1.0 + erf);
        let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (x * cdf, cdf + x * pdf)
    }

    /// GELU's value and gradient at `values` by `f`, on autodiff ndarray.
    fn value_and_gradient(
        f: fn(Tensor<Ad, 3>) -> Tensor<Ad, 3>,
        values: &Tensor<TestBackend, 3>,
    ) -> (Vec<f32>, Vec<f32>) {
        let x = Tensor::<Ad, 3>::from_inner(values.clone()).require_grad();
        let y = f(x.clone());
        let grads = y.clone().sum().backward();
        let vec = |t: Tensor<TestBackend, 3>| t.into_data().to_vec::<f32>().unwrap();
        (vec(y.inner()), vec(x.grad(&grads).unwrap()))
    }

    #[test]
    fn gelu_and_its_gradient_are_the_exact_ones_natively_and_with_tensor_operations() {
        let device = Default::default();
        let values =
            Tensor::<TestBackend, 3>::random([4, 70, 300], Distribution::Normal(0.0, 2.0), &device);
        let xs: Vec<f32> = values.clone().into_data().to_vec().unwrap();
        let worst = |ys: &[f32], derivative: bool| {
            xs.iter().zip(ys).fold(0.0f64, |m, (&x, &y)| {
                let (value, slope) = exact(x as f64);
                let want = if derivative { slope } else { value };
                m.max((y as f64 - want).abs() / want.abs().max(1.0))
            })
        };
        for (name, f) in [
            ("native", gelu as fn(Tensor<Ad, 3>) -> Tensor<Ad, 3>),
            ("tensor operations", generic),
        ] {
            let (y, dx) = value_and_gradient(f, &values);
            assert!(
                worst(&y, false) < 1e-6,
                "{name}: value {}",
                worst(&y, false)
            );
            assert!(
                worst(&dx, true) < 1e-6,
                "{name}: gradient {}",
                worst(&dx, true)
            );
        }
        // Why not Burn's: the same value, but the tanh approximation's derivative.
        let (y, dx) = value_and_gradient(burn::tensor::activation::gelu, &values);
        assert!(worst(&y, false) < 1e-6);
        let burn = worst(&dx, true);
        assert!(burn > 5e-4, "Burn's GELU gradient is {burn} off");
        // Without autodiff too.
        let native: Vec<f32> = gelu(values.clone()).into_data().to_vec().unwrap();
        assert!(worst(&native, false) < 1e-6);
    }
}
