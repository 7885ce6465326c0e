//! The LSTM language model, with a tied full softmax and with an adaptive softmax, against
//! PyTorch (`nn.LSTM`, `nn.AdaptiveLogSoftmaxWithLoss`).

use burn::backend::{Autodiff, NdArray, Wgpu};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use radam_train::models::lstm::LstmAlgorithm;
use radam_train::models::lstm_lm::{LmOutputLayer, LstmLm, LstmLmConfig};
use radam_train::models::state_dict::StateDict;

use crate::{Errors, common, errors, on_every_kernel_path, reference};

/// The token ids `name` (`[streams, time]`) of the reference on `device`.
fn tokens<B: Backend>(dict: &StateDict, name: &str, device: &B::Device) -> Tensor<B, 2, Int> {
    let (shape, ids) = dict.i64(name).unwrap();
    Tensor::from_data(TensorData::new(ids, shape), device)
}

/// The mean next-word loss of `model` on batch `index`, each stream starting from zero state.
fn loss<B: Backend>(
    model: &LstmLm<B>,
    dict: &StateDict,
    index: usize,
    device: &B::Device,
) -> Tensor<B, 1> {
    let inputs = tokens(dict, &format!("batch{index}.inputs"), device);
    let targets = tokens(dict, &format!("batch{index}.targets"), device);
    model.forward_lm(inputs, targets, None).0.loss
}

/// The model of the reference `name`, as `tools/model_parity_reference.py` builds it.
fn config(name: &str) -> LstmLmConfig {
    let config = match name {
        "lstm_lm_tied" => LstmLmConfig::small(50),
        "lstm_lm_adaptive" => LstmLmConfig::new(60).with_output(LmOutputLayer::Adaptive {
            cutoffs: vec![6, 20],
            div_value: 4.0,
        }),
        other => panic!("no reference {other}"),
    };
    config
        .with_d_embedding(16)
        .with_d_hidden(32)
        .with_num_layers(2)
        .with_dropout(0.0)
}

fn lm_errors<B: AutodiffBackend>(
    name: &str,
    algorithm: LstmAlgorithm,
    device: &B::Device,
) -> Errors {
    let dict = reference(name);
    let build = |weights: &StateDict| -> LstmLm<B> {
        config(name)
            .with_lstm_algorithm(algorithm)
            .init::<B>(device)
            .load_state_dict(weights)
            .unwrap()
    };
    errors(
        &dict,
        build,
        |model, index| loss(model, &dict, index, device),
        |model| loss(model, &dict, 0, device),
    )
}

const CASES: [&str; 2] = ["lstm_lm_tied", "lstm_lm_adaptive"];

#[test]
fn lstm_lm_on_ndarray_every_kernel_path() {
    let _turn = common::serial();
    type B = Autodiff<NdArray<f32>>;
    for name in CASES {
        on_every_kernel_path(&format!("{name}, fused LSTM"), || {
            lm_errors::<B>(name, LstmAlgorithm::Fused, &Default::default())
        });
        // Burn's own LSTM, step by step.
        lm_errors::<B>(name, LstmAlgorithm::Stepwise, &Default::default())
            .check(&format!("{name}, ndarray, Burn's Lstm"));
    }
}

#[test]
fn lstm_lm_on_wgpu() {
    let _turn = common::serial();
    let Some(device) = common::wgpu_device_or_skip("lstm_lm_on_wgpu") else {
        return;
    };
    for name in CASES {
        lm_errors::<Autodiff<Wgpu<f32, i32>>>(name, LstmAlgorithm::Fused, &device)
            .check(&format!("{name}, wgpu"));
    }
}
