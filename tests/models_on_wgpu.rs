//! Every model computes the same forward pass on wgpu as on ndarray (within 1e-4), from the same
//! weights — the one generic code path, checked on both backends.
#![recursion_limit = "256"]

mod common;

use burn::backend::wgpu::WgpuDevice;
use burn::backend::{NdArray, Wgpu};
use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use radam_train::models::conv::ConvAlgorithm;
use radam_train::models::lstm_lm::{LmOutputLayer, LstmLm, LstmLmConfig};
use radam_train::models::resnet::{CifarResNetConfig, ImageNetResNetConfig, ResNet};
use radam_train::models::transformer::{TransformerNmt, TransformerNmtConfig};

type Cpu = NdArray<f32>;
type Gpu = Wgpu<f32, i32>;

/// The same weights on the other backend.
fn transfer<M1: Module<Cpu>, M2: Module<Gpu>>(from: M1, to: M2, device: &WgpuDevice) -> M2 {
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(from.into_record(), ()).unwrap();
    to.load_record(recorder.load(bytes, device).unwrap())
}

fn assert_close<const D: usize>(cpu: Tensor<Cpu, D>, gpu: Tensor<Gpu, D>, what: &str) {
    let a: Vec<f32> = cpu.into_data().to_vec().unwrap();
    let b: Vec<f32> = gpu.into_data().to_vec().unwrap();
    assert_eq!(a.len(), b.len(), "{what}: sizes differ");
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(1.0))
        .fold(0.0_f32, f32::max);
    assert!(
        worst <= 1e-4,
        "{what}: wgpu differs from ndarray by {worst:e}"
    );
}

fn ints<B: Backend>(values: Vec<i64>, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[test]
fn resnets_match_ndarray() {
    let Some(gpu) = common::wgpu_device_or_skip("resnets_match_ndarray") else {
        return;
    };
    let cpu = Default::default();
    let images: Vec<f32> =
        Tensor::<Cpu, 4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &cpu)
            .into_data()
            .to_vec()
            .unwrap();
    for algorithm in [
        ConvAlgorithm::Direct,
        ConvAlgorithm::Im2col,
        ConvAlgorithm::Auto,
    ] {
        let config = CifarResNetConfig::new(8).with_conv_algorithm(algorithm);
        let on_cpu: ResNet<Cpu> = config.init(&cpu);
        let on_gpu: ResNet<Gpu> = transfer(on_cpu.clone(), config.init(&gpu), &gpu);
        let x_cpu =
            Tensor::<Cpu, 4>::from_data(TensorData::new(images.clone(), [2, 3, 32, 32]), &cpu);
        let x_gpu =
            Tensor::<Gpu, 4>::from_data(TensorData::new(images.clone(), [2, 3, 32, 32]), &gpu);
        assert_close(
            on_cpu.forward(x_cpu),
            on_gpu.forward(x_gpu),
            &format!("CIFAR ResNet-8 ({algorithm:?})"),
        );
    }
    let config = ImageNetResNetConfig::resnet18(10);
    let on_cpu: ResNet<Cpu> = config.init(&cpu);
    let on_gpu: ResNet<Gpu> = transfer(on_cpu.clone(), config.init(&gpu), &gpu);
    let x_cpu = Tensor::<Cpu, 4>::from_data(TensorData::new(images.clone(), [2, 3, 32, 32]), &cpu);
    let x_gpu = Tensor::<Gpu, 4>::from_data(TensorData::new(images, [2, 3, 32, 32]), &gpu);
    assert_close(on_cpu.forward(x_cpu), on_gpu.forward(x_gpu), "ResNet-18");
}

#[test]
fn lstm_language_models_match_ndarray() {
    let Some(gpu) = common::wgpu_device_or_skip("lstm_language_models_match_ndarray") else {
        return;
    };
    let cpu = Default::default();
    let tokens: Vec<i64> = (0..24).map(|i| (i * 5 % 30) as i64).collect();
    for output in [
        LmOutputLayer::Full,
        LmOutputLayer::Adaptive {
            cutoffs: vec![8, 20],
            div_value: 2.0,
        },
    ] {
        let config = LstmLmConfig::new(30)
            .with_d_embedding(16)
            .with_d_hidden(32)
            .with_output(output.clone());
        let on_cpu: LstmLm<Cpu> = config.init(&cpu);
        let on_gpu: LstmLm<Gpu> = transfer(on_cpu.clone(), config.init(&gpu), &gpu);
        let (a, _) = on_cpu.log_prob(ints(tokens.clone(), [3, 8], &cpu), None);
        let (b, _) = on_gpu.log_prob(ints(tokens.clone(), [3, 8], &gpu), None);
        assert_close(a, b, &format!("LSTM LM ({output:?})"));
    }
}

#[test]
fn transformers_match_ndarray() {
    let Some(gpu) = common::wgpu_device_or_skip("transformers_match_ndarray") else {
        return;
    };
    let cpu = Default::default();
    let source = vec![5i64, 6, 7, 2, 8, 9, 2, 0];
    let target = vec![1i64, 5, 6, 1, 7, 0];
    for norm_first in [false, true] {
        let config = TransformerNmtConfig::tiny(20, 0)
            .with_d_model(32)
            .with_d_ff(64)
            .with_norm_first(norm_first);
        let on_cpu: TransformerNmt<Cpu> = config.init(&cpu);
        let on_gpu: TransformerNmt<Gpu> = transfer(on_cpu.clone(), config.init(&gpu), &gpu);
        let run_cpu = {
            let (s, t) = (
                ints::<Cpu>(source.clone(), [2, 4], &cpu),
                ints::<Cpu>(target.clone(), [2, 3], &cpu),
            );
            on_cpu.forward(s.clone(), s.equal_elem(0), t.clone(), t.equal_elem(0))
        };
        let run_gpu = {
            let (s, t) = (
                ints::<Gpu>(source.clone(), [2, 4], &gpu),
                ints::<Gpu>(target.clone(), [2, 3], &gpu),
            );
            on_gpu.forward(s.clone(), s.equal_elem(0), t.clone(), t.equal_elem(0))
        };
        assert_close(
            run_cpu,
            run_gpu,
            &format!("Transformer (norm_first = {norm_first})"),
        );
    }
}
