//! Incremental decoding for inference: the decoder reads one new token per row a step and
//! attends over the keys and values it cached for the earlier positions, which beam search
//! reorders by parent row (a gather) instead of recomputing the prefix.
//!
//! The layers are the trained ones of the model's [`Decoder`], and a step runs each through
//! the same sub-layer code as the teacher-forced forward pass (same order, masking value and
//! softmax), attending over the cache instead of whole sequences, so decoding a prefix step by
//! step gives the teacher-forced outputs.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use crate::layers::transformer_layers::{Decoder, DecoderLayer, attend, heads, padding_mask};

/// A Transformer decoder that decodes one position at a time over a reorderable cache.
#[derive(Debug)]
pub struct IncrementalDecoder<B: Backend> {
    layers: Vec<DecoderLayer<B>>,
}

/// What decoding `rows` hypotheses has cached: per layer, the self-attention keys and values of
/// the positions read so far and the cross-attention keys and values of the encoder output, each
/// `[rows, heads, length, d_k]`, and the encoder's padding `[rows, 1, 1, source_length]`.
#[derive(Debug)]
pub struct DecoderState<B: Backend> {
    past: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    memory: Vec<(Tensor<B, 4>, Tensor<B, 4>)>,
    memory_padding: Tensor<B, 4, Bool>,
}

impl<B: Backend> DecoderState<B> {
    /// Positions read so far.
    pub fn length(&self) -> usize {
        self.past
            .first()
            .and_then(|past| past.as_ref())
            .map_or(0, |(keys, _)| keys.dims()[2])
    }

    /// Keeps the rows `rows` (indices into the current rows, repeats allowed) in that order: the
    /// decoded positions' keys and values always, the encoder's only with `memory` (beam search
    /// reorders hypotheses within a sentence, whose rows share one encoder output, and drops the
    /// rows of finished sentences).
    pub fn select_rows(&mut self, rows: Tensor<B, 1, Int>, memory: bool) {
        for (keys, values) in self.past.iter_mut().flatten() {
            *keys = keys.clone().select(0, rows.clone());
            *values = values.clone().select(0, rows.clone());
        }
        if memory {
            for (keys, values) in &mut self.memory {
                *keys = keys.clone().select(0, rows.clone());
                *values = values.clone().select(0, rows.clone());
            }
            self.memory_padding = self.memory_padding.clone().int().select(0, rows).bool();
        }
    }
}

impl<B: Backend> IncrementalDecoder<B> {
    /// The layers of `decoder`, for inference (without dropout, on any backend).
    pub fn new(decoder: &Decoder<B>) -> Self {
        Self {
            layers: decoder
                .layers
                .iter()
                .map(DecoderLayer::without_dropout)
                .collect(),
        }
    }

    /// An empty state for decoding against the encoder output `memory` `[rows, source_length,
    /// d_model]` with its `padding` `[rows, source_length]`: the cross-attention keys and values
    /// of every layer, computed once.
    pub fn start(&self, memory: Tensor<B, 3>, padding: Tensor<B, 2, Bool>) -> DecoderState<B> {
        DecoderState {
            past: vec![None; self.layers.len()],
            memory: self
                .layers
                .iter()
                .map(|layer| {
                    let attention = layer.cross_attention();
                    (
                        heads(attention, &attention.key, memory.clone()),
                        heads(attention, &attention.value, memory.clone()),
                    )
                })
                .collect(),
            memory_padding: padding_mask(padding),
        }
    }

    /// Reads the embedded newest token of every row, `x` `[rows, 1, d_model]`, and returns the
    /// decoder's output there `[rows, 1, d_model]`, appending the position to `state`.
    pub fn step(&self, x: Tensor<B, 3>, state: &mut DecoderState<B>) -> Tensor<B, 3> {
        let padding = [state.memory_padding.clone()];
        let layers = self.layers.iter().zip(&mut state.past).zip(&state.memory);
        layers.fold(x, |x, ((layer, past), (memory_keys, memory_values))| {
            layer.forward_with(
                x,
                // Self-attention over every position so far (the causal mask hides nothing
                // from the newest one).
                |attention, input| {
                    let query = heads(attention, &attention.query, input.clone());
                    let key = heads(attention, &attention.key, input.clone());
                    let value = heads(attention, &attention.value, input);
                    let (keys, values) = match past.take() {
                        Some((keys, values)) => (
                            Tensor::cat(vec![keys, key], 2),
                            Tensor::cat(vec![values, value], 2),
                        ),
                        None => (key, value),
                    };
                    *past = Some((keys.clone(), values.clone()));
                    attend(attention, query, keys, values, &[])
                },
                // Cross-attention over the encoder output.
                |attention, input| {
                    let query = heads(attention, &attention.query, input);
                    attend(
                        attention,
                        query,
                        memory_keys.clone(),
                        memory_values.clone(),
                        &padding,
                    )
                },
            )
        })
    }
}
