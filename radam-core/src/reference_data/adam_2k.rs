//! The Adam-2k trajectories of `tools/adam_2k_reference.py` (the paper's `Adam2`, written from its
//! code's description in float32 PyTorch), in `testdata/adam_2k_reference.json`.

use serde::Deserialize;

use super::two_parameters::{Pair, Trajectory};
use crate::Adam2kFields;

/// The scaled tolerance of θ, `m_t` and `v_t` in the Adam-2k cases.
pub const TOLERANCE: f32 = 5e-6;

/// One recorded trajectory of Adam-2k.
#[derive(Deserialize)]
pub struct Case {
    /// `k`.
    pub frozen_steps: usize,
    /// `β1`.
    pub beta_1: f32,
    /// `β2`.
    pub beta_2: f32,
    /// `ε`.
    pub epsilon: f32,
    /// Decoupled weight decay `λ`.
    pub weight_decay: f32,
    /// `m_t` after the last step.
    pub m: Pair<Vec<f32>>,
    /// `v_t` after the last step.
    pub v: Pair<Vec<f32>>,
    /// The parameters, gradients and results.
    #[serde(flatten)]
    pub trajectory: Trajectory,
}

impl Case {
    /// Replays every step, as [`Trajectory::replay`] does, and checks besides that the frozen
    /// steps leave both parameters exactly as they were. Returns the worst scaled error.
    pub fn replay(&self, mut step: impl FnMut(f64, Pair<&[f32]>) -> Pair<Vec<f32>>) -> f32 {
        let trajectory = &self.trajectory;
        let mut t = 0;
        trajectory.replay(0..trajectory.steps, TOLERANCE, |lr, grads| {
            let values = step(lr, grads);
            t += 1;
            if t <= self.frozen_steps {
                assert_eq!(
                    values, trajectory.initial,
                    "case {}: θ moved in frozen step {t}",
                    trajectory.name
                );
            }
            values
        })
    }

    /// Checks the optimizer's state after the last step: `t` of both parameters is the number
    /// of steps, and `m_t` and `v_t` are the recorded ones within [`TOLERANCE`].
    pub fn assert_final_state(&self, time: Pair<usize>, m: Pair<Vec<f32>>, v: Pair<Vec<f32>>) {
        let name = &self.trajectory.name;
        let steps = self.trajectory.steps;
        assert_eq!((time.w, time.b), (steps, steps), "case {name}: step counts");
        for (what, actual, expected) in [
            ("m of w", &m.w, &self.m.w),
            ("m of b", &m.b, &self.m.b),
            ("v of w", &v.w, &self.v.w),
            ("v of b", &v.b, &self.v.b),
        ] {
            super::assert_close(actual, expected, TOLERANCE, &format!("case {name}, {what}"));
        }
    }

    /// The fields this case was recorded with.
    pub fn fields(&self) -> Adam2kFields {
        Adam2kFields {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            frozen_steps: self.frozen_steps,
        }
    }
}

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

/// Every recorded case.
pub fn cases() -> Vec<Case> {
    let file: File = serde_json::from_str(include_str!("../../testdata/adam_2k_reference.json"))
        .expect("testdata/adam_2k_reference.json parses");
    file.cases
}
