//! Results over several seeds: the mean and spread of a final value, and of a learning curve
//! epoch by epoch (the band drawn around it).

use std::collections::BTreeMap;
use std::fmt;

use crate::figure::Series;

/// One quantity over the seeds that produced a finite value: mean and sample standard
/// deviation (n − 1 in the denominator; 0 for a single seed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverSeeds {
    /// The mean (NaN when no seed gave a finite value).
    pub mean: f64,
    /// The sample standard deviation (NaN when no seed gave a finite value).
    pub std: f64,
    /// How many seeds gave a finite value.
    pub seeds: usize,
}

impl OverSeeds {
    /// The mean and standard deviation of the finite `values`; a diverged seed (NaN, ∞) is
    /// left out and shows as a smaller [`seeds`](Self::seeds).
    pub fn of(values: &[f64]) -> Self {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let n = finite.len();
        if n == 0 {
            return Self {
                mean: f64::NAN,
                std: f64::NAN,
                seeds: 0,
            };
        }
        let mean = finite.iter().sum::<f64>() / n as f64;
        let std = if n == 1 {
            0.0
        } else {
            let squares: f64 = finite.iter().map(|v| (v - mean).powi(2)).sum();
            (squares / (n - 1) as f64).sqrt()
        };
        Self {
            mean,
            std,
            seeds: n,
        }
    }
}

impl fmt::Display for OverSeeds {
    /// `33.60 ± 1.20` (with the formatter's precision, default 2); `–` when no seed gave a value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seeds == 0 {
            return f.write_str("–");
        }
        let digits = f.precision().unwrap_or(2);
        write!(f, "{:.digits$} ± {:.digits$}", self.mean, self.std)
    }
}

/// Learning curves of several seeds, `(x, y)` each, as one curve of [`OverSeeds`] per x that at
/// least one seed has, in increasing x.
pub fn curve_over_seeds(curves: &[Vec<(f64, f64)>]) -> Vec<(f64, OverSeeds)> {
    let mut by_x: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
    for curve in curves {
        for &(x, y) in curve {
            // Ordered by x's bits: x ≥ 0 here (epochs, steps), where the bits order as the values.
            by_x.entry(x.to_bits())
                .or_insert_with(|| (x, Vec::new()))
                .1
                .push(y);
        }
    }
    by_x.into_values()
        .map(|(x, ys)| (x, OverSeeds::of(&ys)))
        .collect()
}

/// The mean curve of several seeds' `curves` as a figure series named `name`, with a band of
/// ± one standard deviation (none where a single seed gives the value).
pub fn series_over_seeds(name: impl Into<String>, curves: &[Vec<(f64, f64)>]) -> Series {
    let over = curve_over_seeds(curves);
    let mean = over.iter().map(|(x, y)| (*x, y.mean)).collect();
    let band = if curves.len() > 1 {
        over.iter()
            .map(|(x, y)| (*x, y.mean - y.std, y.mean + y.std))
            .collect()
    } else {
        Vec::new()
    };
    Series::new(name, mean).with_band(band)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std_of_known_numbers() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, Σ(v − 5)² = 32, sample variance 32/7.
        let over = OverSeeds::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(over.mean, 5.0);
        assert!((over.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(over.seeds, 8);
        assert_eq!(format!("{over}"), "5.00 ± 2.14");
        assert_eq!(format!("{over:.1}"), "5.0 ± 2.1");
    }

    #[test]
    fn diverged_seeds_are_left_out_and_counted() {
        let over = OverSeeds::of(&[1.0, f64::NAN, 3.0, f64::INFINITY]);
        assert_eq!((over.mean, over.seeds), (2.0, 2));
        assert!((over.std - 2f64.sqrt()).abs() < 1e-12);
        let single = OverSeeds::of(&[7.5]);
        assert_eq!((single.mean, single.std, single.seeds), (7.5, 0.0, 1));
        let none = OverSeeds::of(&[f64::NAN]);
        assert!(none.mean.is_nan() && none.seeds == 0);
        assert_eq!(none.to_string(), "–");
    }

    #[test]
    fn curves_are_aggregated_epoch_by_epoch() {
        // The second seed stopped after epoch 2.
        let curves = vec![
            vec![(1.0, 10.0), (2.0, 6.0), (3.0, 4.0)],
            vec![(1.0, 12.0), (2.0, 8.0)],
        ];
        let band = curve_over_seeds(&curves);
        let xs: Vec<f64> = band.iter().map(|(x, _)| *x).collect();
        assert_eq!(xs, [1.0, 2.0, 3.0]);
        assert_eq!(band[0].1.mean, 11.0);
        assert!((band[1].1.std - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!((band[2].1.mean, band[2].1.seeds), (4.0, 1));
    }

    #[test]
    fn a_series_over_seeds_is_the_mean_with_a_one_std_band() {
        let curves = vec![vec![(1.0, 10.0), (2.0, 6.0)], vec![(1.0, 12.0), (2.0, 8.0)]];
        let series = series_over_seeds("Adam", &curves);
        assert_eq!(series.points, [(1.0, 11.0), (2.0, 7.0)]);
        let s = 2f64.sqrt();
        assert_eq!(
            series.band,
            [(1.0, 11.0 - s, 11.0 + s), (2.0, 7.0 - s, 7.0 + s)]
        );
        // One seed: the curve alone.
        assert!(series_over_seeds("Adam", &curves[..1]).band.is_empty());
    }
}
