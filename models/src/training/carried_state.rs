//! Recurrent state carried from one batch to the next for truncated back-propagation through
//! time, across Burn's stateless `TrainStep::step(&self, batch)`.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use burn::tensor::backend::Backend;

/// A shared slot per (backend type, device, thread) holding the last batch's final recurrent state,
/// detached from the autodiff graph.
///
/// Clones of a model (`valid()`, `fork`) share the slots, and the key keeps the training model,
/// the validation model and each device apart — and each thread, since Burn's DDP trains one
/// replica per thread, possibly on the same device (the CPU) several times. The state is dropped whenever a batch starts a
/// stream or its batch size differs from the stored state's.
#[derive(Clone, Default)]
pub struct CarriedState {
    slots: Arc<Mutex<HashMap<String, Box<dyn Any + Send>>>>,
}

impl fmt::Debug for CarriedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.slots.lock().map(|slots| slots.len()).unwrap_or(0);
        write!(f, "CarriedState({count} slots)")
    }
}

fn key<B: Backend>(device: &B::Device) -> String {
    format!(
        "{}@{device:?}#{:?}",
        std::any::type_name::<B>(),
        std::thread::current().id()
    )
}

impl CarriedState {
    /// Takes the state stored for backend `B` on `device`, if any, of type `S`.
    pub fn take<B: Backend, S: 'static>(&self, device: &B::Device) -> Option<S> {
        let mut slots = self.slots.lock().expect("carried-state lock poisoned");
        let stored = slots.remove(&key::<B>(device))?;
        stored.downcast::<S>().ok().map(|state| *state)
    }

    /// Stores `state` for backend `B` on `device`, replacing the previous one.
    pub fn store<B: Backend, S: Send + 'static>(&self, device: &B::Device, state: S) {
        let mut slots = self.slots.lock().expect("carried-state lock poisoned");
        slots.insert(key::<B>(device), Box::new(state));
    }

    /// Drops every stored state.
    pub fn clear(&self) {
        self.slots
            .lock()
            .expect("carried-state lock poisoned")
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn replicas_on_one_device_keep_their_own_state() {
        let carried = CarriedState::default();
        let device = Default::default();
        carried.store::<NdArray, u32>(&device, 1);
        let other = carried.clone();
        let seen_elsewhere = std::thread::spawn(move || {
            let seen = other.take::<NdArray, u32>(&device);
            other.store::<NdArray, u32>(&device, 2);
            seen
        })
        .join()
        .unwrap();
        assert_eq!(seen_elsewhere, None);
        assert_eq!(carried.take::<NdArray, u32>(&device), Some(1));
        assert_eq!(carried.take::<NdArray, u32>(&device), None);
    }
}
