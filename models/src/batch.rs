//! The batches the models train on. The data pipelines of `radam-datasets` produce them (every
//! source of a task — a real file format or procedural data — the same batch, so a model trains
//! on either); they live here, beside the models that read them, so that the models need nothing
//! of the data side (its file formats, its tokenizer).

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

/// A batch of images for classification.
#[derive(Clone, Debug)]
pub struct ImageBatch<B: Backend> {
    /// Normalised images, `[batch, channels, height, width]`.
    pub images: Tensor<B, 4>,
    /// The class of each image, `[batch]`.
    pub targets: Tensor<B, 1, Int>,
}

/// A batch of a language-model token stream for truncated back-propagation through time.
///
/// Row `r` of consecutive batches continues the same stream: `inputs[r]` of batch `k + 1` starts
/// where `inputs[r]` of batch `k` ended, so a model may carry its recurrent state over.
#[derive(Clone, Debug)]
pub struct LmBatch<B: Backend> {
    /// Token ids, `[batch, seq_len]`.
    pub inputs: Tensor<B, 2, Int>,
    /// The next token after each input position, `[batch, seq_len]`.
    pub targets: Tensor<B, 2, Int>,
    /// `true` on the first batch of a pass over the streams: carried state must be dropped.
    pub starts_stream: bool,
}

/// A batch of sentence pairs for translation, padded to the longest sentence on each side.
#[derive(Clone, Debug)]
pub struct TranslationBatch<B: Backend> {
    /// Source token ids, `[batch, source_len]`.
    pub source: Tensor<B, 2, Int>,
    /// `true` where `source` is padding, `[batch, source_len]`.
    pub source_padding: Tensor<B, 2, Bool>,
    /// Decoder input: beginning-of-sentence then the target tokens, `[batch, target_len]`.
    pub target_input: Tensor<B, 2, Int>,
    /// Decoder output to predict: the target tokens then end-of-sentence, `[batch, target_len]`.
    pub target_output: Tensor<B, 2, Int>,
    /// `true` where `target_input` / `target_output` is padding, `[batch, target_len]`.
    pub target_padding: Tensor<B, 2, Bool>,
    /// Number of non-padding tokens in `target_output` (counted on the host, so metrics need
    /// no device synchronisation).
    pub target_tokens: usize,
}

/// A batch of points: `inputs` is `[batch, 2]`, `targets` is `[batch]`.
#[derive(Clone, Debug)]
pub struct PointBatch<B: Backend> {
    /// The coordinates.
    pub inputs: Tensor<B, 2>,
    /// The class of each point.
    pub targets: Tensor<B, 1, Int>,
}
