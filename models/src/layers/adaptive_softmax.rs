//! Adaptive softmax (Grave et al., "Efficient softmax approximation for GPUs", 2017), the output
//! layer the RAdam paper's One Billion Word model uses for its ~800 k-word vocabulary.
//!
//! The vocabulary, sorted by frequency, is cut into a shortlist and clusters. The head predicts
//! the shortlist words and one entry per cluster; cluster `i` has its own small classifier over a
//! projection of size `d_input / div_valueⁱ⁺¹`. `log p(w) = log p_head(w)` for shortlist words and
//! `log p_head(cluster) + log p_cluster(w)` otherwise. Training only evaluates, for each row, the
//! cluster its target is in. The layout follows `torch.nn.AdaptiveLogSoftmaxWithLoss`.

use burn::config::Config;
use burn::module::{Ignored, Module};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::ops::loss::nll_sum;
use crate::ops::matmul::linear;

/// Configuration of an [`AdaptiveSoftmax`].
#[derive(Config, Debug)]
pub struct AdaptiveSoftmaxConfig {
    /// Features of the hidden state fed to the layer.
    pub d_input: usize,
    /// Vocabulary size (word ids are sorted by decreasing frequency).
    pub vocab_size: usize,
    /// Increasing cluster boundaries, all below `vocab_size`: `[4000, 40000, 200000]` puts the
    /// 4000 most frequent words in the head and three clusters after them.
    pub cutoffs: Vec<usize>,
    /// Each cluster's projection is `div_value` times smaller than the previous one's.
    #[config(default = 4.0)]
    pub div_value: f64,
}

/// A cluster's classifier: a projection to a smaller space, then the cluster's words.
#[derive(Module, Debug)]
pub struct AdaptiveTail<B: Backend> {
    /// `d_input → d_input / div_valueⁱ⁺¹`, no bias.
    pub projection: Linear<B>,
    /// `→ cluster size`, no bias.
    pub output: Linear<B>,
}

/// The adaptive softmax output layer.
#[derive(Module, Debug)]
pub struct AdaptiveSoftmax<B: Backend> {
    /// Shortlist words, then one entry per cluster. No bias.
    pub head: Linear<B>,
    /// One classifier per cluster.
    pub tails: Vec<AdaptiveTail<B>>,
    /// `[cutoffs…, vocab_size]`.
    boundaries: Ignored<Vec<usize>>,
}

impl AdaptiveSoftmaxConfig {
    /// Checks the cut-offs, naming the problem.
    pub fn validate(&self) -> Result<(), String> {
        let mut previous = 0;
        for &cutoff in &self.cutoffs {
            if cutoff <= previous || cutoff >= self.vocab_size {
                return Err(format!(
                    "adaptive softmax cut-offs must increase strictly, start above 0 and stay below the \
                     vocabulary size {}; got {:?}",
                    self.vocab_size, self.cutoffs
                ));
            }
            previous = cutoff;
        }
        if self.div_value.is_nan() || self.div_value < 1.0 {
            return Err(format!(
                "adaptive softmax div_value must be ≥ 1, got {}",
                self.div_value
            ));
        }
        for i in 0..self.cutoffs.len() {
            if self.projection_size(i) == 0 {
                return Err(format!(
                    "adaptive softmax cluster {i} would have an empty projection ({} / {}^{}); use a smaller \
                     div_value or fewer clusters",
                    self.d_input,
                    self.div_value,
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn projection_size(&self, cluster: usize) -> usize {
        (self.d_input as f64 / self.div_value.powi(cluster as i32 + 1)).floor() as usize
    }

    /// Builds the layer on `device`.
    ///
    /// # Panics
    /// If the configuration is invalid (see [`validate`](Self::validate)).
    pub fn init<B: Backend>(&self, device: &B::Device) -> AdaptiveSoftmax<B> {
        self.validate().unwrap_or_else(|error| panic!("{error}"));
        let shortlist = self.cutoffs.first().copied().unwrap_or(self.vocab_size);
        let mut boundaries = self.cutoffs.clone();
        boundaries.push(self.vocab_size);
        let tails = boundaries
            .windows(2)
            .enumerate()
            .map(|(i, bounds)| {
                let size = self.projection_size(i);
                AdaptiveTail {
                    projection: LinearConfig::new(self.d_input, size)
                        .with_bias(false)
                        .init(device),
                    output: LinearConfig::new(size, bounds[1] - bounds[0])
                        .with_bias(false)
                        .init(device),
                }
            })
            .collect();
        AdaptiveSoftmax {
            head: LinearConfig::new(self.d_input, shortlist + self.cutoffs.len())
                .with_bias(false)
                .init(device),
            tails,
            boundaries: Ignored(boundaries),
        }
    }
}

impl<B: Backend> AdaptiveSoftmax<B> {
    fn shortlist(&self) -> usize {
        self.boundaries.0[0]
    }

    fn vocab_size(&self) -> usize {
        *self
            .boundaries
            .0
            .last()
            .expect("at least the vocabulary size")
    }

    /// Log-probabilities of every word, `[rows, vocab]`, for `hidden: [rows, d_input]`.
    /// Evaluates every cluster: for evaluation and tests, not for training on large vocabularies.
    pub fn log_prob(&self, hidden: Tensor<B, 2>) -> Tensor<B, 2> {
        let shortlist = self.shortlist();
        let head = log_softmax(self.head.forward(hidden.clone()), 1);
        let [rows, head_size] = head.dims();
        let mut parts = vec![head.clone().slice([0..rows, 0..shortlist])];
        for (i, tail) in self.tails.iter().enumerate() {
            let cluster = head
                .clone()
                .slice([0..rows, shortlist + i..shortlist + i + 1]);
            let words = log_softmax(
                tail.output.forward(tail.projection.forward(hidden.clone())),
                1,
            );
            parts.push(words + cluster);
        }
        debug_assert_eq!(head_size, shortlist + self.tails.len());
        Tensor::cat(parts, 1)
    }

    /// Summed negative log-likelihood `−Σ log p(target)` over the rows, `[1]`, evaluating for
    /// each row only the cluster that holds its target.
    ///
    /// # Panics
    /// If a target id is not below the vocabulary size.
    pub fn nll_sum(&self, hidden: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        let device = hidden.device();
        let shortlist = self.shortlist();
        let vocab = self.vocab_size();
        let boundaries = &self.boundaries.0;
        let ids: Vec<i64> = targets
            .into_data()
            .convert::<i64>()
            .to_vec()
            .expect("integer targets");

        // For every row: the head column (its word, or its cluster's entry), and per cluster the
        // rows whose target it holds, with the target's index inside the cluster.
        let mut head_columns = Vec::with_capacity(ids.len());
        let mut cluster_rows = vec![Vec::new(); self.tails.len()];
        let mut cluster_targets = vec![Vec::new(); self.tails.len()];
        for (row, &id) in ids.iter().enumerate() {
            assert!(
                id >= 0 && (id as usize) < vocab,
                "target id {id} is outside the vocabulary of {vocab} words"
            );
            let id = id as usize;
            if id < shortlist {
                head_columns.push(id as i64);
            } else {
                let cluster = boundaries
                    .windows(2)
                    .position(|b| id < b[1])
                    .expect("id < vocab");
                head_columns.push((shortlist + cluster) as i64);
                cluster_rows[cluster].push(row as i64);
                cluster_targets[cluster].push((id - boundaries[cluster]) as i64);
            }
        }

        let int_tensor = |values: Vec<i64>| {
            let len = values.len();
            Tensor::<B, 1, Int>::from_data(TensorData::new(values, [len]), &device)
        };
        // Each term is a cross-entropy sum: the head's over every row, each cluster's over its
        // rows, on the native product and loss kernels where the backend has them.
        let head_logits = linear(&self.head, hidden.clone());
        let mut nll = nll_sum(head_logits, int_tensor(head_columns));
        for ((tail, rows), targets) in self.tails.iter().zip(cluster_rows).zip(cluster_targets) {
            if rows.is_empty() {
                continue;
            }
            let selected = hidden.clone().select(0, int_tensor(rows));
            let logits = linear(&tail.output, linear(&tail.projection, selected));
            nll = nll + nll_sum(logits, int_tensor(targets));
        }
        nll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{TestBackend, assert_tensors_close};
    use burn::module::Param;
    use burn::tensor::Distribution;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Reference {
        d_input: usize,
        vocab_size: usize,
        cutoffs: Vec<usize>,
        div_value: f64,
        /// PyTorch layout: `[out, in]`, row-major.
        head: Vec<f32>,
        tails: Vec<(Vec<f32>, Vec<f32>)>,
        input: Vec<f32>,
        rows: usize,
        targets: Vec<i64>,
        log_prob: Vec<f32>,
        mean_nll: f32,
    }

    fn linear_from_torch(linear: Linear<TestBackend>, torch_weight: &[f32]) -> Linear<TestBackend> {
        let [d_in, d_out] = linear.weight.dims();
        let device = Default::default();
        let weight = Tensor::<TestBackend, 2>::from_data(
            TensorData::new(torch_weight.to_vec(), [d_out, d_in]),
            &device,
        );
        Linear {
            weight: Param::from_tensor(weight.transpose()),
            ..linear
        }
    }

    #[test]
    fn matches_pytorch_adaptive_log_softmax() {
        let reference: Reference =
            serde_json::from_str(include_str!("../../testdata/adaptive_softmax.json")).unwrap();
        let device = Default::default();
        let mut layer: AdaptiveSoftmax<TestBackend> = AdaptiveSoftmaxConfig::new(
            reference.d_input,
            reference.vocab_size,
            reference.cutoffs.clone(),
        )
        .with_div_value(reference.div_value)
        .init(&device);
        layer.head = linear_from_torch(layer.head, &reference.head);
        layer.tails = layer
            .tails
            .into_iter()
            .zip(&reference.tails)
            .map(|(tail, (projection, output))| AdaptiveTail {
                projection: linear_from_torch(tail.projection, projection),
                output: linear_from_torch(tail.output, output),
            })
            .collect();
        let hidden = Tensor::<TestBackend, 2>::from_data(
            TensorData::new(reference.input.clone(), [reference.rows, reference.d_input]),
            &device,
        );
        let expected = Tensor::<TestBackend, 2>::from_data(
            TensorData::new(
                reference.log_prob.clone(),
                [reference.rows, reference.vocab_size],
            ),
            &device,
        );
        assert_tensors_close(layer.log_prob(hidden.clone()), expected, 1e-5);
        let targets = Tensor::from_data(
            TensorData::new(reference.targets.clone(), [reference.rows]),
            &device,
        );
        let mean_nll = layer.nll_sum(hidden, targets).into_scalar() / reference.rows as f32;
        assert!(
            (mean_nll - reference.mean_nll).abs() < 1e-5,
            "{mean_nll} vs {}",
            reference.mean_nll
        );
    }

    #[test]
    fn log_probabilities_sum_to_one() {
        let device = Default::default();
        let layer: AdaptiveSoftmax<TestBackend> =
            AdaptiveSoftmaxConfig::new(64, 100, vec![10, 30, 60]).init(&device);
        let hidden = Tensor::random([6, 64], Distribution::Normal(0.0, 3.0), &device);
        let total = layer.log_prob(hidden).exp().sum_dim(1);
        assert_tensors_close(total, Tensor::ones([6, 1], &device), 1e-5);
    }

    #[test]
    fn nll_agrees_with_the_full_distribution() {
        let device = Default::default();
        let layer: AdaptiveSoftmax<TestBackend> =
            AdaptiveSoftmaxConfig::new(16, 50, vec![5, 20]).init(&device);
        let hidden =
            Tensor::<TestBackend, 2>::random([7, 16], Distribution::Normal(0.0, 1.0), &device);
        let targets = vec![0i64, 4, 5, 19, 20, 49, 3];
        let full = layer.log_prob(hidden.clone());
        let picked = full
            .gather(
                1,
                Tensor::<TestBackend, 1, Int>::from_data(
                    TensorData::new(targets.clone(), [7]),
                    &device,
                )
                .reshape([7, 1]),
            )
            .sum()
            .neg();
        let nll = layer.nll_sum(
            hidden,
            Tensor::from_data(TensorData::new(targets, [7]), &device),
        );
        assert_tensors_close(nll, picked, 1e-5);
    }

    /// The training loss's gradients (native product and cross-entropy kernels on autodiff
    /// ndarray) equal those of the full distribution's log-probabilities (tensor operations), for
    /// the input and every weight.
    #[test]
    fn nll_gradients_agree_with_the_full_distribution() {
        use crate::test_support::TestAutodiffBackend as Ad;
        let device = Default::default();
        let layer: AdaptiveSoftmax<Ad> =
            AdaptiveSoftmaxConfig::new(16, 50, vec![5, 20]).init(&device);
        let hidden = Tensor::<Ad, 2>::random([9, 16], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let targets = vec![0i64, 4, 5, 19, 20, 49, 3, 21, 21];
        let ids =
            || Tensor::<Ad, 1, Int>::from_data(TensorData::new(targets.clone(), [9]), &device);
        let full = layer
            .log_prob(hidden.clone())
            .gather(1, ids().reshape([9, 1]))
            .sum()
            .neg();
        let nll = layer.nll_sum(hidden.clone(), ids());
        let (full_grads, nll_grads) = (full.backward(), nll.backward());
        let grad = |tensor: &Tensor<Ad, 2>, grads| tensor.grad(grads).expect("tracked");
        assert_tensors_close(grad(&hidden, &nll_grads), grad(&hidden, &full_grads), 1e-5);
        let weights = std::iter::once(&layer.head)
            .chain(layer.tails.iter().flat_map(|t| [&t.projection, &t.output]));
        for linear in weights {
            let weight = linear.weight.val();
            assert_tensors_close(grad(&weight, &nll_grads), grad(&weight, &full_grads), 1e-5);
        }
    }

    #[test]
    fn invalid_cutoffs_are_named() {
        let error = AdaptiveSoftmaxConfig::new(16, 100, vec![10, 10])
            .validate()
            .unwrap_err();
        assert!(error.contains("[10, 10]"), "{error}");
        let error = AdaptiveSoftmaxConfig::new(16, 100, vec![10, 100])
            .validate()
            .unwrap_err();
        assert!(error.contains("vocabulary size 100"), "{error}");
        let error = AdaptiveSoftmaxConfig::new(4, 100, vec![10, 20, 30])
            .validate()
            .unwrap_err();
        assert!(error.contains("empty projection"), "{error}");
    }
}
