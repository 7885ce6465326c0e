//! The variance of Adam's adaptive learning rate, the analysis RAdam is built on (Liu et al. 2020,
//! §3–4): exactly, to first order, and by Monte-Carlo simulation of gradient trajectories.
//!
//! Model: the adaptive learning rate ψ = 1/sqrt(v̂) with ψ² ~ Scale-inv-χ²(ρ, 1/σ²), where ρ is
//! the degrees of freedom (the length of the approximated simple moving average, ρ_t).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use statrs::function::beta::ln_beta;
use statrs::function::gamma::ln_gamma;

/// Var\[ψ\] for ψ² ~ Scale-inv-χ²(ρ, 1/σ²), exactly (Eq. 2):
/// `Var[ψ] = (1/σ²)·[ρ/(ρ−2) − ρ·2^(2ρ−5)/π · B((ρ−1)/2, (ρ−1)/2)²]`.
///
/// Defined for ρ > 2 (infinite below: E\[ψ²\] diverges); computed in log space so that it stays
/// finite for large ρ. Returns `None` for ρ ≤ 2 or σ² ≤ 0.
pub fn exact_variance(rho: f64, sigma_squared: f64) -> Option<f64> {
    if !(rho > 2.0 && sigma_squared > 0.0) {
        return None;
    }
    let half = (rho - 1.0) / 2.0;
    // ρ·2^(2ρ−5)/π·B² in log space: ln ρ + (2ρ − 5)·ln 2 − ln π + 2·ln B
    let log_squared_mean = rho.ln() + (2.0 * rho - 5.0) * std::f64::consts::LN_2
        - std::f64::consts::PI.ln()
        + 2.0 * ln_beta(half, half);
    Some((rho / (rho - 2.0) - log_squared_mean.exp()) / sigma_squared)
}

/// E\[ψ\] for ψ² ~ Scale-inv-χ²(ρ, 1/σ²): `sqrt(ρ/2)·Γ((ρ−1)/2)/Γ(ρ/2)/σ` — the same quantity as
/// inside Eq. 2, written with the Gamma function (a cross-check of the Beta-function form).
pub fn mean(rho: f64, sigma_squared: f64) -> Option<f64> {
    if !(rho > 1.0 && sigma_squared > 0.0) {
        return None;
    }
    let log_ratio = ln_gamma((rho - 1.0) / 2.0) - ln_gamma(rho / 2.0);
    Some((rho / 2.0).sqrt() * log_ratio.exp() / sigma_squared.sqrt())
}

/// The first-order approximation of Var\[ψ\] (Eq. 5): `ρ / (2·(ρ−2)·(ρ−4)·σ²)`, for ρ > 4.
pub fn first_order_variance(rho: f64, sigma_squared: f64) -> Option<f64> {
    (rho > 4.0 && sigma_squared > 0.0)
        .then(|| rho / (2.0 * (rho - 2.0) * (rho - 4.0) * sigma_squared))
}

/// One row of the theory table: ρ, the exact and approximate variance (σ² = 1), and the
/// approximation's relative error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TheoryRow {
    /// Degrees of freedom.
    pub rho: f64,
    /// Eq. 2.
    pub exact: f64,
    /// Eq. 5.
    pub first_order: f64,
    /// `(first_order − exact) / exact`.
    pub relative_error: f64,
}

/// The theory table for every integer ρ in `rhos` above 4 (σ² = 1).
pub fn theory_table(rhos: impl IntoIterator<Item = usize>) -> Vec<TheoryRow> {
    rhos.into_iter()
        .filter_map(|rho| {
            let rho = rho as f64;
            let exact = exact_variance(rho, 1.0)?;
            let first_order = first_order_variance(rho, 1.0)?;
            Some(TheoryRow {
                rho,
                exact,
                first_order,
                relative_error: (first_order - exact) / exact,
            })
        })
        .collect()
}

/// A Monte-Carlo simulation of the adaptive learning rate: `trajectories` independent runs of
/// `steps` gradients g ~ N(µ, 1), each accumulating Adam's `v_t` with `beta_2`.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// The gradient mean µ.
    pub mu: f64,
    /// β2.
    pub beta_2: f64,
    /// Independent trajectories.
    pub trajectories: usize,
    /// Steps per trajectory.
    pub steps: usize,
    /// Seed of the gradient draws.
    pub seed: u64,
}

/// Per-step variances across trajectories.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulatedVariance {
    /// Var\[ψ_t\] of Adam's bias-corrected adaptive learning rate `ψ_t = sqrt((1 − β2^t) / v_t)`,
    /// for t = 1..=steps.
    pub adam: Vec<f64>,
    /// Var[r_t·ψ_t], RAdam's rectified adaptive learning rate, where ρ_t > 4 (`None` before: RAdam
    /// takes momentum steps without an adaptive learning rate there).
    pub radam: Vec<Option<f64>>,
}

/// Running mean and variance (Welford), numerically stable for huge spreads.
#[derive(Clone, Copy, Default)]
struct Welford {
    count: f64,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn push(&mut self, x: f64) {
        self.count += 1.0;
        let delta = x - self.mean;
        self.mean += delta / self.count;
        self.m2 += delta * (x - self.mean);
    }

    fn variance(&self) -> f64 {
        if self.count < 2.0 {
            f64::NAN
        } else {
            self.m2 / (self.count - 1.0)
        }
    }
}

impl Simulation {
    /// Runs the simulation (plain Rust, f64). Deterministic for a seed.
    pub fn run(&self) -> SimulatedVariance {
        let normal = Normal::new(self.mu, 1.0).expect("unit standard deviation");
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let rectification: Vec<Option<f64>> = (1..=self.steps)
            .map(|t| radam_burn::rectification(self.beta_2, t, 4.0))
            .collect();
        let mut adam = vec![Welford::default(); self.steps];
        let mut radam = vec![Welford::default(); self.steps];
        for _ in 0..self.trajectories {
            let mut v = 0.0f64;
            let mut beta_power = 1.0f64;
            for t in 0..self.steps {
                let g: f64 = normal.sample(&mut rng);
                // v_t ← β2·v_{t−1} + (1 − β2)·g_t²
                v = self.beta_2 * v + (1.0 - self.beta_2) * g * g;
                beta_power *= self.beta_2;
                // ψ_t = sqrt((1 − β2^t) / v_t)   (Adam's adaptive learning rate, Eq. 1)
                let psi = ((1.0 - beta_power) / v).sqrt();
                adam[t].push(psi);
                if let Some(r) = rectification[t] {
                    radam[t].push(r * psi);
                }
            }
        }
        SimulatedVariance {
            adam: adam.iter().map(Welford::variance).collect(),
            radam: rectification
                .iter()
                .zip(&radam)
                .map(|(r, w)| r.map(|_| w.variance()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (ρ, Var[ψ] by Eq. 2, relative error of Eq. 5), computed with 50-digit arithmetic by
    /// `tools/variance_reference.py` (mpmath), printed to 17 digits.
    #[allow(clippy::excessive_precision)]
    const REFERENCE: [(f64, f64, f64); 7] = [
        (5.0, 0.25195606140537479, 2.3074549930853795),
        (6.0, 0.17464059926680598, 1.147267024817616),
        (10.0, 0.075545959275055933, 0.37885159797104903),
        (50.0, 0.010793599750612687, 0.0489979274498514),
        (100.0, 0.0051928157492921842, 0.023457427902107908),
        (500.0, 0.0010075417015241904, 0.0045370494044372045),
        (2000.0, 0.00025046939922206672, 0.0011273015249608242),
    ];

    #[test]
    fn eq_2_matches_high_precision_reference_values() {
        for (rho, variance, relative_error) in REFERENCE {
            let exact = exact_variance(rho, 1.0).unwrap();
            // The bracket of Eq. 2 is a difference of two numbers near 1: f64 keeps about
            // 16 − log10(2ρ) digits of it.
            let tolerance = if rho <= 500.0 { 1e-9 } else { 1e-7 };
            assert!(
                ((exact - variance) / variance).abs() < tolerance,
                "ρ = {rho}: {exact} vs {variance}"
            );
            let approximate = first_order_variance(rho, 1.0).unwrap();
            let error = (approximate - exact) / exact;
            assert!(
                (error - relative_error).abs() < 1e-6,
                "ρ = {rho}: error {error} vs {relative_error}"
            );
        }
        // σ² scales the variance as 1/σ².
        let scaled = exact_variance(10.0, 4.0).unwrap();
        assert!((scaled - exact_variance(10.0, 1.0).unwrap() / 4.0).abs() < 1e-15);
    }

    #[test]
    fn beta_and_gamma_forms_of_eq_2_agree() {
        for rho in [3.0, 5.0, 10.5, 50.0, 500.0, 1999.0] {
            let exact = exact_variance(rho, 1.0).unwrap();
            let mean = mean(rho, 1.0).unwrap();
            let from_moments = rho / (rho - 2.0) - mean * mean;
            assert!(
                ((exact - from_moments) / from_moments).abs() < 1e-6,
                "ρ = {rho}: {exact} vs {from_moments}"
            );
        }
    }

    #[test]
    fn first_order_approximation_is_accurate_for_large_rho() {
        // Eq. 5 overestimates, by a relative error that falls like 2.25/ρ: 230 % at ρ = 5, 4.9 %
        // at ρ = 50, under half a percent at ρ = 500.
        let table = theory_table(5..=500);
        for row in &table {
            assert!(row.relative_error > 0.0, "Eq. 5 overestimates: {row:?}");
            if row.rho >= 100.0 {
                let scaled = row.relative_error * row.rho;
                assert!((2.2..2.4).contains(&scaled), "{row:?}");
            }
        }
        assert!(table.last().unwrap().relative_error < 0.005);
    }

    #[test]
    fn variance_decreases_monotonically_in_rho() {
        // Theorem 1: Var[ψ] decreases as ρ grows.
        let table = theory_table(5..=500);
        assert_eq!(table.len(), 496);
        for pair in table.windows(2) {
            assert!(pair[1].exact < pair[0].exact, "{pair:?}");
            assert!(pair[1].first_order < pair[0].first_order, "{pair:?}");
        }
        assert_eq!(exact_variance(2.0, 1.0), None);
        assert_eq!(first_order_variance(4.0, 1.0), None);
    }

    #[test]
    fn simulation_shows_the_early_variance_and_its_rectification() {
        let simulation = Simulation {
            mu: 0.0,
            beta_2: 0.999,
            trajectories: 400,
            steps: 300,
            seed: 3,
        };
        let result = simulation.run();
        assert_eq!(simulation.run(), result, "deterministic for a seed");
        let late = result.adam[299];
        // Adam's adaptive learning rate varies far more in the first steps than later.
        assert!(result.adam[5] > 10.0 * late, "{} vs {late}", result.adam[5]);
        // RAdam has no adaptive step while ρ_t ≤ 4 (t ≤ 4 for β2 = 0.999; threshold 4 here).
        assert!(result.radam[..4].iter().all(Option::is_none));
        // Rectified, the variance of the early steps is no larger than the late one's, within
        // the sampling error of 400 trajectories.
        let rectified_early = result.radam[9].unwrap();
        assert!(rectified_early < 2.0 * late, "{rectified_early} vs {late}");
    }
}
