//! The CPU kernels a session computes with: chosen as `--kernels` says, or as the run it resumes
//! chose them, and recorded in the run's directory (`kernels.json`) so that `--resume` reuses
//! them: kernels that sum in another order would end a resumed run a few bits away from the run
//! that was never interrupted.

use std::path::PathBuf;

use radam_models::kernels::{self, KernelChoices, KernelSelection};

use super::{Session, Start};
use crate::harness::error::HarnessError;
use crate::harness::flags::KernelsFlag;
use crate::run_dir::{KERNELS, read_kernel_choices};

/// `--kernels`, its file read.
#[derive(Clone, Debug)]
pub(super) enum KernelPlan {
    /// Chosen by measurement, or by the fixed rules.
    Select(KernelSelection),
    /// Another run's choices, from `path`.
    Replay {
        /// The file they came from.
        path: PathBuf,
        /// The choices.
        choices: KernelChoices,
    },
}

impl KernelPlan {
    /// The plan of `flag`, its file read.
    ///
    /// # Errors
    /// `--kernels FILE` that cannot be read or is not a record of kernel choices.
    pub(super) fn of(flag: &KernelsFlag) -> Result<Self, HarnessError> {
        Ok(match flag {
            KernelsFlag::Select(selection) => Self::Select(*selection),
            KernelsFlag::Replay(path) => Self::Replay {
                path: path.clone(),
                choices: read_kernel_choices(path)
                    .map_err(|e| HarnessError::Invalid(format!("--kernels: {e}")))?,
            },
        })
    }
}

impl Session {
    /// Makes this process choose its kernels as the session must: the resumed run's recorded
    /// choices first (they computed its checkpoints), then `--kernels`' file or selection (the
    /// fixed rules for `measured` in a multi-node run, so that every node computes alike), and
    /// says so when it replays.
    ///
    /// # Errors
    /// A recorded `kernels.json` that is corrupt, or choices this CPU cannot run (an AVX-512
    /// kernel on a CPU without it).
    pub(super) fn choose_kernels(&self) -> Result<(), HarnessError> {
        let recorded = match self.start {
            Start::Fresh { .. } => None,
            Start::Resume { .. } | Start::Trained { .. } => self
                .work_dir
                .read_kernels()
                .map_err(|e| HarnessError::Resume(format!("{e}; delete it to choose anew")))?,
        };
        match &self.kernels {
            // Nodes that each timed their own kernels would sum in different orders and evaluate
            // the same weights a few bits apart; the fixed rules are the same on every node.
            KernelPlan::Select(KernelSelection::Measured) if self.node.collective.is_some() => {
                kernels::select(KernelSelection::Fixed);
                self.say(
                    "kernels: the fixed rules on every node, so that all nodes compute alike                      (--kernels FILE replays measured choices on every node)",
                );
            }
            KernelPlan::Select(selection) => kernels::select(*selection),
            KernelPlan::Replay { path, choices } => {
                kernels::select(choices.selection);
                kernels::replay(choices).map_err(|e| {
                    HarnessError::Invalid(format!("--kernels {}: {e}", path.display()))
                })?;
                self.say(format!(
                    "kernels: replaying {} choices from {}",
                    choices.kernels.len(),
                    path.display()
                ));
            }
        }
        match recorded {
            Some(choices) => {
                let path = self.work_dir.join(KERNELS);
                kernels::select(choices.selection);
                kernels::replay(&choices).map_err(|e| {
                    HarnessError::Resume(format!(
                        "{}: {e}; resume on the CPU the run started on, or delete the file to \
                         choose anew (the run then ends a few bits away from an uninterrupted one)",
                        path.display()
                    ))
                })?;
                self.say(format!(
                    "kernels: reusing the {} choices recorded in {}",
                    choices.kernels.len(),
                    path.display()
                ));
            }
            None if self.start.epoch() > 0 => self.say(
                "kernels: the run recorded no choices; they are measured anew (the run may end \
                 a few bits away from an uninterrupted one)",
            ),
            None => {}
        }
        Ok(())
    }

    /// One log line: which kernels this process chose, and where they are recorded (nothing on
    /// a backend without native kernels, where there was no choice).
    pub(super) fn report_kernels(&self) {
        let choices = kernels::choices();
        if choices.kernels.is_empty() {
            return;
        }
        self.say(format!(
            "kernels ({}): {} (recorded in {})",
            choices.selection.label(),
            choices.summary(),
            self.run_dir.join(KERNELS).display()
        ));
    }
}
