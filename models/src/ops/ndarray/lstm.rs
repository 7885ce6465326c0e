//! One LSTM layer as a single native operation on ndarray, with back-propagation through time
//! written out by hand.
//!
//! Forward: `X·W_x + b` for the whole sequence in one matrix product, then per step
//! `h_{t−1}·W_h` and the gate arithmetic. Backward, from the last step to the first:
//! `dc = dc_{t+1}·f_{t+1} + dh·o·(1 − tanh²c)`, the gate gradients `dG_t`, and
//! `dh_{t−1} = dG_t·W_hᵀ`; then `∂W_x = Xᵀ·dG`, `∂W_h = H_prevᵀ·dG`, `∂b = Σ dG` and
//! `∂X = dG·W_xᵀ` as single matrix products over all steps.
//!
//! The recurrence of each sequence of the batch is independent of the others', so the batch is
//! split across rayon's threads and each thread runs every time step of its sequences, its
//! `h_{t−1}·W_h` included, without waiting for the others (one fork per layer and pass, where
//! splitting each step's product across the threads forked and joined at every step and left
//! the gate arithmetic to one thread).
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
use rayon::prelude::*;

use super::bridge::{
    Ad, Inner, f32_array, nd_tensor, primitive_of, register_gradients, slice, tensor_of,
};
use super::fast_math::{sigmoid, tanh};
use super::fill::zeros;
use super::gemm::gemm;
use super::matmul::{bias_rows, column_sums};
use super::matrix::Matrix;
use super::simd::vectorized;
use crate::ops::dispatch::Native;

#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    time: usize,
    input: usize,
    hidden: usize,
}

impl Dims {
    /// Sequences per task of the recurrence: the batch split evenly across rayon's threads.
    /// Each sequence's recurrence is independent of the others', so a task runs all the time
    /// steps of its sequences without waiting for the other tasks.
    fn sequences_per_task(self) -> usize {
        self.batch
            .div_ceil(rayon::current_num_threads().max(1))
            .max(1)
    }
}

/// Everything the backward pass needs, kept from the forward pass. Every buffer is laid out
/// sequence by sequence (`[batch, …]`), so that the tasks of the recurrence own contiguous
/// parts of it.
#[derive(Debug)]
struct Saved {
    input: ArcArray<f32, IxDyn>,
    w_x: ArcArray<f32, IxDyn>,
    w_h: ArcArray<f32, IxDyn>,
    /// Activated gates, `[batch, time, 4H]`.
    gates: Vec<f32>,
    /// `c_0 … c_T`, `[batch, time + 1, H]`.
    cells: Vec<f32>,
    /// `h_0 … h_{T−1}`, the state before each step, `[batch, time, H]`.
    previous_hiddens: Vec<f32>,
    dims: Dims,
}

/// The buffers of one task of the recurrence: its sequences' rows of each.
struct Sequences<'a> {
    gates: &'a mut [f32],
    cells: &'a mut [f32],
    previous_hiddens: &'a mut [f32],
    /// `h_1 … h_T`, `[batch, time, H]`.
    hiddens: &'a mut [f32],
    /// `c_T`, `[batch, H]`.
    last_cells: &'a mut [f32],
}

/// The forward pass; returns the packed output `[batch·time + batch, H]` (the first `batch·time`
/// rows are `h_1 … h_T` of each sequence, `[batch, time, H]`, the last `batch` rows `c_T`) and
/// what the backward pass needs.
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
    // X·W_x + b for every (b, t) row at once: the gates before the recurrent term.
    let mut gates = bias_rows(batch * time, slice(&bias));
    gemm(
        batch * time,
        d_in,
        g4,
        Matrix::row_major(slice(&input), d_in),
        Matrix::row_major(slice(&w_x), g4),
        1.0,
        &mut gates,
    );

    let mut cells = zeros(batch * (time + 1) * hidden);
    let mut previous_hiddens = zeros(batch * time * hidden);
    let mut output = zeros((batch * time + batch) * hidden);
    let (hiddens, last_cells) = output.split_at_mut(batch * time * hidden);
    let (h_0, c_0) = slice(&state).split_at(batch * hidden);
    for b in 0..batch {
        let row = b * hidden..(b + 1) * hidden;
        previous_hiddens[b * time * hidden..][..hidden].copy_from_slice(&h_0[row.clone()]);
        cells[b * (time + 1) * hidden..][..hidden].copy_from_slice(&c_0[row]);
    }
    let per_task = dims.sequences_per_task();
    gates
        .par_chunks_mut((per_task * time * g4).max(1))
        .zip(cells.par_chunks_mut((per_task * (time + 1) * hidden).max(1)))
        .zip(previous_hiddens.par_chunks_mut((per_task * time * hidden).max(1)))
        .zip(hiddens.par_chunks_mut((per_task * time * hidden).max(1)))
        .zip(last_cells.par_chunks_mut((per_task * hidden).max(1)))
        .for_each(
            |((((gates, cells), previous_hiddens), hiddens), last_cells)| {
                let sequences = Sequences {
                    gates,
                    cells,
                    previous_hiddens,
                    hiddens,
                    last_cells,
                };
                vectorized(|| forward_sequences(sequences, slice(&w_h), dims));
            },
        );
    (
        output,
        Saved {
            input,
            w_x,
            w_h,
            gates,
            cells,
            previous_hiddens,
            dims,
        },
    )
}

/// The recurrence of one task's sequences, on the calling thread: per step `h_{t−1}·W_h` for
/// its sequences, then `i, f, o = σ(…)`, `g = tanh(…)`, `c_t = f ⊙ c_{t−1} + i ⊙ g`,
/// `h_t = o ⊙ tanh(c_t)`. `gates` holds `X·W_x + b` on entry and the activated gates on return.
/// Inlined into its caller's [`vectorized`] call, so that its loops run wide.
#[inline(always)]
fn forward_sequences(task: Sequences<'_>, w_h: &[f32], dims: Dims) {
    let Dims { time, hidden, .. } = dims;
    let g4 = 4 * hidden;
    let count = task.gates.len() / (time * g4);
    let mut recurrent = vec![0.0_f32; count * g4];
    for t in 0..time {
        // h_{t−1} of the task's sequences: rows `time · H` apart.
        let h_previous = Matrix {
            data: &task.previous_hiddens[t * hidden..],
            row_stride: (time * hidden) as isize,
            col_stride: 1,
        };
        gemm(
            count,
            hidden,
            g4,
            h_previous,
            Matrix::row_major(w_h, g4),
            0.0,
            &mut recurrent,
        );
        for b in 0..count {
            let gate = &mut task.gates[(b * time + t) * g4..][..g4];
            activate_gates(gate, &recurrent[b * g4..][..g4], hidden);
            let (before, after) = task.cells.split_at_mut((b * (time + 1) + t + 1) * hidden);
            let h = &mut task.hiddens[(b * time + t) * hidden..][..hidden];
            cell_step(
                gate,
                &before[(b * (time + 1) + t) * hidden..][..hidden],
                &mut after[..hidden],
                h,
            );
            if t + 1 < time {
                task.previous_hiddens[(b * time + t + 1) * hidden..][..hidden].copy_from_slice(h);
            }
        }
    }
    for b in 0..count {
        let c_last = &task.cells[(b * (time + 1) + time) * hidden..][..hidden];
        task.last_cells[b * hidden..][..hidden].copy_from_slice(c_last);
    }
}

/// `x + recurrent` for one row of gates, then `σ` on the input, forget and output gates and
/// `tanh` on the cell candidate, in place.
#[inline(always)]
fn activate_gates(gate: &mut [f32], recurrent: &[f32], hidden: usize) {
    for (g, &r) in gate.iter_mut().zip(recurrent) {
        *g += r;
    }
    let (sig, cand) = gate.split_at_mut(3 * hidden);
    sig.iter_mut().for_each(|x| *x = sigmoid(*x));
    cand.iter_mut().for_each(|x| *x = tanh(*x));
}

/// `c_t = f ⊙ c_{t−1} + i ⊙ g` and `h_t = o ⊙ tanh(c_t)` for one sequence, from its activated
/// `gate` row. The arguments are distinct slices, which lets the compiler vectorise the loop
/// without checking that the outputs overlap the inputs.
#[inline(always)]
fn cell_step(gate: &[f32], c_previous: &[f32], c: &mut [f32], h: &mut [f32]) {
    let hidden = c.len();
    let (i, f, o, g) = split_gates(gate, hidden);
    let (i, f, o, g) = (&i[..hidden], &f[..hidden], &o[..hidden], &g[..hidden]);
    let c_previous = &c_previous[..hidden];
    for u in 0..hidden {
        c[u] = f[u] * c_previous[u] + i[u] * g[u];
        h[u] = o[u] * tanh(c[u]);
    }
}

/// One sequence's gate gradients at one step (`∂i, ∂f, ∂o, ∂g`), from its activated gates,
/// `c_{t−1}`, `c_t`, `∂h_t` from the output and from step t + 1, and `dc_next` (`∂c_t` from step
/// t + 1, which becomes `∂c_{t−1}`): `dc = dc_next + dh·o·(1 − tanh²c)`, `∂i = dc·g·i(1 − i)`,
/// `∂f = dc·c_{t−1}·f(1 − f)`, `∂o = dh·tanh c·o(1 − o)`, `∂g = dc·i·(1 − g²)`. Every slice is
/// its own argument, as in [`cell_step`]: the compiler then knows that none overlaps another.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gate_gradients(
    (i, f, o, g): (&[f32], &[f32], &[f32], &[f32]),
    c_previous: &[f32],
    c: &[f32],
    dh_out: &[f32],
    dh_next: &[f32],
    dc_next: &mut [f32],
    d_i: &mut [f32],
    d_f: &mut [f32],
    d_o: &mut [f32],
    d_g: &mut [f32],
) {
    let hidden = dc_next.len();
    let (i, f, o, g) = (&i[..hidden], &f[..hidden], &o[..hidden], &g[..hidden]);
    let (c_previous, c, dh_out, dh_next) = (
        &c_previous[..hidden],
        &c[..hidden],
        &dh_out[..hidden],
        &dh_next[..hidden],
    );
    let (d_i, d_f, d_o, d_g) = (
        &mut d_i[..hidden],
        &mut d_f[..hidden],
        &mut d_o[..hidden],
        &mut d_g[..hidden],
    );
    for u in 0..hidden {
        let dh = dh_out[u] + dh_next[u];
        let tanh_c = tanh(c[u]);
        let dc = dc_next[u] + dh * o[u] * (1.0 - tanh_c * tanh_c);
        d_i[u] = dc * g[u] * i[u] * (1.0 - i[u]);
        d_f[u] = dc * c_previous[u] * f[u] * (1.0 - f[u]);
        d_o[u] = dh * tanh_c * o[u] * (1.0 - o[u]);
        d_g[u] = dc * i[u] * (1.0 - g[u] * g[u]);
        dc_next[u] = dc * f[u];
    }
}

/// The four gates of a row of `4H` values: input, forget, output, cell candidate.
fn split_gates(row: &[f32], hidden: usize) -> (&[f32], &[f32], &[f32], &[f32]) {
    let (i, rest) = row.split_at(hidden);
    let (f, rest) = rest.split_at(hidden);
    let (o, g) = rest.split_at(hidden);
    (i, f, o, g)
}

/// [`split_gates`] for a row being written.
fn split_gates_mut(row: &mut [f32], hidden: usize) -> [&mut [f32]; 4] {
    let (i, rest) = row.split_at_mut(hidden);
    let (f, rest) = rest.split_at_mut(hidden);
    let (o, g) = rest.split_at_mut(hidden);
    [i, f, o, g]
}

/// Gradients of the five inputs (x, W_x, W_h, b, packed initial state) from the gradient of
/// the packed output.
fn backward(saved: &Saved, grad: &[f32]) -> [Vec<f32>; 5] {
    let dims = saved.dims;
    let Dims {
        batch,
        time,
        input: d_in,
        hidden,
    } = dims;
    let g4 = 4 * hidden;
    let per_task = dims.sequences_per_task();
    let mut d_gates = zeros(batch * time * g4); // rows (b, t)
    // Each task: the gate gradients of its sequences, and their ∂h_0 and ∂c_0.
    let initial: Vec<(Vec<f32>, Vec<f32>)> = d_gates
        .par_chunks_mut((per_task * time * g4).max(1))
        .enumerate()
        .map(|(task, d_gates)| {
            let first = task * per_task;
            let count = d_gates.len() / (time * g4);
            let rows = |length: usize| first * length..(first + count) * length;
            vectorized(|| {
                backward_sequences(
                    d_gates,
                    &saved.gates[rows(time * g4)],
                    &saved.cells[rows((time + 1) * hidden)],
                    [
                        &grad[rows(time * hidden)],
                        &grad[batch * time * hidden..][rows(hidden)],
                    ],
                    slice(&saved.w_h),
                    dims,
                )
            })
        })
        .collect();
    let mut d_state = Vec::with_capacity(2 * batch * hidden);
    d_state.extend(initial.iter().flat_map(|(d_h, _)| d_h));
    d_state.extend(initial.iter().flat_map(|(_, d_c)| d_c));

    let rows = batch * time;
    let mut d_w_x = zeros(d_in * g4);
    gemm(
        d_in,
        rows,
        g4,
        Matrix::transposed(slice(&saved.input), d_in),
        Matrix::row_major(&d_gates, g4),
        0.0,
        &mut d_w_x,
    );
    // H_prev rows (b, t) = h_t, the state before step t + 1.
    let mut d_w_h = zeros(hidden * g4);
    gemm(
        hidden,
        rows,
        g4,
        Matrix::transposed(&saved.previous_hiddens, hidden),
        Matrix::row_major(&d_gates, g4),
        0.0,
        &mut d_w_h,
    );
    let d_bias = column_sums(&d_gates, g4);
    let mut d_input = zeros(rows * d_in);
    gemm(
        rows,
        g4,
        d_in,
        Matrix::row_major(&d_gates, g4),
        Matrix::transposed(slice(&saved.w_x), g4),
        0.0,
        &mut d_input,
    );
    [d_input, d_w_x, d_w_h, d_bias, d_state]
}

/// Back-propagation through time for one task's sequences, on the calling thread, from the
/// last step to the first: `dc = dc_{t+1}·f_{t+1} + dh·o·(1 − tanh²c)`, the gate gradients
/// `dG_t` (into `d_gates`), and `dh_{t−1} = dG_t·W_hᵀ`. `gates`, `cells` and `grad` are the
/// task's sequences' rows of the saved gates, of the cells and of the two parts of the packed
/// output's gradient (`∂h_1 … ∂h_T`, `∂c_T`). Returns `∂h_0` and `∂c_0` of the sequences.
/// Inlined into its caller's [`vectorized`] call, as [`forward_sequences`].
#[inline(always)]
fn backward_sequences(
    d_gates: &mut [f32],
    gates: &[f32],
    cells: &[f32],
    [grad_hiddens, grad_last_cells]: [&[f32]; 2],
    w_h: &[f32],
    dims: Dims,
) -> (Vec<f32>, Vec<f32>) {
    let Dims { time, hidden, .. } = dims;
    let g4 = 4 * hidden;
    let count = d_gates.len() / (time * g4);
    let mut dh_next = vec![0.0_f32; count * hidden];
    let mut dc_next = grad_last_cells.to_vec();
    for t in (0..time).rev() {
        for b in 0..count {
            // Rows of the cells, [batch, time + 1, H].
            let at = |step: usize| (b * (time + 1) + step) * hidden;
            let [d_i, d_f, d_o, d_g] =
                split_gates_mut(&mut d_gates[(b * time + t) * g4..][..g4], hidden);
            gate_gradients(
                split_gates(&gates[(b * time + t) * g4..][..g4], hidden),
                &cells[at(t)..][..hidden],
                &cells[at(t + 1)..][..hidden],
                &grad_hiddens[(b * time + t) * hidden..][..hidden],
                &dh_next[b * hidden..][..hidden],
                &mut dc_next[b * hidden..][..hidden],
                d_i,
                d_f,
                d_o,
                d_g,
            );
        }
        // dh_{t−1} = dG_t · W_hᵀ, with dG_t the rows (·, t) of the task's d_gates.
        let d_gate_t = Matrix {
            data: &d_gates[t * g4..],
            row_stride: (time * g4) as isize,
            col_stride: 1,
        };
        gemm(
            count,
            g4,
            hidden,
            d_gate_t,
            Matrix::transposed(w_h, g4),
            0.0,
            &mut dh_next,
        );
    }
    (dh_next, dc_next)
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

/// The packed output `[batch·time + batch, H]` of one LSTM layer, `B` being the ndarray backend
/// `native`: the first `batch·time` rows are `h_1 … h_T` of each sequence in turn (read as
/// `[batch, time, H]` without a copy), the last `batch` rows `c_T`. `state` packs `h_0` and
/// `c_0` as `[2, batch, H]`.
pub(crate) fn lstm_layer<B: Backend>(
    native: Native,
    input: Tensor<B, 3>,
    w_x: Tensor<B, 2>,
    w_h: Tensor<B, 2>,
    bias: Tensor<B, 1>,
    state: Tensor<B, 3>,
) -> Tensor<B, 2> {
    let [batch, time, d_in] = input.dims();
    let hidden = w_h.dims()[0];
    let dims = Dims {
        batch,
        time,
        input: d_in,
        hidden,
    };
    let shape = [batch * time + batch, hidden];
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
            tensor_of::<Ad, _, 2>(output)
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
            tensor_of::<Inner, _, 2>(nd_tensor(output, &shape))
        }
    }
}
