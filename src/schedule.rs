//! Learning-rate schedules of the paper's experiments: optional linear warmup, then constant,
//! step decay (CIFAR) or linear decay (NMT). Counted in optimizer steps, saved in checkpoints.

use burn::lr_scheduler::LrScheduler;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// The learning-rate schedule after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The base rate throughout.
    Constant,
    /// ×0.1 after 50 % and after 75 % of the epochs (the paper's CIFAR schedule).
    Step,
    /// Linear decay to zero over the run (the paper's NMT schedule).
    Linear,
}

impl ScheduleKind {
    /// The decay of this schedule over a run of `total_steps` optimizer steps.
    pub fn decay(self, total_steps: usize) -> Decay {
        match self {
            Self::Constant => Decay::Constant,
            Self::Step => Decay::Step {
                milestones: vec![total_steps / 2, total_steps * 3 / 4],
                gamma: 0.1,
            },
            Self::Linear => Decay::Linear {
                total_steps: total_steps.max(1),
            },
        }
    }
}

/// What happens to the learning rate after warmup.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Decay {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` at each milestone step (e.g. the paper's ×0.1 at 50 % and 75 % of
    /// training for CIFAR).
    Step {
        /// Steps after which the rate drops, ascending.
        milestones: Vec<usize>,
        /// The factor of each drop.
        gamma: f64,
    },
    /// Linear from the base rate (at the end of warmup) to zero at `total_steps`.
    Linear {
        /// The step at which the rate reaches zero.
        total_steps: usize,
    },
}

/// A learning-rate schedule: `lr(t) = base · warmup(t) · decay(t)` for step `t = 1, 2, …`, with
/// `warmup(t) = min(1, t / warmup_steps)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    base: f64,
    warmup_steps: usize,
    decay: Decay,
    /// Times the learner asked for the rate; `calls_per_step` of them make an optimizer step.
    calls: usize,
    calls_per_step: usize,
}

impl Schedule {
    /// A schedule at `base` with `warmup_steps` of linear warmup (0 for none) and `decay`.
    ///
    /// # Errors
    /// If `base` is not a positive finite number, or the decay's parameters make no sense.
    pub fn new(base: f64, warmup_steps: usize, decay: Decay) -> Result<Self, String> {
        if !(base.is_finite() && base > 0.0) {
            return Err(format!(
                "the learning rate must be a positive number, got {base}"
            ));
        }
        match &decay {
            Decay::Step { milestones, gamma } => {
                if !(gamma.is_finite() && *gamma > 0.0) {
                    return Err(format!(
                        "the step-decay factor must be positive, got {gamma}"
                    ));
                }
                if milestones.windows(2).any(|pair| pair[0] > pair[1]) {
                    return Err("step-decay milestones must be ascending".to_string());
                }
            }
            Decay::Linear { total_steps } if *total_steps == 0 => {
                return Err("linear decay needs at least one step".to_string());
            }
            _ => {}
        }
        Ok(Self {
            base,
            warmup_steps,
            decay,
            calls: 0,
            calls_per_step: 1,
        })
    }

    /// The same schedule for a learner that asks for the rate `calls` times per optimizer step:
    /// Burn's DDP does, once per local device. The rate then advances every `calls` calls, so
    /// that it still follows optimizer steps.
    ///
    /// # Panics
    /// If `calls` is zero.
    pub fn with_calls_per_step(mut self, calls: usize) -> Self {
        assert!(
            calls > 0,
            "a learner asks for the rate at least once per step"
        );
        self.calls = self.steps_taken() * calls;
        self.calls_per_step = calls;
        self
    }

    /// The learning rate at step `t` (1-based), without changing the schedule.
    pub fn rate_at(&self, t: usize) -> f64 {
        let warmup = if self.warmup_steps > 0 {
            (t as f64 / self.warmup_steps as f64).min(1.0)
        } else {
            1.0
        };
        let decay = match &self.decay {
            Decay::Constant => 1.0,
            Decay::Step { milestones, gamma } => {
                gamma.powi(milestones.iter().filter(|&&m| t > m).count() as i32)
            }
            Decay::Linear { total_steps } => {
                let start = self.warmup_steps.min(*total_steps);
                if t <= start {
                    1.0
                } else {
                    let span = (*total_steps - start).max(1) as f64;
                    (1.0 - (t - start) as f64 / span).max(0.0)
                }
            }
        };
        self.base * warmup * decay
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> usize {
        self.calls.div_ceil(self.calls_per_step)
    }
}

impl LrScheduler for Schedule {
    type Record<B: Backend> = usize;

    fn step(&mut self) -> f64 {
        self.calls += 1;
        self.rate_at(self.steps_taken())
    }

    fn to_record<B: Backend>(&self) -> Self::Record<B> {
        self.steps_taken()
    }

    fn load_record<B: Backend>(mut self, record: Self::Record<B>) -> Self {
        self.calls = record * self.calls_per_step;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(mut schedule: Schedule, steps: usize) -> Vec<f64> {
        (0..steps).map(|_| schedule.step()).collect()
    }

    #[test]
    fn warmup_is_linear_then_constant() {
        let schedule = Schedule::new(1.0, 4, Decay::Constant).unwrap();
        assert_eq!(rates(schedule, 6), vec![0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn step_decay_drops_after_each_milestone() {
        let decay = Decay::Step {
            milestones: vec![2, 4],
            gamma: 0.1,
        };
        let got = rates(Schedule::new(1.0, 0, decay).unwrap(), 5);
        let expected = [1.0, 1.0, 0.1, 0.1, 0.01];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-12, "{got:?}");
        }
    }

    #[test]
    fn linear_decay_reaches_zero_after_warmup() {
        let schedule = Schedule::new(2.0, 2, Decay::Linear { total_steps: 6 }).unwrap();
        assert_eq!(rates(schedule, 7), vec![1.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0]);
    }

    #[test]
    fn resumes_from_its_record() {
        let mut schedule = Schedule::new(1.0, 10, Decay::Constant).unwrap();
        schedule.step();
        schedule.step();
        let record = schedule.to_record::<burn::backend::NdArray>();
        let mut resumed = Schedule::new(1.0, 10, Decay::Constant)
            .unwrap()
            .load_record::<burn::backend::NdArray>(record);
        assert_eq!(resumed.step(), 0.3);
    }

    #[test]
    fn several_calls_per_step_follow_optimizer_steps() {
        let schedule = Schedule::new(1.0, 2, Decay::Constant)
            .unwrap()
            .with_calls_per_step(2);
        assert_eq!(rates(schedule, 6), vec![0.5, 0.5, 1.0, 1.0, 1.0, 1.0]);
        // A checkpoint records optimizer steps, whatever the number of devices.
        let mut schedule = Schedule::new(1.0, 4, Decay::Constant)
            .unwrap()
            .with_calls_per_step(3);
        for _ in 0..3 {
            schedule.step();
        }
        assert_eq!(schedule.steps_taken(), 1);
        let record = schedule.to_record::<burn::backend::NdArray>();
        let resumed = Schedule::new(1.0, 4, Decay::Constant)
            .unwrap()
            .with_calls_per_step(2)
            .load_record::<burn::backend::NdArray>(record);
        assert_eq!(rates(resumed, 2), vec![0.5, 0.5]);
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(
            Schedule::new(0.0, 0, Decay::Constant)
                .unwrap_err()
                .contains("positive")
        );
        assert!(Schedule::new(f64::NAN, 0, Decay::Constant).is_err());
        let decay = Decay::Step {
            milestones: vec![5, 1],
            gamma: 0.1,
        };
        assert!(
            Schedule::new(1.0, 0, decay)
                .unwrap_err()
                .contains("ascending")
        );
    }
}
