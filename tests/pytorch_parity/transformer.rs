//! The Transformer encoder-decoder, post-norm and pre-norm with shared embeddings, and post-norm
//! with fairseq's architecture (`TransformerArchitecture::Fairseq`), with label smoothing and
//! padded sentences, against PyTorch's `nn.TransformerEncoder` and `nn.TransformerDecoder`.

use burn::backend::{Autodiff, NdArray, Wgpu};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use radam_train::models::batch::TranslationBatch;
use radam_train::models::state_dict::StateDict;
use radam_train::models::transformer::{
    TransformerArchitecture, TransformerNmt, TransformerNmtConfig,
};

use crate::{Errors, common, errors, on_every_kernel_path, reference};

/// The reference's padding id.
const PAD: i64 = 1;

/// Batch `index` of the reference on `device`.
fn batch<B: Backend>(dict: &StateDict, index: usize, device: &B::Device) -> TranslationBatch<B> {
    let ids = |part: &str| {
        let (shape, ids) = dict.i64(&format!("batch{index}.{part}")).unwrap();
        (
            ids.clone(),
            Tensor::<B, 2, Int>::from_data(TensorData::new(ids, shape), device),
        )
    };
    let (_, source) = ids("source");
    let (_, target_input) = ids("target_input");
    let (output_ids, target_output) = ids("target_output");
    TranslationBatch {
        source_padding: source.clone().equal_elem(PAD),
        source,
        target_padding: target_input.clone().equal_elem(PAD),
        target_input,
        target_output,
        target_tokens: output_ids.iter().filter(|&&id| id != PAD).count(),
    }
}

fn transformer_errors<B: AutodiffBackend>(name: &str, device: &B::Device) -> Errors {
    let dict = reference(name);
    let config = TransformerNmtConfig::new(40, 40, PAD as usize)
        .with_d_model(16)
        .with_d_ff(32)
        .with_n_heads(4)
        .with_encoder_layers(2)
        .with_decoder_layers(2)
        .with_dropout(0.0)
        .with_norm_first(name == "transformer_pre_norm")
        .with_label_smoothing(0.1);
    let config = if name == "transformer_fairseq" {
        config.with_architecture(TransformerArchitecture::Fairseq)
    } else {
        config
    };
    let build = |weights: &StateDict| -> TransformerNmt<B> {
        config.init::<B>(device).load_state_dict(weights).unwrap()
    };
    errors(
        &dict,
        build,
        |model, index| model.forward_translation(batch(&dict, index, device)).loss,
        |model| model.forward_translation(batch(&dict, 0, device)).loss,
    )
}

const CASES: [&str; 3] = [
    "transformer_post_norm",
    "transformer_pre_norm",
    "transformer_fairseq",
];

#[test]
fn transformer_on_ndarray_every_kernel_path() {
    let _turn = common::serial();
    type B = Autodiff<NdArray<f32>>;
    for name in CASES {
        on_every_kernel_path(name, || transformer_errors::<B>(name, &Default::default()));
    }
}

#[test]
fn transformer_on_wgpu() {
    let _turn = common::serial();
    let Some(device) = common::wgpu_device_or_skip("transformer_on_wgpu") else {
        return;
    };
    for name in CASES {
        transformer_errors::<Autodiff<Wgpu<f32, i32>>>(name, &device)
            .check(&format!("{name}, wgpu"));
    }
}
