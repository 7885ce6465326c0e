//! The layers the networks are built from, on the [operations](crate::ops) below them.

pub mod adaptive_softmax;
pub mod conv;
pub mod incremental;
pub mod lstm;
pub mod transformer_layers;
