//! Perplexity from the summed negative log-likelihood, for models whose output layer has no
//! full logits (adaptive softmax) or whose loss is label-smoothed.

use burn::train::metric::{Metric, MetricEntry, MetricMetadata, MetricName, Numeric, NumericEntry};

/// Summed negative log-likelihood of a batch's target tokens and their number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenNll {
    /// `−Σ log p(target)` over the batch's (non-padding) target tokens.
    pub nll_sum: f64,
    /// Number of (non-padding) target tokens.
    pub tokens: usize,
}

/// Perplexity `exp(Σ NLL / Σ tokens)`, aggregated over the tokens of the epoch (not the mean of
/// per-batch perplexities).
#[derive(Clone)]
pub struct TokenPerplexityMetric {
    name: MetricName,
    nll_sum: f64,
    tokens: usize,
}

impl Default for TokenPerplexityMetric {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenPerplexityMetric {
    /// A metric named "Perplexity".
    pub fn new() -> Self {
        Self {
            name: MetricName::new("Perplexity".to_string()),
            nll_sum: 0.0,
            tokens: 0,
        }
    }

    fn perplexity(nll_sum: f64, tokens: usize) -> f64 {
        if tokens == 0 {
            f64::NAN
        } else {
            (nll_sum / tokens as f64).exp()
        }
    }
}

impl Metric for TokenPerplexityMetric {
    type Input = TokenNll;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, item: &TokenNll, _metadata: &MetricMetadata) -> MetricEntry {
        self.nll_sum += item.nll_sum;
        self.tokens += item.tokens;
        let epoch = Self::perplexity(self.nll_sum, self.tokens);
        let batch = Self::perplexity(item.nll_sum, item.tokens);
        let serialized = NumericEntry::Aggregated {
            sum: item.nll_sum,
            count: item.tokens,
            current: batch,
        }
        .serialize();
        MetricEntry::new(
            self.name.clone(),
            format!("epoch {epoch:.3} - batch {batch:.3}"),
            serialized,
        )
    }

    fn clear(&mut self) {
        self.nll_sum = 0.0;
        self.tokens = 0;
    }
}

impl Numeric for TokenPerplexityMetric {
    fn value(&self) -> NumericEntry {
        NumericEntry::Value(Self::perplexity(self.nll_sum, self.tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataloader::Progress;

    fn metadata() -> MetricMetadata {
        MetricMetadata {
            progress: Progress {
                items_processed: 1,
                items_total: 1,
            },
            epoch: 1,
            epoch_total: 1,
            iteration: 1,
            lr: None,
        }
    }

    #[test]
    fn aggregates_over_tokens_not_batches() {
        let mut metric = TokenPerplexityMetric::new();
        metric.update(
            &TokenNll {
                nll_sum: 10.0,
                tokens: 10,
            },
            &metadata(),
        );
        metric.update(
            &TokenNll {
                nll_sum: 60.0,
                tokens: 30,
            },
            &metadata(),
        );
        // exp(70 / 40), not the mean of e^1 and e^2.
        match metric.value() {
            NumericEntry::Value(value) => assert!((value - (70.0_f64 / 40.0).exp()).abs() < 1e-12),
            other => panic!("unexpected {other:?}"),
        }
        metric.clear();
        assert!(matches!(metric.value(), NumericEntry::Value(v) if v.is_nan()));
    }
}
