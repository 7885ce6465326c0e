//! The variance-rectification maths of RAdam (Liu et al. 2020, §4 and Algorithm 2).
//!
//! Every function here works in `f64` on the host: these are the per-step scalars that multiply
//! the element-wise tensor maths, and computing them in `f32` would lose the digits that make
//! `ρ_t` and `r_t` agree with PyTorch.
//!
//! Steps are counted from `t = 1`, as in the paper.

/// The maximum length of the approximated simple moving average, `ρ∞ = 2 / (1 − β2) − 1`
/// (paper, §4.1).
///
/// `ρ∞ ≤ 4` for `β2 ≤ 0.6`; RAdam then never leaves its momentum phase.
///
/// ```
/// assert!((radam_core::rho_inf(0.999) - 1999.0).abs() < 1e-9);
/// ```
pub fn rho_inf(beta_2: f64) -> f64 {
    2.0 / (1.0 - beta_2) - 1.0
}

/// The length of the approximated simple moving average at step `t`,
/// `ρ_t = ρ∞ − 2·t·β2^t / (1 − β2^t)` (paper, Eq. 6 and Algorithm 2).
///
/// `ρ_1 = 1` for every `β2`, and `ρ_t` grows towards `ρ∞`.
///
/// # Panics
/// If `t == 0`: steps count from 1 and `ρ_0` is undefined (0/0).
pub fn rho(beta_2: f64, t: usize) -> f64 {
    assert!(t >= 1, "rho(beta_2, t): steps count from t = 1, got t = 0");
    let step = t as f64;
    let beta_2_t = beta_2.powf(step);
    let bias_correction_2 = 1.0 - beta_2_t;
    // Same evaluation order as torch.optim.RAdam, so the f64 results agree to the last bit.
    rho_inf(beta_2) - 2.0 * step * beta_2_t / bias_correction_2
}

/// The variance rectification term at step `t` (paper, Algorithm 2):
///
/// `r_t = sqrt( (ρ_t − 4)(ρ_t − 2)·ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)·ρ_t) )`
///
/// Returns `None` while `ρ_t ≤ threshold`: the variance of the adaptive learning rate is then
/// intractable and RAdam takes an un-adapted momentum step (or no step) instead.
/// `threshold` is 5 in PyTorch and 4 in the paper's Algorithm 2. Whatever the threshold, `r_t`
/// is a real number only for `ρ_t > 4`, so below that the answer is always `None`, never NaN.
///
/// # Panics
/// If `t == 0` (see [`rho`]).
///
/// ```
/// use radam_core::rectification;
/// assert_eq!(rectification(0.999, 5, 5.0), None); // ρ_5 = 4.996: momentum phase
/// let r_6 = rectification(0.999, 6, 5.0).unwrap(); // ρ_6 = 5.994: first adaptive step
/// assert!((r_6 - 0.025821).abs() < 1e-6);
/// ```
pub fn rectification(beta_2: f64, t: usize, threshold: f64) -> Option<f64> {
    let rho_t = rho(beta_2, t);
    if rho_t > threshold && rho_t > 4.0 {
        let rho_inf = rho_inf(beta_2);
        let ratio =
            (rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t);
        Some(ratio.sqrt())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "expected {expected}, got {actual} (tolerance {tolerance})"
        );
    }

    #[test]
    fn rho_one_is_one_for_every_beta_2() {
        for beta_2 in [0.0, 0.3, 0.6, 0.9, 0.99, 0.999, 0.9999] {
            assert_close(rho(beta_2, 1), 1.0, 1e-9);
        }
    }

    #[test]
    fn rho_matches_the_published_values() {
        // RADAM.md, "Facts worth testing" (β2 = 0.999).
        assert_close(rho(0.999, 4), 3.9975, 5e-5);
        assert_close(rho(0.999, 5), 4.996, 5e-4);
        assert_close(rho(0.999, 6), 5.9942, 5e-5);
        assert_close(rho(0.999, 7), 6.992, 5e-4);
    }

    #[test]
    fn rectification_matches_the_published_values() {
        assert_eq!(rectification(0.999, 5, 5.0), None);
        assert_close(rectification(0.999, 5, 4.0).unwrap(), 0.017312, 5e-7);
        assert_close(rectification(0.999, 6, 5.0).unwrap(), 0.025821, 5e-7);
        assert_close(rectification(0.999, 7, 5.0).unwrap(), 0.032739, 5e-7);
    }

    #[test]
    fn a_threshold_below_four_never_gives_nan() {
        // ρ_4 = 3.9975 < 4: (ρ_t − 4) < 0 under the root.
        for threshold in [f64::NEG_INFINITY, 0.0, 2.0, 3.0, 3.99] {
            for t in 1..=4 {
                assert_eq!(rectification(0.999, t, threshold), None, "t = {t}");
            }
            assert_close(rectification(0.999, 5, threshold).unwrap(), 0.017312, 5e-7);
        }
    }

    #[test]
    fn rho_grows_monotonically_towards_rho_inf() {
        let rho_inf = rho_inf(0.999);
        let mut previous = rho(0.999, 1);
        for t in 2..20_000 {
            let current = rho(0.999, t);
            assert!(
                current > previous,
                "ρ_{t} = {current} ≤ ρ_{} = {previous}",
                t - 1
            );
            assert!(current < rho_inf);
            previous = current;
        }
        assert_close(previous, rho_inf, 1e-3);
    }

    #[test]
    fn rectification_tends_to_one() {
        let r = rectification(0.999, 1_000_000, 5.0).unwrap();
        assert_close(r, 1.0, 1e-12);
    }

    #[test]
    fn small_beta_2_never_rectifies() {
        // ρ∞ ≤ 4 for β2 ≤ 0.6: the rectification is never defined.
        for beta_2 in [0.0, 0.1, 0.5, 0.6] {
            assert!(rho_inf(beta_2) <= 4.0);
            for t in 1..10_000 {
                assert_eq!(
                    rectification(beta_2, t, 4.0),
                    None,
                    "β2 = {beta_2}, t = {t}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "steps count from t = 1")]
    fn rho_rejects_step_zero() {
        rho(0.999, 0);
    }
}
