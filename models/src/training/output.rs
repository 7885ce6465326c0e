//! Training-step outputs of the sequence models, and the adaptors that feed Burn's metrics.

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor};
use burn::train::metric::{AccuracyInput, Adaptor, ItemLazy, LossInput};

use crate::training::metrics::TokenNll;

/// The output of a language-model step.
pub struct LmOutput<B: Backend> {
    /// The training objective: mean negative log-likelihood per target token, `[1]`.
    pub loss: Tensor<B, 1>,
    /// Summed negative log-likelihood of the target tokens, `[1]`.
    pub nll_sum: Tensor<B, 1>,
    /// Number of target tokens.
    pub tokens: usize,
}

/// The output of a translation step.
pub struct TranslationOutput<B: Backend> {
    /// The training objective: label-smoothed cross-entropy, mean over non-padding tokens, `[1]`.
    pub loss: Tensor<B, 1>,
    /// Summed negative log-likelihood (no smoothing) of the non-padding target tokens, `[1]`.
    pub nll_sum: Tensor<B, 1>,
    /// Number of non-padding target tokens.
    pub tokens: usize,
    /// Logits for every target position, `[batch · target_len, vocab]`.
    pub logits: Tensor<B, 2>,
    /// The target tokens, `[batch · target_len]` (padding included; metrics skip it).
    pub targets: Tensor<B, 1, Int>,
}

impl<B: Backend> ItemLazy for LmOutput<B> {
    type ItemSync = Self;
    fn sync(self) -> Self {
        self
    }
}

impl<B: Backend> ItemLazy for TranslationOutput<B> {
    type ItemSync = Self;
    fn sync(self) -> Self {
        self
    }
}

fn token_nll<B: Backend>(nll_sum: &Tensor<B, 1>, tokens: usize) -> TokenNll {
    TokenNll {
        nll_sum: nll_sum.clone().into_scalar().elem::<f64>(),
        tokens,
    }
}

impl<B: Backend> Adaptor<LossInput<B>> for LmOutput<B> {
    fn adapt(&self) -> LossInput<B> {
        LossInput::new(self.loss.clone())
    }
}

impl<B: Backend> Adaptor<TokenNll> for LmOutput<B> {
    fn adapt(&self) -> TokenNll {
        token_nll(&self.nll_sum, self.tokens)
    }
}

impl<B: Backend> Adaptor<LossInput<B>> for TranslationOutput<B> {
    fn adapt(&self) -> LossInput<B> {
        LossInput::new(self.loss.clone())
    }
}

impl<B: Backend> Adaptor<TokenNll> for TranslationOutput<B> {
    fn adapt(&self) -> TokenNll {
        token_nll(&self.nll_sum, self.tokens)
    }
}

impl<B: Backend> Adaptor<AccuracyInput<B>> for TranslationOutput<B> {
    fn adapt(&self) -> AccuracyInput<B> {
        AccuracyInput::new(self.logits.clone(), self.targets.clone())
    }
}
