//! The paper's three experiments as ready-to-run training tasks. Each takes its command-line
//! arguments, picks the backend and runs the shared [harness](crate::harness); the cargo
//! examples are thin wrappers around them, and the tests call them directly.

pub mod cifar;
pub mod lm;
pub mod nmt;

use burn::tensor::backend::AutodiffBackend;

use crate::backend::{NdArrayBackend, WgpuBackend, wgpu_device};
use crate::harness::{BackendKind, HarnessError};

/// A task body that runs on any backend.
pub trait OnBackend {
    /// What the task returns.
    type Output;
    /// Runs on backend `B`.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Self::Output, HarnessError>;
}

/// Runs `task` on the backend the user picked (checking first that wgpu has an adapter).
pub fn on_backend<T: OnBackend>(kind: BackendKind, task: T) -> Result<T::Output, HarnessError> {
    match kind {
        BackendKind::Ndarray => task.run::<NdArrayBackend>(Default::default()),
        BackendKind::Wgpu => {
            let device = wgpu_device().map_err(|e| HarnessError::Invalid(e.to_string()))?;
            task.run::<WgpuBackend>(device)
        }
    }
}
