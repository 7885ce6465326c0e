//! A Transformer encoder-decoder for translation (Vaswani et al., 2017) on the encoder and
//! decoder stacks of [`crate::layers::transformer_layers`] (Burn's layers and records, our forward
//! pass): scaled token embeddings, sinusoidal positions, optional shared embeddings, pre- or
//! post-norm, GELU or ReLU, label-smoothed cross-entropy; [`TransformerArchitecture::Fairseq`]
//! gives it the architecture of fairseq's `transformer_iwslt_de_en`, which the paper trains.

use crate::batch::TranslationBatch;
use burn::config::Config;
use burn::module::Module;
use burn::nn::attention::generate_autoregressive_mask;
#[cfg(test)]
use burn::nn::transformer::{
    TransformerDecoder, TransformerDecoderAutoregressiveCache, TransformerDecoderInput,
};
use burn::nn::transformer::{TransformerDecoderConfig, TransformerEncoderConfig};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm, Linear,
    LinearConfig, PositionalEncoding, PositionalEncodingConfig,
};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Distribution, Int, Tensor, TensorData};
use burn::train::{TrainOutput, TrainStep, ValidStep};

use crate::layers::incremental::IncrementalDecoder;
pub use crate::layers::transformer_layers::FeedForwardActivation;
use crate::layers::transformer_layers::{Decoder, Encoder, SubLayers};
use crate::ops::dropout::dropout;
use crate::ops::layer_norm::{layer_norm, layer_norm_config};
use crate::ops::loss::label_smoothed_cross_entropy;
use crate::ops::matmul::{linear, matmul};
use crate::ops::reshape::reshape;
use crate::state_dict::{StateDict, load_layer_norm, load_linear, load_param, trainable_as};
use crate::training::output::TranslationOutput;

/// How a [`TransformerNmt`]'s weights are first drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TransformerInit {
    /// Burn's layers' initialisation: every projection weight and bias `U(±1/√fan_in)` (Burn's
    /// `KaimingUniform` with gain 1/√3); embeddings `N(0, 1/d)`; layer norms 1 and 0.
    #[default]
    Burn,
    /// fairseq's, as its `transformer_iwslt_de_en` (2019) draws it: query, key and value
    /// projections `U(±√(6/4d))` (Xavier uniform over the stacked `[3d, d]` matrix), output and
    /// feed-forward projections Xavier uniform, every projection bias 0; embeddings `N(0, 1/d)`
    /// with the padding row 0; an unshared output projection `N(0, 1/d)`; layer norms 1 and 0.
    Fairseq,
}

/// A family of Transformers, as one choice of [`TransformerNmtConfig`]'s activation, inner
/// dropouts, embeddings, sinusoids and initialisation
/// ([`with_architecture`](TransformerNmtConfig::with_architecture)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransformerArchitecture {
    /// Burn's layers (the configuration's defaults): GELU, `dropout` on the attention scores and
    /// the activations too, one embedding matrix for source, target and output, Burn's
    /// sinusoids and initialisation.
    Burn,
    /// fairseq's `transformer` models (`transformer_iwslt_de_en`, which the paper trains): ReLU,
    /// no dropout on the attention scores or the activations, separate source, target and output
    /// embeddings, fairseq's sinusoids and initialisation.
    Fairseq,
}

/// Which sinusoids encode the positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Sinusoids {
    /// Burn's `PositionalEncoding` (Vaswani et al.'s layout): position `p` from 0, features
    /// `2i` and `2i + 1` the sine and cosine of `p · 10000^(−2i/d)`.
    #[default]
    Burn,
    /// fairseq's `SinusoidalPositionalEmbedding`: position `p` counted from `padding_idx + 1`,
    /// the `d/2` sines of `p · 10000^(−i/(d/2 − 1))` followed by their cosines.
    Fairseq,
}

/// Configuration of a [`TransformerNmt`].
#[derive(Config, Debug)]
pub struct TransformerNmtConfig {
    /// Source vocabulary size.
    pub source_vocab_size: usize,
    /// Target vocabulary size.
    pub target_vocab_size: usize,
    /// Padding token id (both sides).
    pub pad_id: usize,
    /// Model width.
    #[config(default = 512)]
    pub d_model: usize,
    /// Feed-forward width.
    #[config(default = 1024)]
    pub d_ff: usize,
    /// Attention heads.
    #[config(default = 4)]
    pub n_heads: usize,
    /// Encoder layers.
    #[config(default = 6)]
    pub encoder_layers: usize,
    /// Decoder layers.
    #[config(default = 6)]
    pub decoder_layers: usize,
    /// Dropout of the embeddings and of each residual branch; also of the attention scores and
    /// the feed-forward activations unless `attention_dropout` / `activation_dropout` say.
    #[config(default = 0.3)]
    pub dropout: f64,
    /// Dropout of the attention scores [default: `dropout`].
    #[config(default = "None")]
    pub attention_dropout: Option<f64>,
    /// Dropout of the feed-forward layers' activations [default: `dropout`].
    #[config(default = "None")]
    pub activation_dropout: Option<f64>,
    /// The feed-forward layers' activation.
    #[config(default = "FeedForwardActivation::Gelu")]
    pub activation: FeedForwardActivation,
    /// How positions are encoded.
    #[config(default = "Sinusoids::Burn")]
    pub sinusoids: Sinusoids,
    /// Pre-norm (`true`: LayerNorm before each sub-layer, plus a final LayerNorm) or post-norm.
    #[config(default = false)]
    pub norm_first: bool,
    /// One embedding matrix for source, target and output (needs a joint vocabulary).
    #[config(default = true)]
    pub share_embeddings: bool,
    /// Label smoothing ε of the training loss.
    #[config(default = 0.1)]
    pub label_smoothing: f64,
    /// Longest sequence the positional encoding covers.
    #[config(default = 1024)]
    pub max_positions: usize,
    /// How the weights are first drawn.
    #[config(default = "TransformerInit::Burn")]
    pub initialisation: TransformerInit,
}

impl TransformerNmtConfig {
    /// The IWSLT'14 De-En model of the paper, fairseq's `transformer_iwslt_de_en` (2019) as the
    /// paper's recipe trains it (RAdam repository, `nmt/recipes.md`): 512-d, 6 + 6 post-norm
    /// layers, 4 heads, feed-forward 1024, dropout 0.3, label smoothing 0.1, and fairseq's
    /// architecture ([`TransformerArchitecture::Fairseq`]).
    pub fn iwslt_de_en(joint_vocab_size: usize, pad_id: usize) -> Self {
        Self::new(joint_vocab_size, joint_vocab_size, pad_id)
            .with_architecture(TransformerArchitecture::Fairseq)
    }

    /// This configuration with `architecture`'s activation, inner dropouts, embeddings,
    /// sinusoids and initialisation; sizes, `dropout`, `norm_first` and the loss unchanged.
    pub fn with_architecture(self, architecture: TransformerArchitecture) -> Self {
        match architecture {
            TransformerArchitecture::Burn => self
                .with_activation(FeedForwardActivation::Gelu)
                .with_attention_dropout(None)
                .with_activation_dropout(None)
                .with_share_embeddings(true)
                .with_sinusoids(Sinusoids::Burn)
                .with_initialisation(TransformerInit::Burn),
            TransformerArchitecture::Fairseq => self
                .with_activation(FeedForwardActivation::Relu)
                .with_attention_dropout(Some(0.0))
                .with_activation_dropout(Some(0.0))
                .with_share_embeddings(false)
                .with_sinusoids(Sinusoids::Fairseq)
                .with_initialisation(TransformerInit::Fairseq),
        }
    }

    /// The activation and inner dropouts of the layers.
    fn sub_layers(&self) -> SubLayers {
        SubLayers {
            activation: self.activation,
            attention_dropout: self.attention_dropout.unwrap_or(self.dropout),
            activation_dropout: self.activation_dropout.unwrap_or(self.dropout),
        }
    }

    /// A model for CPU runs: 128-d, 2 + 2 layers, 4 heads, feed-forward 256, dropout 0.1,
    /// pre-norm.
    pub fn tiny(joint_vocab_size: usize, pad_id: usize) -> Self {
        Self::new(joint_vocab_size, joint_vocab_size, pad_id)
            .with_d_model(128)
            .with_d_ff(256)
            .with_encoder_layers(2)
            .with_decoder_layers(2)
            .with_dropout(0.1)
            .with_norm_first(true)
    }

    /// Checks the combination of options.
    pub fn validate(&self) -> Result<(), String> {
        if self.share_embeddings && self.source_vocab_size != self.target_vocab_size {
            return Err(format!(
                "shared embeddings need one joint vocabulary, got {} source and {} target words",
                self.source_vocab_size, self.target_vocab_size
            ));
        }
        if self.d_model == 0 || self.n_heads == 0 || !self.d_model.is_multiple_of(self.n_heads) {
            return Err(format!(
                "d_model ({}) must be a positive multiple of n_heads ({})",
                self.d_model, self.n_heads
            ));
        }
        if self.pad_id >= self.source_vocab_size.min(self.target_vocab_size) {
            return Err(format!("pad_id {} is outside the vocabulary", self.pad_id));
        }
        let sub_layers = self.sub_layers();
        let probabilities = [
            ("label_smoothing", self.label_smoothing),
            ("dropout", self.dropout),
            ("attention_dropout", sub_layers.attention_dropout),
            ("activation_dropout", sub_layers.activation_dropout),
        ];
        if let Some((name, value)) = probabilities
            .iter()
            .find(|(_, value)| !(0.0..1.0).contains(value))
        {
            return Err(format!("{name} ({value}) must lie in [0, 1)"));
        }
        if self.sinusoids == Sinusoids::Fairseq && (self.d_model < 4 || self.d_model % 2 == 1) {
            return Err(format!(
                "fairseq's sinusoids need an even d_model of at least 4, got {}",
                self.d_model
            ));
        }
        Ok(())
    }

    /// Builds the model on `device`.
    ///
    /// # Panics
    /// If the configuration is invalid (see [`validate`](Self::validate)).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TransformerNmt<B> {
        self.validate()
            .unwrap_or_else(|error| panic!("invalid TransformerNmtConfig: {error}"));
        // Normal(0, d^-1/2), then scaled by sqrt(d) in the forward pass (fairseq's scheme).
        let embedding = |vocab: usize| {
            EmbeddingConfig::new(vocab, self.d_model)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: (self.d_model as f64).powf(-0.5),
                })
                .init(device)
        };
        let source_embedding = embedding(self.source_vocab_size);
        let (target_embedding, output) = if self.share_embeddings {
            (None, None)
        } else {
            (
                Some(embedding(self.target_vocab_size)),
                Some(
                    LinearConfig::new(self.d_model, self.target_vocab_size)
                        .with_bias(false)
                        .init(device),
                ),
            )
        };
        let final_norm = || {
            self.norm_first
                .then(|| layer_norm_config(self.d_model).init(device))
        };
        let model = TransformerNmt {
            source_embedding,
            target_embedding,
            output,
            positions: self.positions(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            encoder: Encoder::with_sub_layers(
                &TransformerEncoderConfig::new(
                    self.d_model,
                    self.d_ff,
                    self.n_heads,
                    self.encoder_layers,
                )
                .with_dropout(self.dropout)
                .with_norm_first(self.norm_first),
                self.sub_layers(),
                device,
            ),
            decoder: Decoder::with_sub_layers(
                &TransformerDecoderConfig::new(
                    self.d_model,
                    self.d_ff,
                    self.n_heads,
                    self.decoder_layers,
                )
                .with_dropout(self.dropout)
                .with_norm_first(self.norm_first),
                self.sub_layers(),
                device,
            ),
            encoder_norm: final_norm(),
            decoder_norm: final_norm(),
            d_model: self.d_model,
            pad_id: self.pad_id,
            label_smoothing: self.label_smoothing,
            max_positions: self.max_positions,
        };
        match self.initialisation {
            TransformerInit::Burn => model,
            TransformerInit::Fairseq => model.with_fairseq_initialisation(),
        }
    }
}

impl TransformerNmtConfig {
    /// The sinusoids of positions `0..max_positions` as [`Sinusoids`] says.
    fn positions<B: Backend>(&self, device: &B::Device) -> PositionalEncoding<B> {
        let config =
            PositionalEncodingConfig::new(self.d_model).with_max_sequence_size(self.max_positions);
        match self.sinusoids {
            Sinusoids::Burn => config.init(device),
            // Burn's module around fairseq's table, without computing Burn's table first.
            Sinusoids::Fairseq => PositionalEncoding {
                sinusoids: fairseq_sinusoids(self.max_positions, self.d_model, self.pad_id, device),
                max_sequence_size: config.max_sequence_size,
                max_timescale: config.max_timescale,
            },
        }
    }
}

/// fairseq's sinusoids `[1, positions, d]` of our positions `0..positions` (fairseq's
/// `padding_idx + 1` onwards): `[sin(p·ω_i) | cos(p·ω_i)]`, `ω_i = 10000^(−i/(d/2 − 1))`,
/// `i < d/2` (`SinusoidalPositionalEmbedding.get_embedding`), computed in f64.
fn fairseq_sinusoids<B: Backend>(
    positions: usize,
    d: usize,
    pad_id: usize,
    device: &B::Device,
) -> Tensor<B, 3> {
    let half = d / 2;
    let step = 10_000f64.ln() / (half - 1) as f64;
    let mut table = Vec::with_capacity(positions * d);
    for position in 0..positions {
        let p = (position + pad_id + 1) as f64;
        let angles = (0..half).map(|i| p * (-(i as f64) * step).exp());
        table.extend(angles.clone().map(|a| a.sin() as f32));
        table.extend(angles.map(|a| a.cos() as f32));
    }
    Tensor::<B, 2>::from_data(TensorData::new(table, [positions, d]), device).unsqueeze()
}

/// The Transformer translation model.
#[derive(Module, Debug)]
pub struct TransformerNmt<B: Backend> {
    source_embedding: Embedding<B>,
    /// `None` when the embeddings are shared.
    target_embedding: Option<Embedding<B>>,
    /// `None` when the output layer is the (shared) embedding.
    output: Option<Linear<B>>,
    positions: PositionalEncoding<B>,
    dropout: Dropout,
    encoder: Encoder<B>,
    decoder: Decoder<B>,
    encoder_norm: Option<LayerNorm<B>>,
    decoder_norm: Option<LayerNorm<B>>,
    d_model: usize,
    pad_id: usize,
    label_smoothing: f64,
    max_positions: usize,
}

impl<B: Backend> TransformerNmt<B> {
    /// This model redrawn as fairseq initialises it ([`TransformerInit::Fairseq`]): the layers'
    /// projections, the padding row of each embedding set to 0, an unshared output projection
    /// `N(0, 1/d)`.
    fn with_fairseq_initialisation(mut self) -> Self {
        self.encoder = self.encoder.with_fairseq_initialisation();
        self.decoder = self.decoder.with_fairseq_initialisation();
        let pad = self.pad_id;
        let zero_padding_row = |w: Tensor<B, 2>| {
            let [_, d] = w.dims();
            let zeros = Tensor::zeros([1, d], &w.device());
            // A new leaf from the values (`detach` would keep a tracked tensor tracked).
            let fresh = Tensor::from_data(w.to_data(), &w.device())
                .slice_assign([pad..pad + 1, 0..d], zeros);
            trainable_as(&w, fresh)
        };
        self.source_embedding.weight = self.source_embedding.weight.map(zero_padding_row);
        if let Some(mut target) = self.target_embedding.take() {
            target.weight = target.weight.map(zero_padding_row);
            self.target_embedding = Some(target);
        }
        if let Some(mut output) = self.output.take() {
            let std = (self.d_model as f64).powf(-0.5);
            output.weight = output.weight.map(|w| {
                let drawn = Tensor::random(w.dims(), Distribution::Normal(0.0, std), &w.device());
                trainable_as(&w, drawn)
            });
            self.output = Some(output);
        }
        self
    }

    /// The padding id.
    pub fn pad_id(&self) -> usize {
        self.pad_id
    }

    /// The longest sequence the model can read or write.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    fn embed(&self, embedding: &Embedding<B>, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embed_at(embedding, tokens, 0)
    }

    /// Scaled embeddings of `tokens` `[batch, length]` plus the sinusoids of positions
    /// `start..start + length`.
    fn embed_at(
        &self,
        embedding: &Embedding<B>,
        tokens: Tensor<B, 2, Int>,
        start: usize,
    ) -> Tensor<B, 3> {
        let length = tokens.dims()[1];
        assert!(
            start + length <= self.max_positions,
            "a sequence of {} tokens is longer than the model's {} positions",
            start + length,
            self.max_positions
        );
        let x = embedding
            .forward(tokens)
            .mul_scalar((self.d_model as f64).sqrt());
        let positions =
            self.positions
                .sinusoids
                .clone()
                .slice([0..1, start..start + length, 0..self.d_model]);
        dropout(&self.dropout, x + positions)
    }

    /// The decoder input of target `tokens` `[rows, 1]` at `position`, for incremental decoding.
    pub(crate) fn embed_target_at(
        &self,
        tokens: Tensor<B, 2, Int>,
        position: usize,
    ) -> Tensor<B, 3> {
        self.embed_at(self.target_embedding(), tokens, position)
    }

    /// The trained decoder, for decoding one position at a time.
    pub(crate) fn incremental_decoder(&self) -> IncrementalDecoder<B> {
        IncrementalDecoder::new(&self.decoder)
    }

    /// Log-probabilities of the next token `[rows, vocab]` from the decoder's output at one
    /// position `[rows, 1, d_model]`.
    pub(crate) fn log_probs_of(&self, decoded: Tensor<B, 3>) -> Tensor<B, 2> {
        let rows = decoded.dims()[0];
        let logits = self.project(decoded);
        let vocab = logits.dims()[2];
        burn::tensor::activation::log_softmax(reshape(logits, [rows, vocab]), 1)
    }

    fn target_embedding(&self) -> &Embedding<B> {
        self.target_embedding
            .as_ref()
            .unwrap_or(&self.source_embedding)
    }

    /// Encoder states `[batch, source_len, d_model]`.
    pub fn encode(
        &self,
        source: Tensor<B, 2, Int>,
        source_padding: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 3> {
        let x = self.embed(&self.source_embedding, source);
        let memory = self.encoder.forward(x, source_padding);
        match &self.encoder_norm {
            Some(norm) => layer_norm(norm, memory),
            None => memory,
        }
    }

    fn project(&self, decoded: Tensor<B, 3>) -> Tensor<B, 3> {
        let decoded = match &self.decoder_norm {
            Some(norm) => layer_norm(norm, decoded),
            None => decoded,
        };
        let [batch, time, d] = decoded.dims();
        let rows = reshape(decoded, [batch * time, d]);
        let logits = match &self.output {
            Some(output) => linear(output, rows),
            None => {
                let weight = self.source_embedding.weight.val(); // [vocab, d]
                matmul(rows, weight.transpose())
            }
        };
        let vocab = logits.dims()[1];
        reshape(logits, [batch, time, vocab])
    }

    /// Logits `[batch, target_len, vocab]` for the decoder inputs (teacher forcing).
    pub fn forward(
        &self,
        source: Tensor<B, 2, Int>,
        source_padding: Tensor<B, 2, Bool>,
        target_input: Tensor<B, 2, Int>,
        target_padding: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 3> {
        let memory = self.encode(source, source_padding.clone());
        let [batch, time] = target_input.dims();
        let causal = generate_autoregressive_mask::<B>(batch, time, &memory.device());
        let x = self.embed(self.target_embedding(), target_input);
        let decoded = self
            .decoder
            .forward(x, memory, target_padding, causal, source_padding);
        self.project(decoded)
    }

    /// This model with the weights of a PyTorch `state_dict` (see [`crate::state_dict`]) of the
    /// same architecture: `embedding` (`nn.Embedding`, shared embeddings) or `source_embedding`,
    /// `target_embedding` and `output` (`nn.Linear` without bias); `encoder` and `decoder`
    /// (`nn.TransformerEncoder` / `nn.TransformerDecoder` with layers of this model's activation and
    /// `norm_first`, and final norms `encoder.norm`, `decoder.norm` pre-norm only, as fairseq).
    /// `tools/model_parity_reference.py` defines that model; the sinusoids are not weights.
    /// Strict: a tensor the model has no parameter for is an error, as is a missing or
    /// misshapen one.
    pub fn load_state_dict(self, dict: &StateDict) -> Result<Self, String> {
        dict.load_strictly(|dict| self.load_weights(dict))
    }

    /// [`load_state_dict`](Self::load_state_dict) without the check for unread tensors.
    fn load_weights(mut self, dict: &StateDict) -> Result<Self, String> {
        let embedding_name = if self.target_embedding.is_some() {
            "source_embedding.weight"
        } else {
            "embedding.weight"
        };
        self.source_embedding.weight =
            load_param(dict, embedding_name, self.source_embedding.weight)?;
        if let Some(mut target) = self.target_embedding.take() {
            target.weight = load_param(dict, "target_embedding.weight", target.weight)?;
            self.target_embedding = Some(target);
        }
        if let Some(output) = self.output.take() {
            self.output = Some(load_linear(dict, "output", output)?);
        }
        self.encoder = self.encoder.load_state_dict(dict, "encoder")?;
        self.decoder = self.decoder.load_state_dict(dict, "decoder")?;
        if let Some(norm) = self.encoder_norm.take() {
            self.encoder_norm = Some(load_layer_norm(dict, "encoder.norm", norm)?);
        }
        if let Some(norm) = self.decoder_norm.take() {
            self.decoder_norm = Some(load_layer_norm(dict, "decoder.norm", norm)?);
        }
        Ok(self)
    }

    /// Loss, summed NLL and token accuracy inputs for a batch.
    pub fn forward_translation(&self, batch: TranslationBatch<B>) -> TranslationOutput<B> {
        let logits = self.forward(
            batch.source,
            batch.source_padding,
            batch.target_input,
            batch.target_padding,
        );
        let [rows_batch, time, vocab] = logits.dims();
        let rows = rows_batch * time;
        let logits = reshape(logits, [rows, vocab]);
        let targets = batch.target_output.reshape([rows]);
        let loss = label_smoothed_cross_entropy(
            logits.clone(),
            targets.clone(),
            self.label_smoothing,
            Some(self.pad_id),
        );
        TranslationOutput {
            loss: loss.loss,
            nll_sum: loss.nll_sum,
            tokens: batch.target_tokens,
            logits,
            targets,
        }
    }

    /// Log-probabilities of the next token after each row's prefix `[rows, prefix_len]` through
    /// Burn's autoregressive cache, using and extending `cache` (which must hold exactly the
    /// states of `prefix[.., ..len − 1]`, or be empty): the decoding path before
    /// [`IncrementalDecoder`], kept as the tests' reference.
    #[cfg(test)]
    pub(crate) fn next_token_log_probs(
        &self,
        prefix: Tensor<B, 2, Int>,
        memory: Tensor<B, 3>,
        memory_padding: Tensor<B, 2, Bool>,
        cache: &mut TransformerDecoderAutoregressiveCache<B>,
    ) -> Tensor<B, 2> {
        let [rows, time] = prefix.dims();
        let causal = generate_autoregressive_mask::<B>(rows, time, &memory.device());
        let x = self.embed(self.target_embedding(), prefix);
        let decoded = self.burn_decoder().forward_autoregressive_inference(
            TransformerDecoderInput::new(x, memory)
                .target_mask_attn(causal)
                .memory_mask_pad(memory_padding),
            cache,
        );
        let d = decoded.dims()[2];
        self.log_probs_of(decoded.slice([0..rows, time - 1..time, 0..d]))
    }

    /// An empty cache of Burn's autoregressive decoder (the tests' reference).
    #[cfg(test)]
    pub(crate) fn new_cache(&self) -> TransformerDecoderAutoregressiveCache<B> {
        self.burn_decoder().new_autoregressive_cache()
    }

    /// The decoder as Burn's `TransformerDecoder`, through its record (the tests' reference).
    #[cfg(test)]
    fn burn_decoder(&self) -> TransformerDecoder<B> {
        use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
        let device = self.source_embedding.weight.device();
        let d = &self.decoder;
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
        let bytes = recorder.record(d.clone().into_record(), ()).unwrap();
        TransformerDecoderConfig::new(d.d_model, d.d_ff, d.n_heads, d.n_layers)
            .with_dropout(d.dropout)
            .with_norm_first(d.norm_first)
            .with_quiet_softmax(d.quiet_softmax)
            .init(&device)
            .load_record(recorder.load(bytes, &device).unwrap())
    }
}

impl<B: AutodiffBackend> TrainStep<TranslationBatch<B>, TranslationOutput<B>>
    for TransformerNmt<B>
{
    fn step(&self, batch: TranslationBatch<B>) -> TrainOutput<TranslationOutput<B>> {
        let output = self.forward_translation(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> ValidStep<TranslationBatch<B>, TranslationOutput<B>> for TransformerNmt<B> {
    fn step(&self, batch: TranslationBatch<B>) -> TranslationOutput<B> {
        self.forward_translation(batch)
    }
}

/// Token data and a small model for the tests of the Transformer and its decoding.
#[cfg(test)]
pub(crate) mod test_data {
    use burn::tensor::backend::Backend;
    use burn::tensor::{Bool, Int, Tensor, TensorData};

    use super::{TransformerNmt, TransformerNmtConfig};

    /// Padding token of the translation tests.
    pub const PAD: usize = 0;

    /// Token ids `[rows, width]` on the default device.
    pub fn ids<B: Backend>(rows: Vec<Vec<i64>>) -> Tensor<B, 2, Int> {
        let shape = [rows.len(), rows[0].len()];
        Tensor::from_data(TensorData::new(rows.concat(), shape), &Default::default())
    }

    /// Where `tokens` hold [`PAD`].
    pub fn padding<B: Backend>(tokens: &Tensor<B, 2, Int>) -> Tensor<B, 2, Bool> {
        tokens.clone().equal_elem(PAD as i64)
    }

    /// A pre-norm 2 + 2-layer Transformer of width 32 without dropout.
    pub fn tiny_model<B: Backend>(vocab: usize) -> TransformerNmt<B> {
        TransformerNmtConfig::tiny(vocab, PAD)
            .with_d_model(32)
            .with_d_ff(64)
            .with_dropout(0.0)
            .init(&Default::default())
    }
}

#[cfg(test)]
mod tests {
    use super::test_data::{PAD, ids, padding, tiny_model};
    use super::*;
    use crate::test_support::{TestAutodiffBackend, TestBackend, assert_tensors_close, overfit};
    use crate::training::parameters::trainable_parameters;
    use burn::tensor::activation::log_softmax;

    #[test]
    fn parameter_count_of_the_iwslt_model() {
        let vocab = 10_000;
        let model: TransformerNmt<TestAutodiffBackend> =
            TransformerNmtConfig::iwslt_de_en(vocab, PAD).init(&Default::default());
        let d = 512;
        let attention = 4 * (d * d + d);
        let feed_forward = d * 1024 + 1024 + 1024 * d + d;
        let layer_norm = 2 * d;
        let encoder_layer = attention + feed_forward + 2 * layer_norm;
        let decoder_layer = 2 * attention + feed_forward + 3 * layer_norm;
        // Source and target embeddings and the output projection, three matrices: fairseq's
        // transformer_iwslt_de_en shares none unless told (the paper's recipe does not).
        let expected = 3 * vocab * d + 6 * encoder_layer + 6 * decoder_layer;
        assert_eq!(trainable_parameters(&model), expected);
        let shared = TransformerNmtConfig::iwslt_de_en(vocab, PAD)
            .with_share_embeddings(true)
            .init::<TestAutodiffBackend>(&Default::default());
        assert_eq!(trainable_parameters(&shared), expected - 2 * vocab * d);
    }

    #[test]
    fn shapes_and_invalid_configs() {
        let model = tiny_model::<TestBackend>(20);
        let source = ids::<TestBackend>(vec![vec![5, 6, 7, 2], vec![8, 9, 2, 0]]);
        let target = ids::<TestBackend>(vec![vec![1, 5, 6], vec![1, 7, 0]]);
        let logits = model.forward(
            source.clone(),
            padding(&source),
            target.clone(),
            padding(&target),
        );
        assert_eq!(logits.dims(), [2, 3, 20]);
        let error = TransformerNmtConfig::new(10, 12, PAD)
            .validate()
            .unwrap_err();
        assert!(error.contains("joint vocabulary"), "{error}");
        let error = TransformerNmtConfig::new(10, 10, PAD)
            .with_d_model(30)
            .validate()
            .unwrap_err();
        assert!(error.contains("multiple of n_heads"), "{error}");
        let error = TransformerNmtConfig::new(10, 10, PAD)
            .with_d_model(2)
            .with_n_heads(1)
            .with_architecture(TransformerArchitecture::Fairseq)
            .validate()
            .unwrap_err();
        assert!(error.contains("even d_model of at least 4"), "{error}");
        let error = TransformerNmtConfig::new(10, 10, PAD)
            .with_attention_dropout(Some(1.0))
            .validate()
            .unwrap_err();
        assert_eq!(error, "attention_dropout (1) must lie in [0, 1)");
    }

    #[test]
    fn a_future_target_token_does_not_change_earlier_outputs() {
        for (norm_first, architecture) in [
            (false, TransformerArchitecture::Burn),
            (true, TransformerArchitecture::Burn),
            (false, TransformerArchitecture::Fairseq),
        ] {
            let model: TransformerNmt<TestBackend> = TransformerNmtConfig::tiny(20, PAD)
                .with_d_model(32)
                .with_d_ff(64)
                .with_dropout(0.0)
                .with_norm_first(norm_first)
                .with_architecture(architecture)
                .init(&Default::default());
            let source = ids::<TestBackend>(vec![vec![5, 6, 7, 2]]);
            let a = ids::<TestBackend>(vec![vec![1, 5, 6, 7]]);
            let b = ids::<TestBackend>(vec![vec![1, 5, 6, 12]]);
            let logits_a = model.forward(source.clone(), padding(&source), a.clone(), padding(&a));
            let logits_b = model.forward(source.clone(), padding(&source), b.clone(), padding(&b));
            assert_tensors_close(
                logits_a.clone().slice([0..1, 0..3, 0..20]),
                logits_b.clone().slice([0..1, 0..3, 0..20]),
                1e-6,
            );
            let last_a: Vec<f32> = logits_a
                .slice([0..1, 3..4, 0..20])
                .into_data()
                .to_vec()
                .unwrap();
            let last_b: Vec<f32> = logits_b
                .slice([0..1, 3..4, 0..20])
                .into_data()
                .to_vec()
                .unwrap();
            assert_ne!(last_a, last_b);
        }
    }

    #[test]
    fn cached_decoding_matches_the_full_forward_pass() {
        let model = tiny_model::<TestBackend>(20);
        let source = ids::<TestBackend>(vec![vec![5, 6, 7, 2], vec![8, 9, 2, 0]]);
        let prefix = vec![vec![1i64, 5, 6, 7, 3], vec![1, 8, 9, 4, 4]];
        let target = ids::<TestBackend>(prefix.clone());
        let full = log_softmax(
            model.forward(
                source.clone(),
                padding(&source),
                target.clone(),
                target.clone().equal_elem(-1),
            ),
            2,
        );
        let memory = model.encode(source.clone(), padding(&source));
        // Incrementally, one position at a time.
        let mut cache = model.new_cache();
        for t in 1..=5 {
            let rows: Vec<Vec<i64>> = prefix.iter().map(|p| p[..t].to_vec()).collect();
            let step =
                model.next_token_log_probs(ids(rows), memory.clone(), padding(&source), &mut cache);
            let expected = full.clone().slice([0..2, t - 1..t, 0..20]).reshape([2, 20]);
            assert_tensors_close(step, expected, 1e-5);
        }
        // From an empty cache with the whole prefix at once (the beam-search rebuild).
        let mut fresh = model.new_cache();
        let step = model.next_token_log_probs(target, memory, padding(&source), &mut fresh);
        assert_tensors_close(step, full.slice([0..2, 4..5, 0..20]).reshape([2, 20]), 1e-5);
    }

    #[test]
    fn overfits_one_batch() {
        // Without label smoothing, whose floor would hide how far the loss falls.
        let model: TransformerNmt<TestAutodiffBackend> = TransformerNmtConfig::tiny(16, PAD)
            .with_d_model(32)
            .with_d_ff(64)
            .with_dropout(0.0)
            .with_label_smoothing(0.0)
            .init(&Default::default());
        let source = ids::<TestAutodiffBackend>(vec![vec![5, 6, 7, 8, 2], vec![9, 10, 11, 2, 0]]);
        let target_input =
            ids::<TestAutodiffBackend>(vec![vec![1, 8, 7, 6, 5], vec![1, 11, 10, 9, 0]]);
        let target_output =
            ids::<TestAutodiffBackend>(vec![vec![8, 7, 6, 5, 2], vec![11, 10, 9, 2, 0]]);
        let batch = TranslationBatch {
            source_padding: padding(&source),
            source,
            target_padding: padding(&target_input),
            target_input,
            target_output,
            target_tokens: 9,
        };
        let (first, last) = overfit(model, 150, 5e-3, |model| {
            model.forward_translation(batch.clone()).loss
        });
        assert!(last < 0.1 * first, "loss went from {first} to {last}");
        println!("Transformer overfit: loss {first} -> {last}");
    }
}
