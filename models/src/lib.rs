//! # radam-models
//!
//! The models of the RAdam paper's experiments, generic over `B: Backend` so the same code trains
//! on ndarray and on wgpu, each with a Burn `Config`, a forward pass and the `TrainStep` /
//! `ValidStep` that `LearnerBuilder` needs.

#![warn(missing_docs)]

pub mod adaptive_softmax;
mod batch_norm;
pub mod carried_state;
pub mod conv;
pub mod decoding;
#[cfg(test)]
mod decoding_reference;
mod dropout;
mod gelu;
pub mod im2col;
pub mod incremental;
pub mod loss;
pub mod lstm;
pub mod lstm_lm;
mod matmul;
pub mod metrics;
pub mod mlp;
#[cfg(feature = "ndarray-kernels")]
mod ndarray_kernels;
pub mod output;
pub mod parameters;
pub mod resnet;
pub mod transformer;
pub mod transformer_layers;

#[cfg(test)]
mod test_support;
