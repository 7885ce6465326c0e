//! The trajectories of two small parameters that the Lookahead and Adam-2k references record:
//! `w` (3 × 4) and `b` (5), a gradient for each per step, and both after every step.

use std::ops::Range;

use serde::Deserialize;

/// The shape of the parameter `w`.
pub const W_SHAPE: [usize; 2] = [3, 4];

/// The shape of the parameter `b`.
pub const B_SHAPE: [usize; 1] = [5];

/// One value for each of the two parameters.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Pair<T> {
    /// For `w`, flattened row-major.
    pub w: T,
    /// For `b`.
    pub b: T,
}

/// A recorded trajectory of `w` and `b` under one optimizer.
#[derive(Deserialize)]
pub struct Trajectory {
    /// The case's name, for messages.
    pub name: String,
    /// The number of steps.
    pub steps: usize,
    /// The learning rate of every step.
    pub lr: f64,
    /// Both parameters before the first step.
    pub initial: Pair<Vec<f32>>,
    /// The gradients of each step.
    pub grads: Pair<Vec<Vec<f32>>>,
    /// Both parameters after each step.
    pub after: Pair<Vec<Vec<f32>>>,
}

impl Trajectory {
    /// The gradients of step `step` (counted from 0).
    pub fn grads_at(&self, step: usize) -> Pair<&[f32]> {
        Pair {
            w: &self.grads.w[step],
            b: &self.grads.b[step],
        }
    }

    /// Replays the steps `steps` (counted from 0): `step(lr, gradients)` takes one step of the
    /// optimizer under test and returns both parameters after it. Each is checked against the
    /// recording, `|actual − expected| ≤ tolerance · max(|expected|, 1)`, with a panic naming the
    /// case, step, parameter and element; returns the worst scaled error.
    pub fn replay(
        &self,
        steps: Range<usize>,
        tolerance: f32,
        mut step: impl FnMut(f64, Pair<&[f32]>) -> Pair<Vec<f32>>,
    ) -> f32 {
        let mut worst = 0.0_f32;
        for t in steps {
            let actual = step(self.lr, self.grads_at(t));
            for (name, actual, expected) in [
                ("w", &actual.w, &self.after.w[t]),
                ("b", &actual.b, &self.after.b[t]),
            ] {
                let what = format!("case {}, step {}, {name}", self.name, t + 1);
                worst = worst.max(super::assert_close(actual, expected, tolerance, &what));
            }
        }
        worst
    }
}
