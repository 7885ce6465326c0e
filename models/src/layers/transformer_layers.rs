//! The Transformer's encoder and decoder stacks: Burn's sub-layers ([`MultiHeadAttention`],
//! [`PositionWiseFeedForward`], [`LayerNorm`]) in the arrangement and record layout of Burn's
//! [`TransformerEncoder`](burn::nn::transformer::TransformerEncoder) and
//! [`TransformerDecoder`](burn::nn::transformer::TransformerDecoder) — a checkpoint of either
//! loads into these — with a forward pass of our own that computes what Burn's does, but draws
//! its dropout masks, computes its GELU (or ReLU), attention and layer norms and runs its projections as
//! 2-D products natively on ndarray (the crate's `dropout`, `gelu`, `attention`, `layer_norm`
//! and `matmul` modules). The decoder layer's sub-layers are shared with the incremental decoder
//! ([`crate::layers::incremental`]).

use burn::module::{Ignored, Module};
use burn::nn::attention::{MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::transformer::{
    PositionWiseFeedForward, PositionWiseFeedForwardConfig, TransformerDecoderConfig,
    TransformerEncoderConfig,
};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Distribution, Tensor};

use crate::ops::attention::{context, context_of_heads, split_heads};
use crate::ops::dropout::dropout;
use crate::ops::gelu::gelu;
use crate::ops::layer_norm::{layer_norm, layer_norm_config};
use crate::ops::matmul::linear;
use crate::ops::reshape::reshape;
use crate::state_dict::{
    StateDict, load_attention, load_feed_forward, load_layer_norm, trainable_as,
};

/// The activation of the position-wise feed-forward layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FeedForwardActivation {
    /// The exact (erf) GELU: Burn's transformer layers' and PyTorch's `activation="gelu"`.
    #[default]
    Gelu,
    /// ReLU: Vaswani et al.'s and fairseq's `transformer_iwslt_de_en`.
    Relu,
}

/// What a layer stack takes beyond Burn's transformer configurations: the feed-forward layers'
/// activation and the dropout inside the sub-layers (Burn's configurations use their one
/// `dropout` for these too; fairseq has `--attention-dropout` and `--activation-dropout`, both 0
/// by default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubLayers {
    /// The feed-forward layers' activation.
    pub activation: FeedForwardActivation,
    /// Dropout on the attention scores (before the masks and the softmax, as Burn's
    /// `MultiHeadAttention` drops them).
    pub attention_dropout: f64,
    /// Dropout on the feed-forward layers' activations.
    pub activation_dropout: f64,
}

impl SubLayers {
    /// As Burn's layers: GELU, and `dropout` in the attention and after the activation.
    pub fn as_burn(dropout: f64) -> Self {
        Self {
            activation: FeedForwardActivation::Gelu,
            attention_dropout: dropout,
            activation_dropout: dropout,
        }
    }
}

/// A stack of encoder layers (self-attention, feed-forward), as Burn's `TransformerEncoder`.
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// The layers, input first.
    pub layers: Vec<EncoderLayer<B>>,
    /// Model width.
    pub d_model: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Layers.
    pub n_layers: usize,
    /// Dropout probability.
    pub dropout: f64,
    /// Pre-norm (`true`) or post-norm.
    pub norm_first: bool,
    /// Burn's "quiet" softmax in the attention instead of the standard one.
    pub quiet_softmax: bool,
}

/// One encoder layer, with the sub-module names of Burn's `TransformerEncoderLayer`.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    mha: MultiHeadAttention<B>,
    pwff: PositionWiseFeedForward<B>,
    /// After the attention (post-norm) or before the feed-forward layer (pre-norm).
    norm_1: LayerNorm<B>,
    /// After the feed-forward layer (post-norm) or before the attention (pre-norm).
    norm_2: LayerNorm<B>,
    dropout: Dropout,
    norm_first: bool,
    activation: Ignored<FeedForwardActivation>,
}

/// A stack of decoder layers (causal self-attention, attention over the encoder output,
/// feed-forward), as Burn's `TransformerDecoder`.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// The layers, input first.
    pub layers: Vec<DecoderLayer<B>>,
    /// Model width.
    pub d_model: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Layers.
    pub n_layers: usize,
    /// Dropout probability.
    pub dropout: f64,
    /// Pre-norm (`true`) or post-norm.
    pub norm_first: bool,
    /// Burn's "quiet" softmax in the attention instead of the standard one.
    pub quiet_softmax: bool,
}

/// One decoder layer, with the sub-module names of Burn's `TransformerDecoderLayer`.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    cross_attn: MultiHeadAttention<B>,
    self_attn: MultiHeadAttention<B>,
    pwff: PositionWiseFeedForward<B>,
    /// After the self-attention (post-norm) or before the cross-attention (pre-norm).
    norm_1: LayerNorm<B>,
    /// After the cross-attention (post-norm) or before the feed-forward layer (pre-norm).
    norm_2: LayerNorm<B>,
    /// After the feed-forward layer (post-norm) or before the self-attention (pre-norm).
    norm_3: LayerNorm<B>,
    dropout: Dropout,
    norm_first: bool,
    activation: Ignored<FeedForwardActivation>,
}

/// A mask over attention scores `[rows, 1, 1, keys]` from a padding mask `[rows, keys]` (true:
/// padding).
pub(crate) fn padding_mask<B: Backend>(padding: Tensor<B, 2, Bool>) -> Tensor<B, 4, Bool> {
    let [rows, keys] = padding.dims();
    padding.reshape([rows, 1, 1, keys])
}

/// The linear layer `layer` on every position of `x` `[rows, length, d_in]`, as one 2-D product.
fn positionwise<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [rows, length, d_in] = x.dims();
    let y = linear(layer, reshape(x, [rows * length, d_in]));
    let d_out = y.dims()[1];
    reshape(y, [rows, length, d_out])
}

/// The heads of `projection(x)`: `[rows, length, d_model]` → `[rows, heads, length, d_k]`.
pub(crate) fn heads<B: Backend>(
    attention: &MultiHeadAttention<B>,
    projection: &Linear<B>,
    x: Tensor<B, 3>,
) -> Tensor<B, 4> {
    split_heads(positionwise(projection, x), attention.n_heads)
}

/// Scaled dot-product attention of `query` over `keys` and `values` (`[rows, heads, length,
/// d_k]` each), scores masked where any of `masks` (broadcast to `[rows, heads, queries, keys]`)
/// is true, through the output projection: `[rows, queries, d_model]`. As Burn's
/// `MultiHeadAttention`, it drops attention *scores* (before the masks and the softmax).
pub(crate) fn attend<B: Backend>(
    attention: &MultiHeadAttention<B>,
    query: Tensor<B, 4>,
    keys: Tensor<B, 4>,
    values: Tensor<B, 4>,
    masks: &[Tensor<B, 4, Bool>],
) -> Tensor<B, 3> {
    let context = context_of_heads(attention, query, keys, values, masks);
    positionwise(&attention.output, context)
}

/// Attention of the positions of `x` over those of `memory` (`x` itself for self-attention).
fn attention<B: Backend>(
    attention: &MultiHeadAttention<B>,
    x: Tensor<B, 3>,
    memory: Tensor<B, 3>,
    masks: &[Tensor<B, 4, Bool>],
) -> Tensor<B, 3> {
    let query = positionwise(&attention.query, x);
    let keys = positionwise(&attention.key, memory.clone());
    let values = positionwise(&attention.value, memory);
    let context = context(attention, query, keys, values, masks);
    positionwise(&attention.output, context)
}

/// The position-wise feed-forward layer: `W₂·dropout(f(W₁·x + b₁)) + b₂`, `f` the activation.
fn feed_forward<B: Backend>(
    layer: &PositionWiseFeedForward<B>,
    activation: FeedForwardActivation,
    x: Tensor<B, 3>,
) -> Tensor<B, 3> {
    let inner = positionwise(&layer.linear_inner, x);
    let hidden = match activation {
        FeedForwardActivation::Gelu => gelu(inner),
        FeedForwardActivation::Relu => relu(inner),
    };
    positionwise(&layer.linear_outer, dropout(&layer.dropout, hidden))
}

/// One residual sub-layer `f`: `x + dropout(f(before(x)))` pre-norm, `after(x + dropout(f(x)))`
/// post-norm.
fn residual<B: Backend>(
    x: Tensor<B, 3>,
    norm_first: bool,
    (before, after): (&LayerNorm<B>, &LayerNorm<B>),
    drop: &Dropout,
    f: impl FnOnce(Tensor<B, 3>) -> Tensor<B, 3>,
) -> Tensor<B, 3> {
    if norm_first {
        let y = f(layer_norm(before, x.clone()));
        x + dropout(drop, y)
    } else {
        let y = f(x.clone());
        layer_norm(after, x + dropout(drop, y))
    }
}

/// A multi-head attention layer, built with the arguments Burn's transformer layers give theirs.
fn attention_layer<B: Backend>(
    d_model: usize,
    n_heads: usize,
    dropout: f64,
    quiet_softmax: bool,
    initializer: &burn::nn::Initializer,
    device: &B::Device,
) -> MultiHeadAttention<B> {
    MultiHeadAttentionConfig::new(d_model, n_heads)
        .with_initializer(initializer.clone())
        .with_dropout(dropout)
        .with_quiet_softmax(quiet_softmax)
        .init(device)
}

impl<B: Backend> Encoder<B> {
    /// The encoder of `config`, as Burn's `TransformerEncoderConfig::init` builds and initialises
    /// it.
    pub fn new(config: &TransformerEncoderConfig, device: &B::Device) -> Self {
        Self::with_sub_layers(config, SubLayers::as_burn(config.dropout), device)
    }

    /// The encoder of `config` with `sub_layers`' activation and inner dropouts (`config.dropout`
    /// stays the dropout of each residual branch), initialised as Burn's layers are.
    pub fn with_sub_layers(
        config: &TransformerEncoderConfig,
        sub_layers: SubLayers,
        device: &B::Device,
    ) -> Self {
        let layers = (0..config.n_layers)
            .map(|_| EncoderLayer {
                mha: attention_layer(
                    config.d_model,
                    config.n_heads,
                    sub_layers.attention_dropout,
                    config.quiet_softmax,
                    &config.initializer,
                    device,
                ),
                norm_1: layer_norm_config(config.d_model).init(device),
                norm_2: layer_norm_config(config.d_model).init(device),
                dropout: DropoutConfig::new(config.dropout).init(),
                pwff: PositionWiseFeedForwardConfig::new(config.d_model, config.d_ff)
                    .with_initializer(config.initializer.clone())
                    .with_dropout(sub_layers.activation_dropout)
                    .init(device),
                norm_first: config.norm_first,
                activation: Ignored(sub_layers.activation),
            })
            .collect();
        Self {
            layers,
            d_model: config.d_model,
            d_ff: config.d_ff,
            n_heads: config.n_heads,
            n_layers: config.n_layers,
            dropout: config.dropout,
            norm_first: config.norm_first,
            quiet_softmax: config.quiet_softmax,
        }
    }

    /// Encoder states `[batch, length, d_model]` of the embedded source `x` (same shape), padded
    /// positions (`padding` `[batch, length]`, true: padding) hidden from the attention.
    pub fn forward(&self, x: Tensor<B, 3>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 3> {
        let masks = [padding_mask(padding)];
        self.layers.iter().fold(x, |x, layer| {
            let x = residual(
                x,
                layer.norm_first,
                (&layer.norm_2, &layer.norm_1),
                &layer.dropout,
                |x| attention(&layer.mha, x.clone(), x, &masks),
            );
            residual(
                x,
                layer.norm_first,
                (&layer.norm_1, &layer.norm_2),
                &layer.dropout,
                |x| feed_forward(&layer.pwff, *layer.activation, x),
            )
        })
    }
}

impl<B: Backend> Decoder<B> {
    /// The decoder of `config`, as Burn's `TransformerDecoderConfig::init` builds and initialises
    /// it.
    pub fn new(config: &TransformerDecoderConfig, device: &B::Device) -> Self {
        Self::with_sub_layers(config, SubLayers::as_burn(config.dropout), device)
    }

    /// The decoder of `config` with `sub_layers`' activation and inner dropouts (`config.dropout`
    /// stays the dropout of each residual branch), initialised as Burn's layers are.
    pub fn with_sub_layers(
        config: &TransformerDecoderConfig,
        sub_layers: SubLayers,
        device: &B::Device,
    ) -> Self {
        let attention = || {
            attention_layer(
                config.d_model,
                config.n_heads,
                sub_layers.attention_dropout,
                config.quiet_softmax,
                &config.initializer,
                device,
            )
        };
        let layers = (0..config.n_layers)
            .map(|_| DecoderLayer {
                self_attn: attention(),
                cross_attn: attention(),
                norm_1: layer_norm_config(config.d_model).init(device),
                norm_2: layer_norm_config(config.d_model).init(device),
                norm_3: layer_norm_config(config.d_model).init(device),
                dropout: DropoutConfig::new(config.dropout).init(),
                // Burn's decoder gives its feed-forward layers the default initializer.
                pwff: PositionWiseFeedForwardConfig::new(config.d_model, config.d_ff)
                    .with_dropout(sub_layers.activation_dropout)
                    .init(device),
                norm_first: config.norm_first,
                activation: Ignored(sub_layers.activation),
            })
            .collect();
        Self {
            layers,
            d_model: config.d_model,
            d_ff: config.d_ff,
            n_heads: config.n_heads,
            n_layers: config.n_layers,
            dropout: config.dropout,
            norm_first: config.norm_first,
            quiet_softmax: config.quiet_softmax,
        }
    }

    /// Decoder states `[batch, target_length, d_model]` of the embedded target `x` (teacher
    /// forcing) over the encoder output `memory` `[batch, source_length, d_model]`; attention
    /// hides padded targets and sources (`target_padding`, `memory_padding`, true: padding) and,
    /// where `causal` `[batch, target_length, target_length]` is true, later targets.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        memory: Tensor<B, 3>,
        target_padding: Tensor<B, 2, Bool>,
        causal: Tensor<B, 3, Bool>,
        memory_padding: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 3> {
        let [batch, queries, keys] = causal.dims();
        let self_masks = [
            padding_mask(target_padding),
            causal.reshape([batch, 1, queries, keys]),
        ];
        let memory_masks = [padding_mask(memory_padding)];
        self.layers.iter().fold(x, |x, layer| {
            layer.forward_with(
                x,
                |attn, x| attention(attn, x.clone(), x, &self_masks),
                |attn, x| attention(attn, x, memory.clone(), &memory_masks),
            )
        })
    }
}

/// `linear` redrawn as fairseq draws its projections: the weight from `U(−bound, bound)` (Xavier
/// uniform), the bias 0.
fn xavier_linear<B: Backend>(linear: Linear<B>, bound: f64) -> Linear<B> {
    let redraw = |w: Tensor<B, 2>| {
        let drawn = Tensor::random(w.dims(), Distribution::Uniform(-bound, bound), &w.device());
        trainable_as(&w, drawn)
    };
    Linear {
        weight: linear.weight.map(redraw),
        bias: linear
            .bias
            .map(|b| b.map(|b| trainable_as(&b, Tensor::zeros(b.dims(), &b.device())))),
    }
}

/// An attention layer as fairseq's `MultiheadAttention` (2019, `in_proj_weight` `[3d, d]`)
/// initialises it: query, key and value projections Xavier-uniform over the stacked `[3d, d]`
/// matrix, `U(±√(6/4d))`; the output projection Xavier-uniform, `U(±√(6/2d))`; biases 0.
fn fairseq_attention<B: Backend>(mut attention: MultiHeadAttention<B>) -> MultiHeadAttention<B> {
    let d = attention.d_model as f64;
    let stacked = (6.0 / (4.0 * d)).sqrt();
    attention.query = xavier_linear(attention.query, stacked);
    attention.key = xavier_linear(attention.key, stacked);
    attention.value = xavier_linear(attention.value, stacked);
    attention.output = xavier_linear(attention.output, (6.0 / (2.0 * d)).sqrt());
    attention
}

/// A feed-forward layer as fairseq's `Linear` helper initialises `fc1` and `fc2`: Xavier-uniform
/// weights, `U(±√(6/(d + d_ff)))`, biases 0.
fn fairseq_feed_forward<B: Backend>(
    mut layer: PositionWiseFeedForward<B>,
) -> PositionWiseFeedForward<B> {
    let [d, d_ff] = layer.linear_inner.weight.dims();
    let bound = (6.0 / (d + d_ff) as f64).sqrt();
    layer.linear_inner = xavier_linear(layer.linear_inner, bound);
    layer.linear_outer = xavier_linear(layer.linear_outer, bound);
    layer
}

impl<B: Backend> Encoder<B> {
    /// The layers redrawn as fairseq's `transformer_iwslt_de_en` initialises its encoder layers
    /// (attention and feed-forward projections; layer norms stay 1 and 0).
    pub(crate) fn with_fairseq_initialisation(mut self) -> Self {
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .map(|mut layer| {
                layer.mha = fairseq_attention(layer.mha);
                layer.pwff = fairseq_feed_forward(layer.pwff);
                layer
            })
            .collect();
        self
    }
}

impl<B: Backend> Decoder<B> {
    /// The layers redrawn as fairseq's `transformer_iwslt_de_en` initialises its decoder layers.
    pub(crate) fn with_fairseq_initialisation(mut self) -> Self {
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .map(|mut layer| {
                layer.self_attn = fairseq_attention(layer.self_attn);
                layer.cross_attn = fairseq_attention(layer.cross_attn);
                layer.pwff = fairseq_feed_forward(layer.pwff);
                layer
            })
            .collect();
        self
    }
}

impl<B: Backend> Encoder<B> {
    /// The layers with the weights of a PyTorch `nn.TransformerEncoder`'s layers `prefix.layers.{i}`
    /// (`nn.TransformerEncoderLayer`: `self_attn`, `linear1`, `linear2`, `norm1`, `norm2`).
    /// PyTorch names its norms in the order they are applied, Burn by role: `norm1` comes before
    /// the attention pre-norm and after it post-norm, as this layer's `norm_2` and `norm_1` do.
    pub(crate) fn load_state_dict(
        mut self,
        dict: &StateDict,
        prefix: &str,
    ) -> Result<Self, String> {
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .enumerate()
            .map(|(index, mut layer)| {
                let layer_prefix = format!("{prefix}.layers.{index}");
                let name = |part: &str| format!("{layer_prefix}.{part}");
                let [norm_1, norm_2] = if layer.norm_first {
                    ["norm2", "norm1"]
                } else {
                    ["norm1", "norm2"]
                };
                layer.mha = load_attention(dict, &name("self_attn"), layer.mha)?;
                layer.pwff = load_feed_forward(dict, &layer_prefix, layer.pwff)?;
                layer.norm_1 = load_layer_norm(dict, &name(norm_1), layer.norm_1)?;
                layer.norm_2 = load_layer_norm(dict, &name(norm_2), layer.norm_2)?;
                Ok(layer)
            })
            .collect::<Result<_, String>>()?;
        Ok(self)
    }
}

impl<B: Backend> Decoder<B> {
    /// The layers with the weights of a PyTorch `nn.TransformerDecoder`'s layers `prefix.layers.{i}`
    /// (`nn.TransformerDecoderLayer`: `self_attn`, `multihead_attn`, `linear1`, `linear2`,
    /// `norm1`–`norm3`). PyTorch's norms follow the sub-layers (self-attention, cross-attention,
    /// feed-forward); this layer's are named by Burn's roles: post-norm they are the same,
    /// pre-norm `norm1`, `norm2`, `norm3` are `norm_3`, `norm_1`, `norm_2`.
    pub(crate) fn load_state_dict(
        mut self,
        dict: &StateDict,
        prefix: &str,
    ) -> Result<Self, String> {
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .enumerate()
            .map(|(index, mut layer)| {
                let layer_prefix = format!("{prefix}.layers.{index}");
                let name = |part: &str| format!("{layer_prefix}.{part}");
                let [norm_1, norm_2, norm_3] = if layer.norm_first {
                    ["norm2", "norm3", "norm1"]
                } else {
                    ["norm1", "norm2", "norm3"]
                };
                layer.self_attn = load_attention(dict, &name("self_attn"), layer.self_attn)?;
                layer.cross_attn = load_attention(dict, &name("multihead_attn"), layer.cross_attn)?;
                layer.pwff = load_feed_forward(dict, &layer_prefix, layer.pwff)?;
                layer.norm_1 = load_layer_norm(dict, &name(norm_1), layer.norm_1)?;
                layer.norm_2 = load_layer_norm(dict, &name(norm_2), layer.norm_2)?;
                layer.norm_3 = load_layer_norm(dict, &name(norm_3), layer.norm_3)?;
                Ok(layer)
            })
            .collect::<Result<_, String>>()?;
        Ok(self)
    }
}

impl<B: Backend> DecoderLayer<B> {
    /// The layer on `x` `[rows, length, d_model]`, with the self-attention and the
    /// cross-attention given as functions of their layer and (normalised) input: teacher forcing
    /// attends over whole sequences, incremental decoding over its cache.
    pub(crate) fn forward_with(
        &self,
        x: Tensor<B, 3>,
        self_attention: impl FnOnce(&MultiHeadAttention<B>, Tensor<B, 3>) -> Tensor<B, 3>,
        cross_attention: impl FnOnce(&MultiHeadAttention<B>, Tensor<B, 3>) -> Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let norm_first = self.norm_first;
        let x = residual(
            x,
            norm_first,
            (&self.norm_3, &self.norm_1),
            &self.dropout,
            |x| self_attention(&self.self_attn, x),
        );
        let x = residual(
            x,
            norm_first,
            (&self.norm_1, &self.norm_2),
            &self.dropout,
            |x| cross_attention(&self.cross_attn, x),
        );
        residual(
            x,
            norm_first,
            (&self.norm_2, &self.norm_3),
            &self.dropout,
            |x| feed_forward(&self.pwff, *self.activation, x),
        )
    }

    /// A copy of the layer with every dropout probability 0 (for decoding).
    pub(crate) fn without_dropout(&self) -> Self {
        let mut layer = self.clone();
        for dropout in [
            &mut layer.dropout,
            &mut layer.self_attn.dropout,
            &mut layer.cross_attn.dropout,
            &mut layer.pwff.dropout,
        ] {
            dropout.prob = 0.0;
        }
        layer
    }

    /// The cross-attention layer (its keys and values of the encoder output are cached once).
    pub(crate) fn cross_attention(&self) -> &MultiHeadAttention<B> {
        &self.cross_attn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend as Ad, TestBackend, assert_tensors_close};
    use burn::module::{ModuleMapper, ModuleVisitor, Param};
    use burn::nn::attention::generate_autoregressive_mask;
    use burn::nn::transformer::{
        TransformerDecoder, TransformerDecoderInput, TransformerEncoder, TransformerEncoderInput,
    };
    use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
    use burn::tensor::Int;
    use burn::tensor::backend::AutodiffBackend;

    /// Burn's layers in f64: the reference. (Burn's own f32 layers are up to about 1e-4 away from
    /// it in the softmax's and the layer norm's gradients, which with some kernel choices crossed
    /// this file's 1e-4 check; ours are within about 1e-6, `ops/attention.rs`, `ops/layer_norm.rs`.)
    type Reference = burn::backend::Autodiff<burn::backend::NdArray<f64>>;

    /// `x` on the backend `A`, tracking gradients.
    fn on<A: AutodiffBackend>(x: &Tensor<Ad, 3>) -> Tensor<A, 3> {
        let data = x.to_data().convert::<A::FloatElem>();
        Tensor::from_data(data, &Default::default()).require_grad()
    }

    /// A mask on the backend `A`.
    fn mask_on<A: Backend, const D: usize>(mask: &Tensor<Ad, D, Bool>) -> Tensor<A, D, Bool> {
        Tensor::from_data(mask.to_data(), &Default::default())
    }

    /// `x` in f32 on the plain test backend.
    fn f32_of<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<TestBackend, D> {
        Tensor::from_data(x.into_data().convert::<f32>(), &Default::default())
    }

    /// A fixed pseudo-random pattern of `shape` with standard deviation about `scale` (a sine of
    /// the element index): deterministic, where draws from Burn's generator depend on the other
    /// tests running beside in the same process.
    fn pattern<const D: usize>(
        shape: [usize; D],
        scale: f32,
        phase: f32,
    ) -> Tensor<TestBackend, D> {
        let count = shape.iter().product::<usize>() as i64;
        Tensor::<TestBackend, 1, Int>::arange(0..count, &Default::default())
            .float()
            .mul_scalar(0.7371)
            .add_scalar(phase)
            .sin()
            .mul_scalar(scale * std::f32::consts::SQRT_2)
            .reshape(shape)
    }

    /// Adds a fixed noise to every parameter, so that the LayerNorms differ from each other and
    /// from their initial (1, 0) — small enough not to sharpen the attention (which makes
    /// gradients sensitive to the order of float sums).
    struct Perturb(f32);

    impl ModuleMapper<Ad> for Perturb {
        fn map_float<const D: usize>(
            &mut self,
            param: Param<Tensor<Ad, D>>,
        ) -> Param<Tensor<Ad, D>> {
            self.0 += 1.0;
            let phase = self.0;
            param.map(|tensor| {
                let tensor = tensor.inner();
                let noise = pattern(tensor.dims(), 0.05, phase);
                Tensor::from_inner(tensor + noise).require_grad()
            })
        }
    }

    /// `from`'s record saved and loaded into `to` (a checkpoint of one read back as the other).
    fn reload<A: Backend, From: Module<Ad>, To: Module<A>>(from: From, to: To) -> To {
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
        let bytes = recorder.record(from.into_record(), ()).unwrap();
        to.load_record(recorder.load(bytes, &Default::default()).unwrap())
    }

    fn padding(rows: &[usize], length: usize) -> Tensor<Ad, 2, Bool> {
        let values: Vec<bool> = rows
            .iter()
            .flat_map(|&used| (0..length).map(move |t| t >= used))
            .collect();
        Tensor::<Ad, 1, Bool>::from_data(values.as_slice(), &Default::default())
            .reshape([rows.len(), length])
    }

    fn input(shape: [usize; 3], phase: f32) -> Tensor<Ad, 3> {
        Tensor::from_inner(pattern(shape, 1.0, phase)).require_grad()
    }

    /// Collects the gradient of every parameter of a module, in f32.
    struct ParameterGradients<'a, A: AutodiffBackend>(
        &'a A::Gradients,
        Vec<Tensor<TestBackend, 1>>,
    );

    impl<A: AutodiffBackend> ModuleVisitor<A> for ParameterGradients<'_, A> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
            let grad = param
                .val()
                .grad(self.0)
                .expect("every parameter has a gradient");
            self.1.push(f32_of(grad.flatten(0, D - 1)));
        }
    }

    /// The output of `forward`, and the gradients of `inputs` and of every parameter of
    /// `module`, for the sum of the output weighted by a fixed pattern; in f32.
    fn output_and_gradients<A: AutodiffBackend, M: Module<A>>(
        module: &M,
        inputs: &[Tensor<A, 3>],
        forward: impl FnOnce() -> Tensor<A, 3>,
    ) -> Vec<Tensor<TestBackend, 1>> {
        let y = forward();
        let count = y.dims().iter().product::<usize>() as i64;
        let weights = Tensor::<A, 1, Int>::arange(0..count, &y.device())
            .float()
            .sin()
            .reshape(y.dims());
        let grads = (y.clone() * weights).sum().backward();
        let mut out = vec![f32_of(y.inner().flatten(0, 2))];
        out.extend(
            inputs
                .iter()
                .map(|x| f32_of(x.grad(&grads).unwrap().flatten(0, 2))),
        );
        let mut parameters = ParameterGradients::<A>(&grads, Vec::new());
        module.visit(&mut parameters);
        out.extend(parameters.1);
        out
    }

    fn assert_all_close(ours: Vec<Tensor<TestBackend, 1>>, burn: Vec<Tensor<TestBackend, 1>>) {
        assert_eq!(ours.len(), burn.len());
        for (ours, burn) in ours.into_iter().zip(burn) {
            assert_tensors_close(ours, burn, 1e-4);
        }
    }

    /// Ours (`ours`, on `Ad`) against the same layers computed with tensor operations in f64
    /// (`exact`): output and every gradient; and against Burn's layers in f64 (`burn`): the
    /// output only, since Burn's GELU has the tanh approximation's gradient (ours the exact one,
    /// as PyTorch's; see `ops::gelu`).
    fn assert_matches(
        ours: Vec<Tensor<TestBackend, 1>>,
        exact: Vec<Tensor<TestBackend, 1>>,
        burn: Vec<Tensor<TestBackend, 1>>,
    ) {
        assert_tensors_close(ours[0].clone(), burn[0].clone(), 1e-4);
        assert_all_close(ours, exact);
    }

    #[test]
    fn the_encoder_loads_burns_record_and_matches_its_forward_and_the_exact_gradients() {
        // Against Burn's encoder and ours, run in f64 (`Reference`).
        for norm_first in [false, true] {
            let config = TransformerEncoderConfig::new(16, 32, 4, 2)
                .with_dropout(0.0)
                .with_norm_first(norm_first);
            let device = Default::default();
            let burn = config.init::<Ad>(&device).map(&mut Perturb(0.0));
            let ours = reload(burn.clone(), Encoder::new(&config, &device));
            let exact = reload(burn.clone(), Encoder::<Reference>::new(&config, &device));
            let burn = reload(burn, config.init::<Reference>(&device));
            let x = input([3, 5, 16], 0.5);
            let mask = padding(&[5, 3, 1], 5);
            let inputs = std::slice::from_ref(&x);
            let ours =
                output_and_gradients(&ours, inputs, || ours.forward(x.clone(), mask.clone()));
            let (x, mask) = (on::<Reference>(&x), mask_on::<Reference, 2>(&mask));
            let inputs = std::slice::from_ref(&x);
            let exact =
                output_and_gradients(&exact, inputs, || exact.forward(x.clone(), mask.clone()));
            let burn = output_and_gradients(&burn, inputs, || {
                burn.forward(TransformerEncoderInput::new(x.clone()).mask_pad(mask.clone()))
            });
            assert_matches(ours, exact, burn);
        }
    }

    #[test]
    fn the_decoder_loads_burns_record_and_matches_its_forward_and_the_exact_gradients() {
        for norm_first in [false, true] {
            let config = TransformerDecoderConfig::new(16, 32, 4, 2)
                .with_dropout(0.0)
                .with_norm_first(norm_first);
            let device = Default::default();
            let burn: TransformerDecoder<Reference> = config.init(&device);
            // Our record read back as Burn's (run in f64), the other way round.
            let ours = Decoder::new(&config, &device).map(&mut Perturb(0.0));
            let burn = reload(ours.clone(), burn);
            let exact = reload(ours.clone(), Decoder::<Reference>::new(&config, &device));
            let (x, memory) = (input([2, 4, 16], 0.5), input([2, 6, 16], 2.5));
            let (target_padding, memory_padding) = (padding(&[4, 2], 4), padding(&[6, 3], 6));
            let causal = generate_autoregressive_mask::<Ad>(2, 4, &device);
            let inputs = [x.clone(), memory.clone()];
            let ours = output_and_gradients(&ours, &inputs, || {
                ours.forward(
                    x.clone(),
                    memory.clone(),
                    target_padding.clone(),
                    causal.clone(),
                    memory_padding.clone(),
                )
            });
            let (x, memory) = (on::<Reference>(&x), on::<Reference>(&memory));
            let (target_padding, memory_padding) = (
                mask_on::<Reference, 2>(&target_padding),
                mask_on::<Reference, 2>(&memory_padding),
            );
            let causal = mask_on::<Reference, 3>(&causal);
            let inputs = [x.clone(), memory.clone()];
            let exact = output_and_gradients(&exact, &inputs, || {
                exact.forward(
                    x.clone(),
                    memory.clone(),
                    target_padding.clone(),
                    causal.clone(),
                    memory_padding.clone(),
                )
            });
            let burn = output_and_gradients(&burn, &inputs, || {
                burn.forward(
                    TransformerDecoderInput::new(x.clone(), memory.clone())
                        .target_mask_pad(target_padding.clone())
                        .target_mask_attn(causal.clone())
                        .memory_mask_pad(memory_padding.clone()),
                )
            });
            assert_matches(ours, exact, burn);
        }
    }

    #[test]
    fn training_drops_the_same_fraction_of_activations_as_burns_layers() {
        // With dropout on, outputs differ by mask; their spread around the dropout-free output
        // must be alike (our masks are neither missing nor doubled).
        let device = Default::default();
        let config = TransformerEncoderConfig::new(16, 32, 4, 1).with_dropout(0.3);
        let burn: TransformerEncoder<Ad> = config.init(&device);
        let ours = reload(burn.clone(), Encoder::new(&config, &device));
        let plain = reload(
            burn.clone(),
            Encoder::new(&config.clone().with_dropout(0.0), &device),
        );
        let x = input([8, 10, 16], 0.5);
        let mask = padding(&[10; 8], 10);
        let reference = plain.forward(x.clone(), mask.clone());
        let spread = |y: Tensor<Ad, 3>| {
            (y - reference.clone())
                .powf_scalar(2.0)
                .mean()
                .into_scalar()
                .sqrt()
        };
        let ours = spread(ours.forward(x.clone(), mask.clone()));
        let burn = spread(burn.forward(TransformerEncoderInput::new(x).mask_pad(mask)));
        assert!(
            ours > 0.1 && burn > 0.1,
            "dropout had no effect: {ours}, {burn}"
        );
        assert!(
            (ours / burn - 1.0).abs() < 0.25,
            "spread {ours} against Burn's {burn}"
        );
    }
}
