//! The LSTM recurrence of one layer, on the route the [dispatch](crate::ops::dispatch) gives for
//! the layer's [`LstmAlgorithm`] and the backend: Burn's `Lstm::forward`, or the fused recurrence
//! (all four gates in one product) natively on ndarray or with tensor operations elsewhere.

use burn::nn::lstm::{Lstm, LstmState};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, s};

use crate::ops::dispatch::{self, LstmAlgorithm, Native, Recurrence};
#[cfg(feature = "ndarray-kernels")]
use crate::ops::reshape::reshape;

/// One LSTM layer over `input: [batch, time, d_input]` from `state` (zeros when `None`): the
/// outputs `[batch, time, d_hidden]` and the final state.
pub(crate) fn lstm_layer<B: Backend>(
    layer: &Lstm<B>,
    input: Tensor<B, 3>,
    state: Option<LstmState<B, 2>>,
    algorithm: LstmAlgorithm,
) -> (Tensor<B, 3>, LstmState<B, 2>) {
    match dispatch::recurrence::<B>(algorithm) {
        Recurrence::Stepwise => layer.forward(input, state),
        Recurrence::FusedTensorOps => fused(layer, input, state, None),
        Recurrence::Native(native) => fused(layer, input, state, Some(native)),
    }
}

/// One LSTM layer, computed as `X·W_x` for the whole sequence and `h_{t−1}·W_h` per step, with
/// the four gates side by side: `i_t, f_t, o_t = σ(…)`, `g_t = tanh(…)`,
/// `c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t`, `h_t = o_t ⊙ tanh(c_t)`; the recurrence natively on
/// `native` where the dispatch found an ndarray backend, with tensor operations otherwise.
fn fused<B: Backend>(
    layer: &Lstm<B>,
    input: Tensor<B, 3>,
    state: Option<LstmState<B, 2>>,
    native: Option<Native>,
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
    if let Some(native) = native {
        let packed_state = match state {
            Some(state) => Tensor::stack::<3>(vec![state.hidden, state.cell], 0),
            None => Tensor::zeros([2, batch, hidden], &device),
        };
        let packed =
            crate::ops::ndarray::lstm::lstm_layer(native, input, w_x, w_h, bias, packed_state);
        // Rows (b, t) for h_1 … h_T, a leading block read in place; then c_T of each sequence.
        let rows = batch * time;
        let output = reshape(
            packed.clone().slice([0..rows, 0..hidden]),
            [batch, time, hidden],
        );
        let last_hidden = output
            .clone()
            .slice([0..batch, time - 1..time, 0..hidden])
            .reshape([batch, hidden]);
        let last_cell = packed.slice([rows..rows + batch, 0..hidden]);
        return (output, LstmState::new(last_cell, last_hidden));
    }
    #[cfg(not(feature = "ndarray-kernels"))]
    let _ = native;
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
