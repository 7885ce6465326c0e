//! Stacked LSTM layers over Burn's `Lstm` parameters, with two interchangeable algorithms.

use burn::config::Config;
use burn::module::{Ignored, Module};
use burn::nn::lstm::{Lstm, LstmConfig, LstmState};
use burn::nn::{Dropout, DropoutConfig, Initializer};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::ops::dropout::dropout;
use crate::ops::lstm::lstm_layer;

pub use crate::ops::dispatch::LstmAlgorithm;

/// Configuration of a [`StackedLstm`].
#[derive(Config, Debug)]
pub struct StackedLstmConfig {
    /// Input features of the first layer.
    pub d_input: usize,
    /// Hidden units of every layer.
    pub d_hidden: usize,
    /// Number of layers.
    pub num_layers: usize,
    /// Dropout between consecutive layers (not after the last).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// The recurrence algorithm.
    #[config(default = "LstmAlgorithm::Fused")]
    pub algorithm: LstmAlgorithm,
}

/// `num_layers` LSTM layers, each fed the previous layer's outputs (after dropout).
#[derive(Module, Debug)]
pub struct StackedLstm<B: Backend> {
    /// The layers, with Burn's parameter layout (four gate controllers per layer).
    pub layers: Vec<Lstm<B>>,
    dropout: Dropout,
    algorithm: Ignored<LstmAlgorithm>,
}

impl StackedLstmConfig {
    /// Builds the layers on `device`, initialised as `torch.nn.LSTM` initialises its layers
    /// (`reset_parameters`): every weight and bias drawn from `U(−1/√h, 1/√h)`, `h` the hidden
    /// size. (Burn's `LstmConfig` default draws the weights from a Xavier normal law.)
    pub fn init<B: Backend>(&self, device: &B::Device) -> StackedLstm<B> {
        let bound = 1.0 / (self.d_hidden as f64).sqrt();
        let layers = (0..self.num_layers)
            .map(|layer| {
                let d_input = if layer == 0 {
                    self.d_input
                } else {
                    self.d_hidden
                };
                LstmConfig::new(d_input, self.d_hidden, true)
                    .with_initializer(Initializer::Uniform {
                        min: -bound,
                        max: bound,
                    })
                    .init(device)
            })
            .collect();
        StackedLstm {
            layers,
            dropout: DropoutConfig::new(self.dropout).init(),
            algorithm: Ignored(self.algorithm),
        }
    }
}

impl<B: Backend> StackedLstm<B> {
    /// Runs the layers over `input: [batch, time, d_input]`, starting from `states` (one per
    /// layer; zeros when `None`). Returns the last layer's outputs `[batch, time, d_hidden]`
    /// and every layer's final state.
    pub fn forward(
        &self,
        input: Tensor<B, 3>,
        states: Option<Vec<LstmState<B, 2>>>,
    ) -> (Tensor<B, 3>, Vec<LstmState<B, 2>>) {
        let mut states = states.map(|states| states.into_iter().map(Some).collect::<Vec<_>>());
        let mut x = input;
        let mut finals = Vec::with_capacity(self.layers.len());
        for (index, layer) in self.layers.iter().enumerate() {
            if index > 0 {
                x = dropout(&self.dropout, x);
            }
            let state = states
                .as_mut()
                .and_then(|states| states.get_mut(index)?.take());
            let (output, state) = lstm_layer(layer, x, state, self.algorithm.0);
            x = output;
            finals.push(state);
        }
        (x, finals)
    }

    /// The algorithm in use.
    pub fn algorithm(&self) -> LstmAlgorithm {
        self.algorithm.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend, TestBackend, assert_tensors_close};
    use burn::tensor::Distribution;

    /// The fused layers against Burn's `Lstm`: outputs, final states, and the gradients of the
    /// input, a weight and the initial states, for a batch of `batch` sequences.
    fn check_fused_against_burn(batch: usize) {
        let device = Default::default();
        let stepwise: StackedLstm<TestAutodiffBackend> = StackedLstmConfig::new(5, 7, 2)
            .with_algorithm(LstmAlgorithm::Stepwise)
            .init(&device);
        let fused: StackedLstm<TestAutodiffBackend> = StackedLstmConfig::new(5, 7, 2)
            .init(&device)
            .load_record(stepwise.clone().into_record());
        let input = Tensor::<TestAutodiffBackend, 3>::random(
            [batch, 4, 5],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let cells: Vec<Tensor<TestAutodiffBackend, 2>> = (0..4)
            .map(|_| {
                Tensor::random([batch, 7], Distribution::Normal(0.0, 0.5), &device).require_grad()
            })
            .collect();
        let initial = || {
            vec![
                LstmState::new(cells[0].clone(), cells[1].clone()),
                LstmState::new(cells[2].clone(), cells[3].clone()),
            ]
        };

        let (out_a, states_a) = stepwise.forward(input.clone(), Some(initial()));
        let (out_b, states_b) = fused.forward(input.clone(), Some(initial()));
        assert_tensors_close(out_b.clone(), out_a.clone(), 1e-5);
        for (a, b) in states_a.iter().zip(&states_b) {
            assert_tensors_close(b.cell.clone(), a.cell.clone(), 1e-5);
            assert_tensors_close(b.hidden.clone(), a.hidden.clone(), 1e-5);
        }

        // A loss that weighs every output and the final cell state differently.
        let loss = |out: Tensor<TestAutodiffBackend, 3>, states: &[LstmState<_, 2>]| {
            (out * out_b.clone().detach()).sum()
                + (states[1].cell.clone() * states_b[1].cell.clone().detach()).sum()
        };
        let grads_a = loss(out_a, &states_a).backward();
        let grads_b = loss(out_b.clone(), &states_b).backward();
        assert_tensors_close(
            input.grad(&grads_b).unwrap(),
            input.grad(&grads_a).unwrap(),
            1e-5,
        );
        let w = |m: &StackedLstm<TestAutodiffBackend>| {
            m.layers[0].forget_gate.hidden_transform.weight.val()
        };
        assert_tensors_close::<TestBackend, 2>(
            w(&fused).grad(&grads_b).unwrap(),
            w(&stepwise).grad(&grads_a).unwrap(),
            1e-5,
        );
        for cell in &cells {
            assert_tensors_close(
                cell.grad(&grads_b).unwrap(),
                cell.grad(&grads_a).unwrap(),
                1e-5,
            );
        }
    }

    #[test]
    fn fused_matches_burns_lstm_forward_and_gradients() {
        check_fused_against_burn(3);
    }

    #[cfg(feature = "ndarray-kernels")]
    #[test]
    fn fused_matches_burn_whatever_the_split_of_the_batch_across_threads() {
        // The native recurrence gives each thread a block of sequences: 5 sequences on 1, 2
        // and 3 threads are one block, blocks of 3 + 2, and of 2 + 2 + 1.
        for threads in [1, 2, 3] {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool")
                .install(|| check_fused_against_burn(5));
        }
    }

    #[test]
    fn zero_state_is_the_default() {
        let device = Default::default();
        let lstm: StackedLstm<TestBackend> = StackedLstmConfig::new(3, 4, 1).init(&device);
        let input = Tensor::random([2, 5, 3], Distribution::Normal(0.0, 1.0), &device);
        let zeros = vec![LstmState::new(
            Tensor::zeros([2, 4], &device),
            Tensor::zeros([2, 4], &device),
        )];
        let (a, _) = lstm.forward(input.clone(), None);
        let (b, _) = lstm.forward(input, Some(zeros));
        assert_tensors_close(a, b, 0.0);
    }
}
