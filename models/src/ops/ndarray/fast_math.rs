//! `exp`, `tanh` and the logistic sigmoid in f32 without a call into libm, branch-free, so that
//! the loops of the LSTM and the cross-entropy that apply them element by element are vectorised
//! by the compiler (libm's `expf`, `tanhf` and the `expm1f` it calls were 12 % of the adaptive LM's
//! training step, one element per call). Cephes' single-precision methods:
//!
//! - `exp(x) = 2ⁿ·e^r` with `n = round(x·log₂e)`, `r = x − n·ln 2` (ln 2 in two parts, so that
//!   `r` is exact), `e^r` a degree-7 polynomial on `|r| ≤ ln 2 / 2`;
//! - `tanh(x)`: an odd polynomial for `|x| < 0.625`, else `1 − 2/(e^{2|x|} + 1)` with its sign;
//! - `sigmoid(x) = 1/(1 + e^{−x})`.
//!
//! Accuracy (tested against f64 over a sweep): within 2 units in the last place of f32 for `exp`,
//! 3 for `sigmoid` (libm's `expf` is within 1), within 2e-7 absolute (and 2 units relative) for
//! `tanh`.

/// `log₂ e`.
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `ln 2`'s leading part, exact in f32 with its last bits zero.
const LN2_HIGH: f32 = 0.693_359_4;
/// `ln 2 − LN2_HIGH`.
const LN2_LOW: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5·2²³ rounds an f32 of magnitude below 2²² to an integer.
const ROUND: f32 = 12_582_912.0;
/// Arguments are clamped to `[MIN_X, MAX_X]`, where `2ⁿ` is a normal f32: `e^x` is then below
/// 1.2e-38 (instead of 0) or 1.65e38 (instead of up to 3.4e38 or ∞), which no caller can tell
/// apart (a sigmoid or softmax of such terms is the same).
const MIN_X: f32 = -87.33;
const MAX_X: f32 = 88.0;

/// `e^x` (see the module).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // `max`/`min` in this order keep a NaN a NaN.
    let x = if x < MIN_X { MIN_X } else { x };
    let x = if x > MAX_X { MAX_X } else { x };
    // `shifted` is 1.5·2²³ + n: its low bits hold n, so 2ⁿ is read from them below without a
    // float-to-integer conversion (which the compiler does not vectorise).
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let p = 1.987_569_2e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // (bits of 1.5·2²³ + n) + 127, shifted into the exponent field, drops every bit above the
    // lowest nine: (n + 127) << 23, with n + 127 in 1..=254 after the clamping.
    let two_n = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
    e_r * two_n
}

/// `1/(1 + e^{−x})`.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh x` (see the module).
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let z = x * x;
    let small = ((((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 0.133_314_42)
        * z
        - 0.333_332_8)
        * z
        * x
        + x;
    let large = 1.0 - 2.0 / (exp(2.0 * x.abs()) + 1.0);
    let large = if x < 0.0 { -large } else { large };
    if x.abs() < 0.625 { small } else { large }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments from −100 to 100: a fine grid near 0 and every power of two's neighbourhood.
    fn arguments() -> Vec<f32> {
        let mut xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 5e-4).collect();
        for e in -30..7 {
            let p = 2f32.powi(e);
            xs.extend([p, -p, p * 1.000_001, -p * 0.999_999]);
        }
        xs.extend([0.0, -0.0, 0.625, -0.625, 0.624_999_9, 87.0, 88.0, -87.0]);
        xs
    }

    /// Units in the last place of f32 between `got` and the f64 `want`.
    fn ulps(got: f32, want: f64) -> f64 {
        let want32 = want as f32;
        let ulp = (f32::from_bits(want32.abs().to_bits() + 1) - want32.abs()) as f64;
        (got as f64 - want).abs() / ulp
    }

    #[test]
    fn exp_is_within_two_ulps_and_sigmoid_within_three() {
        for x in arguments() {
            let e = (x as f64).exp();
            if e > 1e-37 && e < 1.6e38 {
                assert!(ulps(exp(x), e) <= 2.0, "exp({x}) = {} vs {e}", exp(x));
            }
            let s = 1.0 / (1.0 + (-x as f64).exp());
            if s > 1e-37 {
                let error = ulps(sigmoid(x), s);
                assert!(
                    error <= 3.0,
                    "sigmoid({x}) = {} vs {s}: {error} ulps",
                    sigmoid(x)
                );
            }
        }
        assert_eq!(exp(-1000.0), exp(MIN_X), "clamped below");
        assert!(exp(-1000.0) < 1.2e-38 && exp(-1000.0) > 0.0);
        assert!(exp(1000.0).is_finite());
        assert!(exp(f32::NAN).is_nan() && sigmoid(f32::NAN).is_nan() && tanh(f32::NAN).is_nan());
        assert!(sigmoid(-1000.0) < 1e-37);
        assert_eq!(sigmoid(1000.0), 1.0);
    }

    #[test]
    fn tanh_is_within_2e_7_and_two_ulps() {
        for x in arguments() {
            let want = (x as f64).tanh();
            let got = tanh(x);
            assert!(
                (got as f64 - want).abs() <= 2e-7 && (want == 0.0 || ulps(got, want) <= 2.0),
                "tanh({x}) = {got} vs {want}"
            );
        }
        assert_eq!(tanh(1000.0), 1.0);
        assert_eq!(tanh(-1000.0), -1.0);
    }
}
