//! A word-level LSTM language model: embedding → stacked LSTM (dropout between layers) →
//! full or adaptive softmax, trained with truncated back-propagation through time.

use crate::batch::LmBatch;
use burn::config::Config;
use burn::module::{Ignored, Module};
use burn::nn::lstm::LstmState;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use burn::train::{TrainOutput, TrainStep, ValidStep};
use serde::{Deserialize, Serialize};

use crate::layers::adaptive_softmax::{AdaptiveSoftmax, AdaptiveSoftmaxConfig};
use crate::layers::lstm::{LstmAlgorithm, StackedLstm, StackedLstmConfig};
use crate::ops::dropout::dropout;
use crate::ops::loss::label_smoothed_cross_entropy;
use crate::ops::matmul::{linear, matmul};
use crate::ops::reshape::reshape;
use crate::state_dict::{
    StateDict, load_adaptive_softmax, load_linear, load_lstm_layer, load_param,
};
use crate::training::carried_state::CarriedState;
use crate::training::output::LmOutput;

/// The output layer of an [`LstmLm`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LmOutputLayer {
    /// A full softmax over the vocabulary (small vocabularies).
    Full,
    /// An adaptive softmax with these cut-offs and projection divisor (large vocabularies).
    Adaptive {
        /// Cluster boundaries, e.g. `[4000, 40000, 200000]`.
        cutoffs: Vec<usize>,
        /// Each cluster's projection is this many times smaller than the previous one's.
        div_value: f64,
    },
}

/// From this vocabulary size on, [`LstmLmConfig::small`] uses an adaptive softmax.
pub const SMALL_ADAPTIVE_VOCAB: usize = 20_000;

/// Configuration of an [`LstmLm`].
#[derive(Config, Debug)]
pub struct LstmLmConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Word embedding size.
    #[config(default = 300)]
    pub d_embedding: usize,
    /// LSTM hidden units per layer.
    #[config(default = 2048)]
    pub d_hidden: usize,
    /// LSTM layers.
    #[config(default = 2)]
    pub num_layers: usize,
    /// Dropout on the embeddings, between LSTM layers and before the output layer.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Share the input embedding with the output layer (full softmax only). When the hidden
    /// size differs from the embedding size, a linear projection maps one to the other.
    #[config(default = false)]
    pub tie_embeddings: bool,
    /// The output layer.
    #[config(default = "LmOutputLayer::Full")]
    pub output: LmOutputLayer,
    /// The LSTM recurrence algorithm.
    #[config(default = "LstmAlgorithm::Fused")]
    pub lstm_algorithm: LstmAlgorithm,
}

impl LstmLmConfig {
    /// The paper's One Billion Word model: 2 × 2048 LSTM, 300-d embeddings, dropout 0.1,
    /// adaptive softmax with cut-offs `[4000, 40000, 200000]`.
    pub fn paper(vocab_size: usize) -> Self {
        Self::new(vocab_size).with_output(LmOutputLayer::Adaptive {
            cutoffs: vec![4000, 40000, 200000],
            div_value: 4.0,
        })
    }

    /// A model for CPU runs: 2 × 256 LSTM, 128-d embeddings, dropout 0.2; below
    /// [`SMALL_ADAPTIVE_VOCAB`] words a full softmax tied to the embeddings, from there on an
    /// adaptive softmax with cut-offs `[V/10, V/3]` (the head holds the tenth most frequent
    /// words — most of the tokens of a Zipfian corpus — and two tail clusters the rest; the
    /// paper's divisor 4), so that a large vocabulary does not dominate the step.
    pub fn small(vocab_size: usize) -> Self {
        let config = Self::new(vocab_size)
            .with_d_embedding(128)
            .with_d_hidden(256)
            .with_dropout(0.2);
        if vocab_size >= SMALL_ADAPTIVE_VOCAB {
            config.with_output(LmOutputLayer::Adaptive {
                cutoffs: vec![vocab_size / 10, vocab_size / 3],
                div_value: 4.0,
            })
        } else {
            config.with_tie_embeddings(true)
        }
    }

    /// The output layer in words, for logs: `full softmax (tied embeddings)` or `adaptive
    /// softmax (cut-offs [3000, 10000], divisor 4)`.
    pub fn output_description(&self) -> String {
        match &self.output {
            LmOutputLayer::Full if self.tie_embeddings => "full softmax (tied embeddings)".into(),
            LmOutputLayer::Full => "full softmax".into(),
            LmOutputLayer::Adaptive { cutoffs, div_value } => {
                format!("adaptive softmax (cut-offs {cutoffs:?}, divisor {div_value})")
            }
        }
    }

    /// Checks the combination of options.
    pub fn validate(&self) -> Result<(), String> {
        if self.vocab_size < 2
            || self.num_layers == 0
            || self.d_hidden == 0
            || self.d_embedding == 0
        {
            return Err(format!(
                "an LSTM LM needs a vocabulary of at least 2 words and non-empty layers; got vocab_size {}, \
                 num_layers {}, d_hidden {}, d_embedding {}",
                self.vocab_size, self.num_layers, self.d_hidden, self.d_embedding
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must lie in [0, 1), got {}", self.dropout));
        }
        match &self.output {
            LmOutputLayer::Adaptive { .. } if self.tie_embeddings => {
                Err("tied embeddings need the full softmax output layer".to_string())
            }
            LmOutputLayer::Adaptive { cutoffs, div_value } => {
                AdaptiveSoftmaxConfig::new(self.d_hidden, self.vocab_size, cutoffs.clone())
                    .with_div_value(*div_value)
                    .validate()
            }
            LmOutputLayer::Full => Ok(()),
        }
    }

    /// Builds the model on `device`.
    ///
    /// # Panics
    /// If the configuration is invalid (see [`validate`](Self::validate)).
    pub fn init<B: Backend>(&self, device: &B::Device) -> LstmLm<B> {
        self.validate()
            .unwrap_or_else(|error| panic!("invalid LstmLmConfig: {error}"));
        let tied = self.tie_embeddings;
        let d_output_features = if tied {
            self.d_embedding
        } else {
            self.d_hidden
        };
        let projection = (tied && self.d_hidden != self.d_embedding)
            .then(|| LinearConfig::new(self.d_hidden, self.d_embedding).init(device));
        let (output, adaptive) = match &self.output {
            LmOutputLayer::Full if tied => (None, None),
            LmOutputLayer::Full => (
                Some(LinearConfig::new(d_output_features, self.vocab_size).init(device)),
                None,
            ),
            LmOutputLayer::Adaptive { cutoffs, div_value } => (
                None,
                Some(
                    AdaptiveSoftmaxConfig::new(self.d_hidden, self.vocab_size, cutoffs.clone())
                        .with_div_value(*div_value)
                        .init(device),
                ),
            ),
        };
        LstmLm {
            embedding: EmbeddingConfig::new(self.vocab_size, self.d_embedding).init(device),
            lstm: StackedLstmConfig::new(self.d_embedding, self.d_hidden, self.num_layers)
                .with_dropout(self.dropout)
                .with_algorithm(self.lstm_algorithm)
                .init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            projection,
            output,
            output_bias: tied.then(|| {
                burn::module::Param::from_tensor(Tensor::zeros([self.vocab_size], device))
            }),
            adaptive,
            carried: Ignored(CarriedState::default()),
        }
    }
}

/// The LSTM language model.
#[derive(Module, Debug)]
pub struct LstmLm<B: Backend> {
    embedding: Embedding<B>,
    lstm: StackedLstm<B>,
    dropout: Dropout,
    /// Hidden → embedding size, when tied embeddings need it.
    projection: Option<Linear<B>>,
    /// Untied full softmax.
    output: Option<Linear<B>>,
    /// Output bias of the tied full softmax.
    output_bias: Option<burn::module::Param<Tensor<B, 1>>>,
    adaptive: Option<AdaptiveSoftmax<B>>,
    carried: Ignored<CarriedState>,
}

/// The recurrent state of every layer.
pub type LmState<B> = Vec<LstmState<B, 2>>;

impl<B: Backend> LstmLm<B> {
    /// Hidden features before the output layer, `[batch, time, d]`, and the final state.
    pub fn hidden(
        &self,
        inputs: Tensor<B, 2, Int>,
        state: Option<LmState<B>>,
    ) -> (Tensor<B, 3>, LmState<B>) {
        let x = dropout(&self.dropout, self.embedding.forward(inputs));
        let (x, state) = self.lstm.forward(x, state);
        let mut x = dropout(&self.dropout, x);
        if let Some(projection) = &self.projection {
            x = projection.forward(x);
        }
        (x, state)
    }

    /// Full-softmax logits `[rows, vocab]` for hidden features `[rows, d]`.
    ///
    /// # Panics
    /// With an adaptive softmax output layer (use [`log_prob`](Self::log_prob)).
    fn logits(&self, hidden: Tensor<B, 2>) -> Tensor<B, 2> {
        if let Some(output) = &self.output {
            return linear(output, hidden);
        }
        assert!(
            self.adaptive.is_none(),
            "an adaptive-softmax model has no full logits"
        );
        let weight = self.embedding.weight.val(); // [vocab, d]
        let logits = matmul(hidden, weight.transpose());
        match &self.output_bias {
            Some(bias) => logits + bias.val().unsqueeze_dim(0),
            None => logits,
        }
    }

    /// Log-probabilities of the next word at every position, `[batch, time, vocab]`.
    pub fn log_prob(
        &self,
        inputs: Tensor<B, 2, Int>,
        state: Option<LmState<B>>,
    ) -> (Tensor<B, 3>, LmState<B>) {
        let [batch, time] = inputs.dims();
        let (hidden, state) = self.hidden(inputs, state);
        let features = hidden.dims()[2];
        let rows = reshape(hidden, [batch * time, features]);
        let log_prob = match &self.adaptive {
            Some(adaptive) => adaptive.log_prob(rows),
            None => log_softmax(self.logits(rows), 1),
        };
        let vocab = log_prob.dims()[1];
        (reshape(log_prob, [batch, time, vocab]), state)
    }

    /// Loss (mean NLL per token) and summed NLL for `targets`, starting from `state`.
    pub fn forward_lm(
        &self,
        inputs: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        state: Option<LmState<B>>,
    ) -> (LmOutput<B>, LmState<B>) {
        let [batch, time] = inputs.dims();
        let tokens = batch * time;
        let (hidden, state) = self.hidden(inputs, state);
        let features = hidden.dims()[2];
        let rows = reshape(hidden, [tokens, features]);
        let targets = targets.reshape([tokens]);
        let nll_sum = match &self.adaptive {
            Some(adaptive) => adaptive.nll_sum(rows, targets),
            None => label_smoothed_cross_entropy(self.logits(rows), targets, 0.0, None).nll_sum,
        };
        let loss = nll_sum.clone().div_scalar(tokens as f64);
        (
            LmOutput {
                loss,
                nll_sum,
                tokens,
            },
            state,
        )
    }

    /// One batch of a stream: starts from the state the previous batch of the same stream left
    /// (unless the batch starts a stream), and stores its own final state, detached, for the
    /// next one — truncated back-propagation through time.
    pub fn forward_stream(&self, batch: LmBatch<B>) -> LmOutput<B> {
        let device = batch.inputs.device();
        let batch_size = batch.inputs.dims()[0];
        let state = if batch.starts_stream {
            None
        } else {
            self.carried
                .0
                .take::<B, LmState<B>>(&device)
                .filter(|state| {
                    state
                        .first()
                        .is_some_and(|layer| layer.hidden.dims()[0] == batch_size)
                })
        };
        let (output, state) = self.forward_lm(batch.inputs, batch.targets, state);
        let detached = state
            .into_iter()
            .map(|layer| LstmState::new(layer.cell.detach(), layer.hidden.detach()))
            .collect::<LmState<B>>();
        self.carried.0.store::<B, _>(&device, detached);
        output
    }
}

impl<B: Backend> LstmLm<B> {
    /// This model with the weights of a PyTorch `state_dict` (see [`crate::state_dict`]) of the
    /// same architecture, whose modules are named `embedding` (`nn.Embedding`), `lstm`
    /// (`nn.LSTM` with biases), `projection` (`nn.Linear`, tied embeddings of another size),
    /// `output_bias` (tied embeddings) and `output` (`nn.Linear` for an untied full softmax,
    /// `nn.AdaptiveLogSoftmaxWithLoss` for an adaptive one); `tools/model_parity_reference.py`
    /// defines that model. Strict: a tensor the model has no parameter for is an error, as is
    /// a missing or misshapen one.
    pub fn load_state_dict(self, dict: &StateDict) -> Result<Self, String> {
        dict.load_strictly(|dict| self.load_weights(dict))
    }

    /// [`load_state_dict`](Self::load_state_dict) without the check for unread tensors.
    fn load_weights(mut self, dict: &StateDict) -> Result<Self, String> {
        self.embedding.weight = load_param(dict, "embedding.weight", self.embedding.weight)?;
        self.lstm.layers = std::mem::take(&mut self.lstm.layers)
            .into_iter()
            .enumerate()
            .map(|(index, layer)| load_lstm_layer(dict, "lstm", index, layer))
            .collect::<Result<_, String>>()?;
        if let Some(projection) = self.projection.take() {
            self.projection = Some(load_linear(dict, "projection", projection)?);
        }
        if let Some(output) = self.output.take() {
            self.output = Some(load_linear(dict, "output", output)?);
        }
        if let Some(bias) = self.output_bias.take() {
            self.output_bias = Some(load_param(dict, "output_bias", bias)?);
        }
        if let Some(adaptive) = self.adaptive.take() {
            self.adaptive = Some(load_adaptive_softmax(dict, "output", adaptive)?);
        }
        Ok(self)
    }
}

impl<B: AutodiffBackend> TrainStep<LmBatch<B>, LmOutput<B>> for LstmLm<B> {
    fn step(&self, batch: LmBatch<B>) -> TrainOutput<LmOutput<B>> {
        let output = self.forward_stream(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> ValidStep<LmBatch<B>, LmOutput<B>> for LstmLm<B> {
    fn step(&self, batch: LmBatch<B>) -> LmOutput<B> {
        self.forward_stream(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend, TestBackend, assert_tensors_close, overfit};
    use crate::training::parameters::trainable_parameters;
    use burn::tensor::TensorData;

    fn tokens(values: Vec<i64>, shape: [usize; 2]) -> Tensor<TestBackend, 2, Int> {
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    #[test]
    fn small_models_switch_to_the_adaptive_softmax_at_large_vocabularies() {
        let below = LstmLmConfig::small(SMALL_ADAPTIVE_VOCAB - 1);
        assert_eq!(below.output, LmOutputLayer::Full);
        assert!(below.tie_embeddings);
        assert_eq!(below.output_description(), "full softmax (tied embeddings)");
        let large = LstmLmConfig::small(30_000);
        assert_eq!(
            large.output,
            LmOutputLayer::Adaptive {
                cutoffs: vec![3000, 10_000],
                div_value: 4.0
            }
        );
        assert!(!large.tie_embeddings);
        assert_eq!(large.validate(), Ok(()));
        assert_eq!(
            large.output_description(),
            "adaptive softmax (cut-offs [3000, 10000], divisor 4)"
        );
        assert!(LstmLmConfig::small(SMALL_ADAPTIVE_VOCAB).validate().is_ok());
    }

    #[test]
    fn shapes_and_normalisation() {
        let device = Default::default();
        for config in [
            LstmLmConfig::small(50)
                .with_d_hidden(32)
                .with_d_embedding(16),
            LstmLmConfig::new(50).with_d_hidden(32).with_d_embedding(16),
            LstmLmConfig::new(50)
                .with_d_hidden(32)
                .with_d_embedding(16)
                .with_output(LmOutputLayer::Adaptive {
                    cutoffs: vec![10, 30],
                    div_value: 2.0,
                }),
        ] {
            let model: LstmLm<TestBackend> = config.init(&device);
            let (log_prob, state) = model.log_prob(tokens(vec![1, 2, 3, 4, 5, 6], [2, 3]), None);
            assert_eq!(log_prob.dims(), [2, 3, 50]);
            assert_eq!(state.len(), 2);
            assert_tensors_close(
                log_prob.exp().sum_dim(2),
                Tensor::ones([2, 3, 1], &device),
                1e-5,
            );
        }
    }

    #[test]
    fn parameter_counts() {
        let device = Default::default();
        // Embedding 50·16; LSTM layer 1: 4·(16·32 + 32 + 32·32 + 32); layer 2: 4·(32·32 + 32 + 32·32 + 32);
        // projection 32·16 + 16; tied output bias 50.
        let tied: LstmLm<TestAutodiffBackend> = LstmLmConfig::small(50)
            .with_d_hidden(32)
            .with_d_embedding(16)
            .init(&device);
        let lstm = 4 * (16 * 32 + 32 + 32 * 32 + 32) + 4 * (32 * 32 + 32 + 32 * 32 + 32);
        assert_eq!(
            trainable_parameters(&tied),
            50 * 16 + lstm + 32 * 16 + 16 + 50
        );
        let paper: LstmLm<TestAutodiffBackend> = LstmLmConfig::paper(793_471).init(&device);
        // Embedding 793471·300; LSTM: 4·(300·2048 + 2048 + 2048·2048 + 2048) + 4·(2·2048·2048 + 2·2048);
        // adaptive head 2048·4003; tails 2048·512 + 512·36000, 2048·128 + 128·160000, 2048·32 + 32·593471.
        let expected = 793_471 * 300
            + 4 * (300 * 2048 + 2048 + 2048 * 2048 + 2048)
            + 4 * (2 * 2048 * 2048 + 2 * 2048)
            + 2048 * 4003
            + (2048 * 512 + 512 * 36_000)
            + (2048 * 128 + 128 * 160_000)
            + (2048 * 32 + 32 * 593_471);
        assert_eq!(trainable_parameters(&paper), expected);
    }

    #[test]
    fn a_future_token_does_not_change_earlier_predictions() {
        let device = Default::default();
        let model: LstmLm<TestBackend> = LstmLmConfig::small(20)
            .with_d_hidden(16)
            .with_d_embedding(8)
            .init(&device);
        let (a, _) = model.log_prob(tokens(vec![1, 2, 3, 4], [1, 4]), None);
        let (b, _) = model.log_prob(tokens(vec![1, 2, 3, 9], [1, 4]), None);
        assert_tensors_close(
            a.clone().slice([0..1, 0..3, 0..20]),
            b.clone().slice([0..1, 0..3, 0..20]),
            0.0,
        );
        let last_a: Vec<f32> = a.slice([0..1, 3..4, 0..20]).into_data().to_vec().unwrap();
        let last_b: Vec<f32> = b.slice([0..1, 3..4, 0..20]).into_data().to_vec().unwrap();
        assert_ne!(last_a, last_b);
    }

    #[test]
    fn carried_state_continues_the_stream() {
        let device = Default::default();
        let model: LstmLm<TestBackend> = LstmLmConfig::small(20)
            .with_d_hidden(16)
            .with_d_embedding(8)
            .init(&device);
        // One long sequence vs. the same sequence as two consecutive batches.
        let whole = model
            .forward_lm(
                tokens(vec![1, 2, 3, 4, 5, 6], [1, 6]),
                tokens(vec![2, 3, 4, 5, 6, 7], [1, 6]),
                None,
            )
            .0;
        let batch = |inputs, targets, starts_stream| LmBatch {
            inputs: tokens(inputs, [1, 3]),
            targets: tokens(targets, [1, 3]),
            starts_stream,
        };
        let first = model.forward_stream(batch(vec![1, 2, 3], vec![2, 3, 4], true));
        let second = model.forward_stream(batch(vec![4, 5, 6], vec![5, 6, 7], false));
        let streamed = first.nll_sum.into_scalar() + second.nll_sum.into_scalar();
        assert!((streamed - whole.nll_sum.into_scalar()).abs() < 1e-4);
        // Starting a stream forgets the carried state.
        let restarted = model.forward_stream(batch(vec![4, 5, 6], vec![5, 6, 7], true));
        assert!((restarted.nll_sum.into_scalar() - second_alone(&model)).abs() < 1e-6);
    }

    fn second_alone(model: &LstmLm<TestBackend>) -> f32 {
        model
            .forward_lm(
                tokens(vec![4, 5, 6], [1, 3]),
                tokens(vec![5, 6, 7], [1, 3]),
                None,
            )
            .0
            .nll_sum
            .into_scalar()
    }

    #[test]
    fn overfits_one_batch() {
        let device = Default::default();
        for output in [
            LmOutputLayer::Full,
            LmOutputLayer::Adaptive {
                cutoffs: vec![8, 20],
                div_value: 2.0,
            },
        ] {
            let model: LstmLm<TestAutodiffBackend> = LstmLmConfig::new(40)
                .with_d_hidden(32)
                .with_d_embedding(16)
                .with_dropout(0.0)
                .with_output(output.clone())
                .init(&device);
            let inputs = Tensor::<TestAutodiffBackend, 2, Int>::from_data(
                TensorData::new(
                    (0..32).map(|i| (i * 7 % 40) as i64).collect::<Vec<_>>(),
                    [4, 8],
                ),
                &device,
            );
            let targets = Tensor::<TestAutodiffBackend, 2, Int>::from_data(
                TensorData::new(
                    (0..32)
                        .map(|i| ((i * 7 + 3) % 40) as i64)
                        .collect::<Vec<_>>(),
                    [4, 8],
                ),
                &device,
            );
            let (first, last) = overfit(model, 150, 2e-2, |model| {
                model
                    .forward_lm(inputs.clone(), targets.clone(), None)
                    .0
                    .loss
            });
            assert!(
                last < 0.2 * first,
                "{output:?}: loss went from {first} to {last}"
            );
            println!("LSTM LM overfit ({output:?}): loss {first} -> {last}");
        }
    }
}
