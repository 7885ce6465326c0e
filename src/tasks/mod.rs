//! The paper's three experiments as ready-to-run training tasks. Each takes its command-line
//! arguments, picks the backend and runs the shared [harness](crate::harness); the cargo
//! examples are thin wrappers around them, and the tests call them directly.

pub mod cifar;
pub mod lm;
pub mod nmt;

use burn::tensor::backend::AutodiffBackend;

use crate::backend::BackendKind;
use crate::backend::{NdArrayBackend, WgpuBackend, wgpu_devices};
use crate::harness::HarnessError;
use crate::harness::session::placement::Placement;

/// A task body that runs on any backend.
pub trait OnBackend {
    /// What the task returns.
    type Output;
    /// Runs on backend `B`, on `devices` (one replica each; the first is the main device).
    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>)
    -> Result<Self::Output, HarnessError>;
}

/// Runs `task` where `placement` says: the backend the user picked (checking first that wgpu
/// has an adapter), on as many devices as asked for — the CPU repeated with ndarray.
pub fn on_backend<T: OnBackend>(placement: Placement, task: T) -> Result<T::Output, HarnessError> {
    match placement.backend {
        BackendKind::Ndarray => {
            task.run::<NdArrayBackend>(vec![Default::default(); placement.devices])
        }
        BackendKind::Wgpu => {
            let devices = wgpu_devices(placement.devices, placement.first_device)
                .map_err(HarnessError::Invalid)?;
            task.run::<WgpuBackend>(devices)
        }
    }
}
