//! Stacked LSTM layers over Burn's `Lstm` parameters, with two interchangeable algorithms.

use burn::config::Config;
use burn::module::{Ignored, Module};
use burn::nn::lstm::{Lstm, LstmConfig, LstmState};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, s};
use serde::{Deserialize, Serialize};

use crate::dropout::dropout;

/// How a [`StackedLstm`] runs its recurrence (same parameters, same results).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LstmAlgorithm {
    /// Burn's `Lstm::forward`: eight matrix products per time step (one per gate for the input
    /// and for the hidden state) and a `slice_assign` of every step's output.
    Stepwise,
    /// The input projection of all four gates for the whole sequence in one matrix product,
    /// then one matrix product per step for the recurrent part of all four gates.
    #[default]
    Fused,
}

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
    /// Builds the layers on `device` with Burn's default LSTM initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device) -> StackedLstm<B> {
        let layers = (0..self.num_layers)
            .map(|layer| {
                let d_input = if layer == 0 {
                    self.d_input
                } else {
                    self.d_hidden
                };
                LstmConfig::new(d_input, self.d_hidden, true).init(device)
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
            let (output, state) = match self.algorithm.0 {
                LstmAlgorithm::Stepwise => layer.forward(x, state),
                LstmAlgorithm::Fused => fused_lstm_forward(layer, x, state),
            };
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

/// One LSTM layer, computed as `X·W_x` for the whole sequence and `h_{t−1}·W_h` per step, with
/// the four gates side by side: `i_t, f_t, o_t = σ(…)`, `g_t = tanh(…)`,
/// `c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t`, `h_t = o_t ⊙ tanh(c_t)`.
pub fn fused_lstm_forward<B: Backend>(
    layer: &Lstm<B>,
    input: Tensor<B, 3>,
    state: Option<LstmState<B, 2>>,
) -> (Tensor<B, 3>, LstmState<B, 2>) {
    let [batch, time, d_input] = input.dims();
    assert!(time > 0, "an LSTM needs at least one time step");
    let hidden = layer.d_hidden;
    let device = input.device();
    // Gate order in the fused matrices: input, forget, output (sigmoid), then cell (tanh).
    let gates = [
        &layer.input_gate,
        &layer.forget_gate,
        &layer.output_gate,
        &layer.cell_gate,
    ];
    let w_x = Tensor::cat(
        gates
            .iter()
            .map(|g| g.input_transform.weight.val())
            .collect(),
        1,
    );
    let w_h = Tensor::cat(
        gates
            .iter()
            .map(|g| g.hidden_transform.weight.val())
            .collect(),
        1,
    );
    let biases: Vec<Tensor<B, 1>> = gates
        .iter()
        .map(|g| {
            let zero = || Tensor::zeros([hidden], &device);
            let b_x = g
                .input_transform
                .bias
                .as_ref()
                .map_or_else(zero, |b| b.val());
            let b_h = g
                .hidden_transform
                .bias
                .as_ref()
                .map_or_else(zero, |b| b.val());
            b_x + b_h
        })
        .collect();
    let bias = Tensor::cat(biases, 0);

    #[cfg(feature = "ndarray-kernels")]
    let (input, w_x, w_h, bias, state) = {
        let packed_state = match state {
            Some(state) => Tensor::stack::<3>(vec![state.hidden, state.cell], 0),
            None => Tensor::zeros([2, batch, hidden], &device),
        };
        match crate::ndarray_kernels::lstm::lstm_layer(input, w_x, w_h, bias, packed_state) {
            Ok(packed) => {
                // Rows 0..T: h_1 … h_T; row T: c_T.
                let output = packed.clone().slice([0..batch, 0..time, 0..hidden]);
                let last_hidden = output
                    .clone()
                    .slice([0..batch, time - 1..time, 0..hidden])
                    .reshape([batch, hidden]);
                let last_cell = packed
                    .slice([0..batch, time..time + 1, 0..hidden])
                    .reshape([batch, hidden]);
                return (output, LstmState::new(last_cell, last_hidden));
            }
            Err((input, w_x, w_h, bias, packed_state)) => {
                let hidden_state = packed_state
                    .clone()
                    .slice([0..1, 0..batch, 0..hidden])
                    .reshape([batch, hidden]);
                let cell = packed_state
                    .slice([1..2, 0..batch, 0..hidden])
                    .reshape([batch, hidden]);
                (
                    input,
                    w_x,
                    w_h,
                    bias,
                    Some(LstmState::new(cell, hidden_state)),
                )
            }
        }
    };
    let bias = bias.unsqueeze_dim::<2>(0);

    // [batch·time, 4H], then [batch, time, 4H].
    let projected = (input.reshape([batch * time, d_input]).matmul(w_x) + bias).reshape([
        batch,
        time,
        4 * hidden,
    ]);

    let (mut cell, mut hidden_state) = match state {
        Some(state) => (state.cell, state.hidden),
        None => (
            Tensor::zeros([batch, hidden], &device),
            Tensor::zeros([batch, hidden], &device),
        ),
    };
    let mut outputs = Vec::with_capacity(time);
    for t in 0..time {
        let pre = projected
            .clone()
            .slice(s![.., t, ..])
            .reshape([batch, 4 * hidden])
            + hidden_state.matmul(w_h.clone());
        let sig = sigmoid(pre.clone().slice(s![.., 0..3 * hidden]));
        let input_gate = sig.clone().slice(s![.., 0..hidden]);
        let forget_gate = sig.clone().slice(s![.., hidden..2 * hidden]);
        let output_gate = sig.slice(s![.., 2 * hidden..3 * hidden]);
        let candidate = pre.slice(s![.., 3 * hidden..4 * hidden]).tanh();
        cell = forget_gate * cell + input_gate * candidate;
        hidden_state = output_gate * cell.clone().tanh();
        outputs.push(hidden_state.clone().unsqueeze_dim::<3>(1));
    }
    let output = Tensor::cat(outputs, 1);
    (output, LstmState::new(cell, hidden_state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend, TestBackend, assert_tensors_close};
    use burn::tensor::Distribution;

    #[test]
    fn fused_matches_burns_lstm_forward_and_gradients() {
        let device = Default::default();
        let stepwise: StackedLstm<TestAutodiffBackend> = StackedLstmConfig::new(5, 7, 2)
            .with_algorithm(LstmAlgorithm::Stepwise)
            .init(&device);
        let fused: StackedLstm<TestAutodiffBackend> = StackedLstmConfig::new(5, 7, 2)
            .init(&device)
            .load_record(stepwise.clone().into_record());
        let input = Tensor::<TestAutodiffBackend, 3>::random(
            [3, 4, 5],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let cells: Vec<Tensor<TestAutodiffBackend, 2>> = (0..4)
            .map(|_| Tensor::random([3, 7], Distribution::Normal(0.0, 0.5), &device))
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

        let grads_a = (out_a * out_b.clone().detach()).sum().backward();
        let grads_b = (out_b.clone() * out_b.detach()).sum().backward();
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
