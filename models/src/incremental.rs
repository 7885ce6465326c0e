//! Incremental decoding for inference: the decoder reads one new token per row a step and
//! attends over the keys and values it cached for the earlier positions, which beam search
//! reorders by parent row (a gather) instead of recomputing the prefix.
//!
//! The layers are the trained ones of Burn's [`TransformerDecoder`], loaded from its record; a
//! step computes what [`TransformerDecoder::forward`] computes at the newest position under the
//! causal mask (same sub-layer order, same masking value, same softmax), so decoding a prefix
//! step by step gives the teacher-forced outputs.

use burn::module::Module;
use burn::nn::attention::{MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::transformer::{
    PositionWiseFeedForward, PositionWiseFeedForwardConfig, TransformerDecoder,
};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::{quiet_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

/// One decoder layer's trained modules.
#[derive(Debug)]
struct Layer<B: Backend> {
    self_attn: MultiHeadAttention<B>,
    cross_attn: MultiHeadAttention<B>,
    pwff: PositionWiseFeedForward<B>,
    /// Before the cross-attention (pre-norm) or after it (post-norm).
    norm_1: LayerNorm<B>,
    /// Around the feed-forward layer.
    norm_2: LayerNorm<B>,
    /// Before the self-attention (pre-norm) or at the end of the layer (post-norm).
    norm_3: LayerNorm<B>,
}

/// A Transformer decoder that decodes one position at a time over a reorderable cache.
#[derive(Debug)]
pub struct IncrementalDecoder<B: Backend> {
    layers: Vec<Layer<B>>,
    norm_first: bool,
    quiet_softmax: bool,
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

/// The heads of `linear(x)`: `[rows, length, d_model]` → `[rows, heads, length, d_k]`.
fn heads<B: Backend>(
    attention: &MultiHeadAttention<B>,
    linear: &Linear<B>,
    x: Tensor<B, 3>,
) -> Tensor<B, 4> {
    let [rows, length, _] = x.dims();
    linear
        .forward(x)
        .reshape([rows, length, attention.n_heads, attention.d_k])
        .swap_dims(1, 2)
}

impl<B: Backend> IncrementalDecoder<B> {
    /// The layers of `decoder`, for inference on `device`.
    pub fn new(decoder: &TransformerDecoder<B>, device: &B::Device) -> Self {
        // The modules are only shells for the trained weights loaded next: zeros, not a random
        // initialisation, on every call (one per batch of sentences translated).
        let attention = || {
            MultiHeadAttentionConfig::new(decoder.d_model, decoder.n_heads)
                .with_quiet_softmax(decoder.quiet_softmax)
                .with_dropout(0.0)
                .with_initializer(Initializer::Zeros)
                .init(device)
        };
        let norm = || LayerNormConfig::new(decoder.d_model).init(device);
        let layers = decoder
            .clone()
            .into_record()
            .layers
            .into_iter()
            .map(|layer| Layer {
                self_attn: attention().load_record(layer.self_attn),
                cross_attn: attention().load_record(layer.cross_attn),
                pwff: PositionWiseFeedForwardConfig::new(decoder.d_model, decoder.d_ff)
                    .with_dropout(0.0)
                    .with_initializer(Initializer::Zeros)
                    .init(device)
                    .load_record(layer.pwff),
                norm_1: norm().load_record(layer.norm_1),
                norm_2: norm().load_record(layer.norm_2),
                norm_3: norm().load_record(layer.norm_3),
            })
            .collect();
        Self {
            layers,
            norm_first: decoder.norm_first,
            quiet_softmax: decoder.quiet_softmax,
        }
    }

    /// An empty state for decoding against the encoder output `memory` `[rows, source_length,
    /// d_model]` with its `padding` `[rows, source_length]`: the cross-attention keys and values
    /// of every layer, computed once.
    pub fn start(&self, memory: Tensor<B, 3>, padding: Tensor<B, 2, Bool>) -> DecoderState<B> {
        let [rows, source_length] = padding.dims();
        DecoderState {
            past: vec![None; self.layers.len()],
            memory: self
                .layers
                .iter()
                .map(|layer| {
                    let attention = &layer.cross_attn;
                    (
                        heads(attention, &attention.key, memory.clone()),
                        heads(attention, &attention.value, memory.clone()),
                    )
                })
                .collect(),
            memory_padding: padding.reshape([rows, 1, 1, source_length]),
        }
    }

    /// Attention of the queries `query` `[rows, heads, 1, d_k]` over `keys` and `values`, padded
    /// keys masked out, through the output projection: `[rows, 1, d_model]`.
    fn attend(
        &self,
        attention: &MultiHeadAttention<B>,
        query: Tensor<B, 4>,
        (keys, values): (Tensor<B, 4>, Tensor<B, 4>),
        padding: Option<Tensor<B, 4, Bool>>,
    ) -> Tensor<B, 3> {
        let [rows, _, length, _] = query.dims();
        let mut scores = query
            .matmul(keys.transpose())
            .div_scalar((attention.d_k as f32).sqrt());
        if let Some(padding) = padding {
            scores = scores.mask_fill(padding, attention.min_float);
        }
        let weights = if self.quiet_softmax {
            quiet_softmax(scores, 3)
        } else {
            softmax(scores, 3)
        };
        let context =
            weights
                .matmul(values)
                .swap_dims(1, 2)
                .reshape([rows, length, attention.d_model]);
        attention.output.forward(context)
    }

    /// Reads the embedded newest token of every row, `x` `[rows, 1, d_model]`, and returns the
    /// decoder's output there `[rows, 1, d_model]`, appending the position to `state`.
    pub fn step(&self, x: Tensor<B, 3>, state: &mut DecoderState<B>) -> Tensor<B, 3> {
        let mut x = x;
        for ((layer, past), memory) in self.layers.iter().zip(&mut state.past).zip(&state.memory) {
            // Self-attention over every position so far (the causal mask hides nothing from
            // the newest one).
            let input = if self.norm_first {
                layer.norm_3.forward(x.clone())
            } else {
                x.clone()
            };
            let attention = &layer.self_attn;
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
            x = x + self.attend(attention, query, (keys, values), None);

            // Cross-attention over the encoder output.
            let input = if self.norm_first {
                layer.norm_1.forward(x.clone())
            } else {
                x = layer.norm_1.forward(x);
                x.clone()
            };
            let attention = &layer.cross_attn;
            let query = heads(attention, &attention.query, input);
            x = x + self.attend(
                attention,
                query,
                memory.clone(),
                Some(state.memory_padding.clone()),
            );

            // Feed-forward.
            let input = if self.norm_first {
                layer.norm_2.forward(x.clone())
            } else {
                x = layer.norm_2.forward(x);
                x.clone()
            };
            x = x + layer.pwff.forward(input);
            if !self.norm_first {
                x = layer.norm_3.forward(x);
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::log_softmax;

    use crate::test_support::{PAD, TestBackend, assert_tensors_close, ids, padding};
    use crate::transformer::TransformerNmtConfig;

    /// Decodes two rows one position at a time, swaps them (sentence, memory and cached
    /// positions) after the third, and compares every step with the teacher-forced forward pass
    /// of the sentence and prefix the row then holds — pre-norm and post-norm.
    #[test]
    fn step_by_step_decoding_with_a_reorder_matches_the_full_forward_pass() {
        for norm_first in [true, false] {
            let model = TransformerNmtConfig::tiny(20, PAD)
                .with_d_model(32)
                .with_d_ff(64)
                .with_dropout(0.0)
                .with_norm_first(norm_first)
                .init::<TestBackend>(&Default::default());
            let source = ids::<TestBackend>(vec![vec![5, 6, 7, 2], vec![8, 9, 2, 0]]);
            let prefixes = vec![vec![1i64, 5, 6, 7, 3], vec![1, 8, 9, 4, 4]];
            let target = ids::<TestBackend>(prefixes.clone());
            // The tokens of each position, one per sentence.
            let positions: Vec<[i64; 2]> =
                (0..5).map(|t| [prefixes[0][t], prefixes[1][t]]).collect();
            let full = log_softmax(
                model.forward(
                    source.clone(),
                    padding(&source),
                    target.clone(),
                    target.equal_elem(-1),
                ),
                2,
            );
            let decoder = model.incremental_decoder(&Default::default());
            let mut state = decoder.start(
                model.encode(source.clone(), padding(&source)),
                padding(&source),
            );
            // Which sentence (and prefix) each row holds.
            let mut order = [0, 1];
            for (t, tokens) in positions.iter().enumerate() {
                if t == 3 {
                    state.select_rows(ids::<TestBackend>(vec![vec![1, 0]]).reshape([2]), true);
                    order = [1, 0];
                }
                assert_eq!(state.length(), t);
                let newest = ids::<TestBackend>(order.iter().map(|&r| vec![tokens[r]]).collect());
                let decoded = decoder.step(model.embed_target_at(newest, t), &mut state);
                let step = model.log_probs_of(decoded);
                for (row, &held) in order.iter().enumerate() {
                    let expected = full
                        .clone()
                        .slice([held..held + 1, t..t + 1, 0..20])
                        .reshape([1, 20]);
                    let got = step.clone().slice([row..row + 1, 0..20]);
                    assert_tensors_close(got, expected, 1e-5);
                }
            }
        }
    }
}
