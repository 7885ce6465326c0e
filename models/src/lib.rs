//! # radam-models
//!
//! The models of the RAdam paper's experiments, generic over `B: Backend` so the same code trains
//! on ndarray and on wgpu, each with a Burn `Config`, a forward pass and the `TrainStep` /
//! `ValidStep` that `LearnerBuilder` needs.
//!
//! | folder | what it holds |
//! | --- | --- |
//! | `models/` | the networks: [`resnet`], [`lstm_lm`], [`transformer`], [`mlp`] |
//! | `layers/` | their building blocks: [`conv`], [`lstm`], [`adaptive_softmax`], [`transformer_layers`] and their [`incremental`] decoder |
//! | `ops/` | the operations the layers compute (matrix product, convolution by im2col, batch norm, layer norm, attention, dropout, GELU, the LSTM recurrence, the [`loss`]), each with Burn's tensor operations on every backend and a native kernel on ndarray (`ops/ndarray/`); `ops/dispatch.rs` is the one place that decides which runs |
//! | `decoding/` | greedy and beam search on the Transformer's [incremental](incremental) decoder |
//! | `training/` | what the trainer needs around a model: step [`output`]s, [`metrics`], [`parameters`] counted as PyTorch does, the LM's [`carried_state`] |
//! | [`batch`] | the batches the models read, which `radam-datasets` produces |
//! | [`state_dict`] | PyTorch weights (a `state_dict` saved as safetensors) for the models |

#![warn(missing_docs)]

pub mod batch;
pub mod decoding;
mod layers;
mod models;
mod ops;
pub mod state_dict;
mod training;

/// How the native CPU kernels are chosen where several can compute an operation — timed on their
/// first call ([`KernelSelection::Measured`](kernels::KernelSelection), the default) or by fixed
/// rules — and the record of the choices, which a run writes down and a resumed run replays.
pub mod kernels {
    pub use crate::ops::autotune::{
        KernelChoices, KernelSelection, TIMED_RUNS, TIMING_BUDGET, choices, select, selection,
    };
    pub use crate::ops::dispatch::{prefer, replay};
}

/// The models' numerical revision: raised whenever a change makes the same flags and seed
/// compute other numbers (a gradient's formula, a running statistic, an initialisation), so
/// that records of earlier runs — the warmup search's ledger — are not reused for new ones.
///
/// - 1: until 2026-12-05.
/// - 2: GELU's exact gradient (it was the derivative of the tanh approximation, as Burn's),
///   batch norm's running variance updated with the unbiased batch variance (it was the biased
///   one), both as PyTorch computes them, the LSTM initialised as `torch.nn.LSTM` (it was
///   Burn's Xavier normal law), the paper-size Transformer initialised as fairseq's (it was
///   Burn's) and the LM's BPTT rows cut as the paper's LM code cuts them (issue #41).
pub const NUMERICS_REVISION: u32 = 2;

pub use layers::{adaptive_softmax, conv, incremental, lstm, transformer_layers};
pub use models::{lstm_lm, mlp, resnet, transformer};
pub use ops::{im2col, loss};
pub use training::{carried_state, metrics, output, parameters};

#[cfg(test)]
mod test_support;
