//! Stops a run whose training loss is no longer a finite number, and remembers where that
//! happened, so the harness can end with an error naming the epoch and step instead of saving a
//! NaN model as if it were trained.

use std::fmt;
use std::sync::{Arc, Mutex};

use burn::train::Interrupter;

/// Where the training loss stopped being finite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Divergence {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// The step within the epoch, counted from 1.
    pub iteration: usize,
    /// The loss seen there (NaN or ±∞).
    pub loss: f64,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the training loss became {} at epoch {}, step {}",
            self.loss, self.epoch, self.iteration
        )
    }
}

/// Watches the training loss; on the first non-finite value it records a [`Divergence`] and
/// asks the Learner to stop through its [`Interrupter`]. Clones share one record.
#[derive(Clone)]
pub struct DivergenceGuard {
    interrupter: Interrupter,
    found: Arc<Mutex<Option<Divergence>>>,
}

impl DivergenceGuard {
    /// A guard that stops training through `interrupter`.
    pub fn new(interrupter: Interrupter) -> Self {
        Self {
            interrupter,
            found: Arc::default(),
        }
    }

    /// Looks at the training loss reported for `iteration` of `epoch`.
    pub fn observe(&self, epoch: usize, iteration: usize, loss: f64) {
        if loss.is_finite() {
            return;
        }
        let mut found = self.found.lock().expect("divergence lock poisoned");
        if found.is_none() {
            *found = Some(Divergence {
                epoch,
                iteration,
                loss,
            });
            self.interrupter.stop();
        }
    }

    /// The first divergence seen, if any.
    pub fn divergence(&self) -> Option<Divergence> {
        *self.found.lock().expect("divergence lock poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_non_finite_loss_stops_training_and_is_kept() {
        let interrupter = Interrupter::new();
        let guard = DivergenceGuard::new(interrupter.clone());
        guard.observe(1, 1, 2.3);
        guard.observe(1, 2, 1e30);
        assert!(!interrupter.should_stop());
        assert_eq!(guard.divergence(), None);
        guard.clone().observe(2, 7, f64::INFINITY);
        guard.observe(2, 8, f64::NAN);
        assert!(interrupter.should_stop());
        let divergence = guard.divergence().unwrap();
        assert_eq!((divergence.epoch, divergence.iteration), (2, 7));
        assert_eq!(
            divergence.to_string(),
            "the training loss became inf at epoch 2, step 7"
        );
    }
}
