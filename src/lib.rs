//! # radam-train
//!
//! The facade of the radam-burn workspace: the [RAdam optimizer](optim), the [models] and the
//! [datasets] of the paper's experiments, and the pieces every training program shares —
//! [backend] selection (`ndarray` or `wgpu`, picked at run time) and metric [renderer]s that
//! suit log files as well as terminals.
//!
//! Everything model- and optimizer-side is generic over `B: Backend`; only this crate names the
//! concrete backends.
#![recursion_limit = "256"]
#![warn(missing_docs)]

pub use radam_burn as optim;
pub use radam_datasets as datasets;
pub use radam_models as models;

pub mod backend;
pub mod renderer;
