//! Element-wise loops compiled for the CPU's vector width at run time.
//!
//! The crates are built for the x86-64 baseline (SSE2, four f32 lanes), so a loop the compiler
//! vectorises runs four lanes at a time even on a CPU with AVX2 (eight) or AVX-512 (sixteen).
//! [`vectorized`] runs a closure inside a function compiled with AVX2 and FMA enabled, where
//! the [dispatch](crate::ops::dispatch::has_avx2) found them: the closure is inlined there, so
//! its loops are vectorised eight lanes wide.
//!
//! The results do not change: without fast-math flags the compiler neither fuses a multiply
//! and an add into an FMA nor reorders a sum, so each element is computed by the same
//! operations in the same order, only more of them at once.

use crate::ops::dispatch;

/// `f()`, its loops vectorised with AVX2 where the CPU has AVX2 and FMA (see the module).
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if dispatch::has_avx2() {
        // SAFETY: the dispatch found AVX2 and FMA on this CPU.
        return unsafe { with_avx2(f) };
    }
    f()
}

/// `f()`, inlined into a function compiled with AVX2 and FMA.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::ndarray::fast_math::{sigmoid, tanh};

    /// Element-wise values and their running sum, inlined into each caller.
    #[inline(always)]
    fn gates(xs: &[f32]) -> (Vec<f32>, f32) {
        let mut sum = 0.0_f32;
        let values: Vec<f32> = xs
            .iter()
            .map(|&x| {
                let value = sigmoid(x) * tanh(0.5 * x) + x * 0.25;
                sum += value;
                value
            })
            .collect();
        (values, sum)
    }

    #[test]
    fn vectorised_loops_compute_what_the_baseline_computes_bit_for_bit() {
        // The LSTM's gate arithmetic and a running sum, on every kind of argument.
        let xs: Vec<f32> = (-40_000..40_000)
            .map(|i| i as f32 * 1.37e-3)
            .chain([0.0, -0.0, 1e-30, -1e30, f32::NAN, f32::INFINITY])
            .collect();
        let (baseline, baseline_sum) = gates(&xs);
        let (wide, wide_sum) = vectorized(|| gates(&xs));
        assert_eq!(
            baseline.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            wide.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(baseline_sum.to_bits(), wide_sum.to_bits());
    }
}
