//! The CIFAR ResNet-20 (width 8) with option-A and option-B shortcuts against PyTorch.

use burn::backend::{Autodiff, NdArray, Wgpu};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use radam_train::models::batch::ImageBatch;
use radam_train::models::conv::ConvAlgorithm;
use radam_train::models::resnet::{CifarResNetConfig, ResNet, Shortcut};
use radam_train::models::state_dict::StateDict;

use crate::{Errors, common, errors, on_every_kernel_path, reference};

/// Batch `index` of the reference on `device`.
fn batch<B: Backend>(dict: &StateDict, index: usize, device: &B::Device) -> ImageBatch<B> {
    let (shape, images) = dict.f32(&format!("batch{index}.images")).unwrap();
    let (_, labels) = dict.i64(&format!("batch{index}.labels")).unwrap();
    ImageBatch {
        images: Tensor::from_data(TensorData::new(images, shape), device),
        targets: Tensor::<B, 1, Int>::from_data(
            TensorData::new(labels.clone(), [labels.len()]),
            device,
        ),
    }
}

/// The reference `name` against our ResNet-20 with `shortcut` and `algorithm` on `device`.
fn resnet_errors<B: burn::tensor::backend::AutodiffBackend>(
    name: &str,
    shortcut: Shortcut,
    algorithm: ConvAlgorithm,
    device: &B::Device,
) -> Errors {
    let dict = reference(name);
    let build = |weights: &StateDict| -> ResNet<B> {
        CifarResNetConfig::new(20)
            .with_num_classes(10)
            .with_width(8)
            .with_shortcut(shortcut)
            .with_conv_algorithm(algorithm)
            .init::<B>(device)
            .load_state_dict(weights)
            .unwrap()
    };
    errors(
        &dict,
        build,
        |model, index| {
            model
                .forward_classification(batch(&dict, index, device))
                .loss
        },
        |model| model.forward_classification(batch(&dict, 0, device)).loss,
    )
}

const CASES: [(&str, Shortcut); 2] = [
    ("resnet20_option_b", Shortcut::Projection),
    ("resnet20_option_a", Shortcut::ZeroPad),
];

#[test]
fn resnet20_on_ndarray_every_kernel_path() {
    let _turn = common::serial();
    type B = Autodiff<NdArray<f32>>;
    for (name, shortcut) in CASES {
        on_every_kernel_path(name, || {
            resnet_errors::<B>(name, shortcut, ConvAlgorithm::Auto, &Default::default())
        });
        // Burn's own convolution.
        resnet_errors::<B>(name, shortcut, ConvAlgorithm::Direct, &Default::default())
            .check(&format!("{name}, ndarray, Burn's conv2d"));
    }
}

#[test]
fn resnet20_on_wgpu() {
    let _turn = common::serial();
    let Some(device) = common::wgpu_device_or_skip("resnet20_on_wgpu") else {
        return;
    };
    for (name, shortcut) in CASES {
        resnet_errors::<Autodiff<Wgpu<f32, i32>>>(name, shortcut, ConvAlgorithm::Auto, &device)
            .check(&format!("{name}, wgpu"));
    }
}
