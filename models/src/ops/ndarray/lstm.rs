//! One LSTM layer as a single native operation on ndarray, with back-propagation through time
//! written out by hand.
//!
//! Forward: `X·W_x + b` for the whole sequence in one matrix product, then per step
//! `h_{t−1}·W_h` and the gate arithmetic. Backward, from the last step to the first:
//! `dc = dc_{t+1}·f_{t+1} + dh·o·(1 − tanh²c)`, the gate gradients `dG_t`, and
//! `dh_{t−1} = dG_t·W_hᵀ`; then `∂W_x = Xᵀ·dG`, `∂W_h = H_prevᵀ·dG`, `∂b = Σ dG` and
//! `∂X = dG·W_xᵀ` as single matrix products over all steps.
//!
//! Gate order along the `4H` axis: input, forget, output (sigmoid), cell candidate (tanh).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use ndarray::{ArcArray, IxDyn};

use super::bridge::{
    Ad, Inner, f32_array, nd_tensor, primitive_of, register_gradients, slice, tensor_of,
};
use super::fast_math::{sigmoid, tanh};
use super::fill::zeros;
use super::gemm::gemm;
use super::matrix::Matrix;
use crate::ops::dispatch::Native;

#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    time: usize,
    input: usize,
    hidden: usize,
}

/// Everything the backward pass needs, kept from the forward pass.
#[derive(Debug)]
struct Saved {
    input: ArcArray<f32, IxDyn>,
    w_x: ArcArray<f32, IxDyn>,
    w_h: ArcArray<f32, IxDyn>,
    /// Activated gates, `[time, batch, 4H]`.
    gates: Vec<f32>,
    /// `c_0 … c_T`, `[time + 1, batch, H]`.
    cells: Vec<f32>,
    /// `h_0 … h_T`, `[time + 1, batch, H]`.
    hiddens: Vec<f32>,
    dims: Dims,
}

/// The forward pass; returns the packed output `[batch, time + 1, H]` (rows `0..T` are
/// `h_1 … h_T`, row `T` is `c_T`) and what the backward pass needs.
fn forward(
    input: NdArrayTensor,
    w_x: NdArrayTensor,
    w_h: NdArrayTensor,
    bias: NdArrayTensor,
    state: NdArrayTensor,
    dims: Dims,
) -> (Vec<f32>, Saved) {
    let Dims {
        batch,
        time,
        input: d_in,
        hidden,
    } = dims;
    let (input, w_x, w_h, bias, state) = (
        f32_array(input),
        f32_array(w_x),
        f32_array(w_h),
        f32_array(bias),
        f32_array(state),
    );
    let g4 = 4 * hidden;
    // X·W_x for every (b, t) row at once, then the bias.
    let mut projected = zeros(batch * time * g4);
    gemm(
        batch * time,
        d_in,
        g4,
        Matrix::row_major(slice(&input), d_in),
        Matrix::row_major(slice(&w_x), g4),
        0.0,
        &mut projected,
    );
    let bias = slice(&bias);
    for row in projected.chunks_mut(g4) {
        row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
    }

    let plane = batch * hidden;
    let mut gates = zeros(time * batch * g4);
    let mut cells = zeros((time + 1) * plane);
    let mut hiddens = zeros((time + 1) * plane);
    hiddens[..plane].copy_from_slice(&slice(&state)[..plane]);
    cells[..plane].copy_from_slice(&slice(&state)[plane..2 * plane]);
    let mut recurrent = vec![0.0_f32; batch * g4];
    for t in 0..time {
        gemm(
            batch,
            hidden,
            g4,
            Matrix::row_major(&hiddens[t * plane..(t + 1) * plane], hidden),
            Matrix::row_major(slice(&w_h), g4),
            0.0,
            &mut recurrent,
        );
        for b in 0..batch {
            let pre = &projected[(b * time + t) * g4..(b * time + t + 1) * g4];
            let rec = &recurrent[b * g4..(b + 1) * g4];
            let gate = &mut gates[(t * batch + b) * g4..(t * batch + b + 1) * g4];
            for ((g, &p), &r) in gate.iter_mut().zip(pre).zip(rec) {
                *g = p + r;
            }
            let (sig, cand) = gate.split_at_mut(3 * hidden);
            sig.iter_mut().for_each(|x| *x = sigmoid(*x));
            cand.iter_mut().for_each(|x| *x = tanh(*x));
            let (c_prev_all, c_rest) = cells.split_at_mut((t + 1) * plane);
            let c_prev = &c_prev_all[t * plane + b * hidden..t * plane + (b + 1) * hidden];
            let c = &mut c_rest[b * hidden..(b + 1) * hidden];
            let h = &mut hiddens[(t + 1) * plane + b * hidden..(t + 1) * plane + (b + 1) * hidden];
            for u in 0..hidden {
                // c_t = f ⊙ c_{t−1} + i ⊙ g ;  h_t = o ⊙ tanh(c_t)
                let (i, f, o, g) = (
                    gate[u],
                    gate[hidden + u],
                    gate[2 * hidden + u],
                    gate[3 * hidden + u],
                );
                c[u] = f * c_prev[u] + i * g;
                h[u] = o * tanh(c[u]);
            }
        }
    }

    let mut output = zeros(batch * (time + 1) * hidden);
    for b in 0..batch {
        for t in 0..time {
            let source = &hiddens[(t + 1) * plane + b * hidden..(t + 1) * plane + (b + 1) * hidden];
            output[(b * (time + 1) + t) * hidden..(b * (time + 1) + t + 1) * hidden]
                .copy_from_slice(source);
        }
        let c_last = &cells[time * plane + b * hidden..time * plane + (b + 1) * hidden];
        output[(b * (time + 1) + time) * hidden..(b * (time + 1) + time + 1) * hidden]
            .copy_from_slice(c_last);
    }
    (
        output,
        Saved {
            input,
            w_x,
            w_h,
            gates,
            cells,
            hiddens,
            dims,
        },
    )
}

/// Gradients of the five inputs (x, W_x, W_h, b, packed initial state) from the gradient of
/// the packed output.
fn backward(saved: &Saved, grad: &[f32]) -> [Vec<f32>; 5] {
    let Dims {
        batch,
        time,
        input: d_in,
        hidden,
    } = saved.dims;
    let g4 = 4 * hidden;
    let plane = batch * hidden;
    let mut d_gates = zeros(batch * time * g4); // rows (b, t)
    let mut dh_next = vec![0.0_f32; plane];
    let mut dc_next = vec![0.0_f32; plane];
    for b in 0..batch {
        dc_next[b * hidden..(b + 1) * hidden].copy_from_slice(
            &grad[(b * (time + 1) + time) * hidden..(b * (time + 1) + time + 1) * hidden],
        );
    }
    for t in (0..time).rev() {
        for b in 0..batch {
            let gate = &saved.gates[(t * batch + b) * g4..(t * batch + b + 1) * g4];
            let c = &saved.cells[(t + 1) * plane + b * hidden..(t + 1) * plane + (b + 1) * hidden];
            let c_prev = &saved.cells[t * plane + b * hidden..t * plane + (b + 1) * hidden];
            let dh_out = &grad[(b * (time + 1) + t) * hidden..(b * (time + 1) + t + 1) * hidden];
            let d_gate = &mut d_gates[(b * time + t) * g4..(b * time + t + 1) * g4];
            for u in 0..hidden {
                let (i, f, o, g) = (
                    gate[u],
                    gate[hidden + u],
                    gate[2 * hidden + u],
                    gate[3 * hidden + u],
                );
                let dh = dh_out[u] + dh_next[b * hidden + u];
                let tanh_c = tanh(c[u]);
                let dc = dc_next[b * hidden + u] + dh * o * (1.0 - tanh_c * tanh_c);
                d_gate[u] = dc * g * i * (1.0 - i);
                d_gate[hidden + u] = dc * c_prev[u] * f * (1.0 - f);
                d_gate[2 * hidden + u] = dh * tanh_c * o * (1.0 - o);
                d_gate[3 * hidden + u] = dc * i * (1.0 - g * g);
                dc_next[b * hidden + u] = dc * f;
            }
        }
        // dh_{t−1} = dG_t · W_hᵀ, with dG_t the rows (·, t) of d_gates.
        let d_gate_t = Matrix {
            data: &d_gates[t * g4..],
            row_stride: (time * g4) as isize,
            col_stride: 1,
        };
        gemm(
            batch,
            g4,
            hidden,
            d_gate_t,
            Matrix::transposed(slice(&saved.w_h), g4),
            0.0,
            &mut dh_next,
        );
    }

    let rows = batch * time;
    let mut d_w_x = vec![0.0_f32; d_in * g4];
    gemm(
        d_in,
        rows,
        g4,
        Matrix::transposed(slice(&saved.input), d_in),
        Matrix::row_major(&d_gates, g4),
        0.0,
        &mut d_w_x,
    );
    // H_prev rows (b, t) = h_t (the state before step t + 1).
    let mut h_prev = vec![0.0_f32; rows * hidden];
    for b in 0..batch {
        for t in 0..time {
            h_prev[(b * time + t) * hidden..(b * time + t + 1) * hidden].copy_from_slice(
                &saved.hiddens[t * plane + b * hidden..t * plane + (b + 1) * hidden],
            );
        }
    }
    let mut d_w_h = vec![0.0_f32; hidden * g4];
    gemm(
        hidden,
        rows,
        g4,
        Matrix::transposed(&h_prev, hidden),
        Matrix::row_major(&d_gates, g4),
        0.0,
        &mut d_w_h,
    );
    let mut d_bias = vec![0.0_f32; g4];
    for row in d_gates.chunks(g4) {
        d_bias.iter_mut().zip(row).for_each(|(acc, x)| *acc += x);
    }
    let mut d_input = vec![0.0_f32; rows * d_in];
    gemm(
        rows,
        g4,
        d_in,
        Matrix::row_major(&d_gates, g4),
        Matrix::transposed(slice(&saved.w_x), g4),
        0.0,
        &mut d_input,
    );
    let mut d_state = dh_next;
    d_state.extend_from_slice(&dc_next);
    [d_input, d_w_x, d_w_h, d_bias, d_state]
}

#[derive(Debug)]
struct LstmBackward;

impl Backward<Inner, 5> for LstmBackward {
    type State = std::sync::Arc<Saved>;

    fn backward(
        self,
        ops: Ops<Self::State, 5>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = f32_array(grads.consume::<Inner>(&ops.node));
        let saved = ops.state;
        let Dims {
            batch,
            time,
            input,
            hidden,
        } = saved.dims;
        let shapes: [Vec<usize>; 5] = [
            vec![batch, time, input],
            vec![input, 4 * hidden],
            vec![hidden, 4 * hidden],
            vec![4 * hidden],
            vec![2, batch, hidden],
        ];
        let gradients = backward(&saved, slice(&grad));
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        register_gradients(grads, parents, gradients, shapes);
    }
}

/// The packed output `[batch, time + 1, H]` of one LSTM layer (rows `0..T`: `h_1 … h_T`; row
/// `T`: `c_T`), `B` being the ndarray backend `native`. `state` packs `h_0` and `c_0` as
/// `[2, batch, H]`.
pub(crate) fn lstm_layer<B: Backend>(
    native: Native,
    input: Tensor<B, 3>,
    w_x: Tensor<B, 2>,
    w_h: Tensor<B, 2>,
    bias: Tensor<B, 1>,
    state: Tensor<B, 3>,
) -> Tensor<B, 3> {
    let [batch, time, d_in] = input.dims();
    let hidden = w_h.dims()[0];
    let dims = Dims {
        batch,
        time,
        input: d_in,
        hidden,
    };
    let shape = [batch, time + 1, hidden];
    match native {
        Native::NdArrayAutodiff => {
            let (input, w_x, w_h, bias, state) = (
                primitive_of::<Ad, _, 3>(input),
                primitive_of::<Ad, _, 2>(w_x),
                primitive_of::<Ad, _, 2>(w_h),
                primitive_of::<Ad, _, 1>(bias),
                primitive_of::<Ad, _, 3>(state),
            );
            let nodes = [
                input.node.clone(),
                w_x.node.clone(),
                w_h.node.clone(),
                bias.node.clone(),
                state.node.clone(),
            ];
            let (output, saved) = forward(
                input.primitive,
                w_x.primitive,
                w_h.primitive,
                bias.primitive,
                state.primitive,
                dims,
            );
            let output = nd_tensor(output, &shape);
            let output = match LstmBackward
                .prepare::<NoCheckpointing>(nodes)
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(std::sync::Arc::new(saved), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            };
            tensor_of::<Ad, _, 3>(output)
        }
        Native::NdArray => {
            let (output, _) = forward(
                primitive_of::<Inner, _, 3>(input),
                primitive_of::<Inner, _, 2>(w_x),
                primitive_of::<Inner, _, 2>(w_h),
                primitive_of::<Inner, _, 1>(bias),
                primitive_of::<Inner, _, 3>(state),
                dims,
            );
            tensor_of::<Inner, _, 3>(nd_tensor(output, &shape))
        }
    }
}
